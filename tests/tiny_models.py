"""Tiny randomly initialised encoders, built offline from configs, for fast tests of the real code paths.

Each is a real BERT / DistilBERT / RoBERTa / XLM-R architecture with two small layers and a tokenizer trained
on the fly with ``tokenizers`` (WordPiece for BERT-style, byte-level BPE for RoBERTa-style), saved to a
directory and loaded back through the Auto classes exactly as hub weights would be.
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta")


def _corpus(texts: list[str]) -> list[str]:
    extra = ["the a an and or but is was are of to in on for with it this that", "0 1 2 3 4 5 6 7 8 9 . , ! ? : ;"]
    return list(texts) + extra


def _wordpiece_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(_corpus(texts), trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tok.decoder = decoders.WordPiece()
    specials = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return tok, specials


def _bpe_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(texts), trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    tok.decoder = decoders.ByteLevel()
    specials = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                    sep_token="</s>", mask_token="<mask>")
    return tok, specials


def build_tiny_model(family: str, directory: Path, texts: list[str], num_labels: int = 2, seed: int = 0) -> Path:
    """Write a tiny random ``family`` model and its tokenizer to ``directory``; returns the directory.

    Dropout is off so runs are exactly reproducible (the multi-process test compares to one process).
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        DistilBertConfig,
        PreTrainedTokenizerFast,
        RobertaConfig,
        XLMRobertaConfig,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if family in ("bert", "distilbert"):
        tok, specials = _wordpiece_tokenizer(texts)
    else:
        tok, specials = _bpe_tokenizer(texts)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=64, **specials)
    vocab = tok.get_vocab_size()
    pad = tok.token_to_id(specials["pad_token"])
    small = dict(vocab_size=vocab, pad_token_id=pad, num_labels=num_labels)
    if family == "bert":
        config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=80, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **small)
    elif family == "distilbert":
        config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=80,
                                  dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0, **small)
    elif family in ("roberta", "xlm-roberta"):
        cls = RobertaConfig if family == "roberta" else XLMRobertaConfig
        # Positions start at padding_idx + 1 in RoBERTa / XLM-R, hence the +2 on the table size.
        config = cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=80 + pad + 1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"), **small)
    else:
        raise ValueError(f"unknown tiny family {family!r}; choose from {FAMILIES}")
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def registry_yaml(entries: dict[str, Path], extra_tfidf: bool = True) -> str:
    """A registry with one transformer entry per tiny model directory (plus the TF-IDF baseline)."""
    lines = ["models:"]
    if extra_tfidf:
        lines += ["  - {name: tfidf-logreg, family: tfidf}"]
    for name, path in entries.items():
        lines += [f"  - name: {name}", "    family: transformer", f"    source: {{path: '{path}'}}"]
    return "\n".join(lines) + "\n"
