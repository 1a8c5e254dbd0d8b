#!/usr/bin/env bash
# The GPU measurements of the speed work, in five parts of at most about six minutes each, most important first.
# On a bare GPU machine, from the project root, after ../shared/tools/device-stage has filled .device/ here:
#     bash .device/setup.sh && export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 && bash benchmarks/gpu_check.sh 1
#     (then the same with 2, 3, 4 and 5)
# Data is read from /tmp/data/amazon_polarity (where setup.sh puts it) or DATA=...; results go to $OUT (or
# ./gpu-check-out): one JSON per measurement plus the log. Every command has its own time limit, so one that
# hangs costs its slot and not the rest.
#   part 1: the no-device-read test under torch.cuda.set_sync_debug_mode("error"); BERT-base random weights,
#           16,384 examples, batch 32: Trainer defaults, tuned Trainer, harness; all-MiniLM-L6-v2 real
#           weights on the Amazon sample, 2 epochs, batch 32: the same three recipes with accuracy (McNemar).
#   part 2: DistilBERT and RoBERTa-base (the same three recipes); GPU busy, kernels per step, first-fit over
#           second-fit time and MFU for BERT-base at batch 32 and 128.
#   part 3: XLM-R base (the same three recipes); the tuned Trainer with group_by_length for BERT-base.
#   part 4: inference: the batch-1 CUDA-graph replay test; all-MiniLM-L6-v2 evaluation of 50,000 texts end to
#           end against a bare pre-tokenised bf16 forward, batch-1 p50/p95/p99 over 1,000 calls end to end and
#           model only; BERT-base (random weights) model-only batch 1.
#   part 5: torch.compile's payoff for training: compile seconds against the step gain, BERT-base batch 32.
set -uo pipefail
part=${1:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${DATA:-/tmp/data/amazon_polarity}
[ -f "$data/train.csv" ] || data="$root/../shared/data/amazon_polarity"
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
py=${PYTHON:-python3}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TEXTCLF_BENCH_CACHE=${TEXTCLF_BENCH_CACHE:-/tmp/textclf-cache}
log="$out/gpu_check_part$part.log"
start=$SECONDS
step() {  # step SECONDS NAME COMMAND...
  local limit=$1 name=$2; shift 2
  echo "=== $name (limit ${limit}s, at ${SECONDS}s)" | tee -a "$log"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | grep -v -E "it/s\]|^Loading weights|^Writing model" | tee -a "$log"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start))s" | tee -a "$log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$log"
$py -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$log"
speed="$py benchmarks/train_speed.py --data $data --work-dir /tmp/train-speed"
if [ "$part" = 1 ]; then
  step 60 "no device read inside a step (CUDA sync debug mode)" \
    $py -m pytest -x -q -p no:cacheprovider tests/test_training_loop.py -k "no_device_read or divergence"
  step 170 "BERT-base random weights, 16,384 examples, batch 32" \
    $speed --random-weights --models bert --train 16384 --test 1024 --batch-size 32 --json-out "$out/bert_b32.json"
  step 130 "all-MiniLM-L6-v2 real weights, Amazon sample, 2 epochs, batch 32" \
    $speed --models minilm-l6 --train 9994 --test 6459 --epochs 2 --batch-size 32 --json-out "$out/minilm.json"
elif [ "$part" = 2 ]; then
  step 110 "DistilBERT random weights" \
    $speed --random-weights --models distilbert --train 16384 --test 1024 --batch-size 32 --json-out "$out/distilbert_b32.json"
  step 150 "RoBERTa-base random weights" \
    $speed --random-weights --models roberta --train 16384 --test 1024 --batch-size 32 --json-out "$out/roberta_b32.json"
  step 45 "GPU busy and MFU, BERT-base batch 32" $py benchmarks/gpu_busy.py --data $data --model bert --batch-size 32 --json-out "$out/busy_b32.json"
  step 45 "GPU busy and MFU, BERT-base batch 128" $py benchmarks/gpu_busy.py --data $data --model bert --batch-size 128 --json-out "$out/busy_b128.json"
elif [ "$part" = 4 ]; then
  step 90 "batch-1 replay equals the eager forward (CUDA graphs)" \
    $py -m pytest -x -q -p no:cacheprovider tests/test_replay.py
  step 240 "inference: evaluation of 50,000 texts, batch-1 latency over 1,000 calls, BERT-base batch 1" \
    $py benchmarks/inference_speed.py --data $data --texts 50000 --calls 1000 --bert --json-out "$out/inference.json"
elif [ "$part" = 3 ]; then
  step 160 "XLM-R base random weights" \
    $speed --random-weights --models xlm-roberta --train 16384 --test 1024 --batch-size 32 --json-out "$out/xlmr_b32.json"
  step 120 "BERT-base, tuned Trainer with group_by_length" \
    $speed --random-weights --models bert --train 16384 --test 1024 --batch-size 32 --recipes trainer-tuned-grouped,harness --json-out "$out/bert_grouped.json"
elif [ "$part" = 5 ]; then
  step 300 "torch.compile payoff, BERT-base batch 32, widths 64 and 128" \
    $py benchmarks/compile_payoff.py --model bert --random-weights --batch-size 32 --widths 64,128 --json-out "$out/compile_bert.json"
else
  echo "unknown part '$part': choose 1, 2, 3, 4 or 5" >&2
  exit 2
fi
echo "part $part done in ${SECONDS}s; results in $out" | tee -a "$log"
