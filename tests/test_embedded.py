"""The data sample shipped inside the package: read when the hub is out of reach, said so, installed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from harness.config.registry import load_benchmark
from harness.core.errors import HarnessInputError
from harness.data import embedded
from harness.data import loading as D

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "harness" / "data" / "samples" / "dbpedia14"
FIRST_TRAIN_TEXT = "Hope Motor Company was a Japanese car company bought by Suzuki in 1968 ."


@pytest.fixture
def no_hub_cache(monkeypatch, tmp_path):
    """Empty hub caches and a fresh reachability answer, whatever this machine holds."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    D._hub_reachable_once.cache_clear()
    yield tmp_path
    D._hub_reachable_once.cache_clear()


@pytest.fixture
def hub_must_not_be_read(monkeypatch):
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("the hub was asked for data")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def _assert_is_the_sample(result):
    assert len(result.train) == 1960 and len(result.eval) == 980
    assert np.bincount(result.train.labels).tolist() == [140] * 14
    assert np.bincount(result.eval.labels).tolist() == [70] * 14
    assert result.train.texts[0].startswith(FIRST_TRAIN_TEXT)
    assert result.source["kind"] == "embedded sample"
    assert Path(result.source["data_dir"]).resolve() == SAMPLE.resolve()


def test_offline_without_data_dir_reads_the_shipped_sample(monkeypatch, no_hub_cache, hub_must_not_be_read):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec, _ = load_benchmark("dbpedia14")
    result = D.load_benchmark_data(spec, None)
    _assert_is_the_sample(result)
    assert result.source["note"] == (
        "the hub is out of reach and no --data-dir was given: read the 1,960-train / 980-test sample shipped "
        "inside the package (harness/data/samples/dbpedia14/SOURCE.md), not the full fancyzhx/dbpedia_14; scores are not "
        "comparable with runs on the full data"
    )
    assert result.source["train_sha256"] == hashlib.sha256((SAMPLE / "train.csv").read_bytes()).hexdigest()


def test_unreachable_hub_reads_the_sample_and_probes_once(monkeypatch, no_hub_cache, hub_must_not_be_read):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    probes = []
    monkeypatch.setattr(D, "hub_reachable", lambda *a, **k: probes.append(1) or False)
    spec, _ = load_benchmark("dbpedia14")
    result = D.load_benchmark_data(spec, None)
    _assert_is_the_sample(result)
    # Every job's fingerprint asks again: the answer is the load's, and the network is probed once.
    identity = D.data_identity(spec, None)
    assert identity == {"train": result.source["train_sha256"], "test": result.source["test_sha256"]}
    assert len(probes) == 1


def test_reachable_hub_is_used_not_the_sample(monkeypatch, no_hub_cache):
    import datasets

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(D, "hub_reachable", lambda *a, **k: True)
    calls = []

    def fake_load_dataset(hub_id, config, revision=None, split=None):
        calls.append((hub_id, split))
        return datasets.Dataset.from_dict(
            {"title": ["A", "B", "C"], "content": ["a company", "a school", "an artist"], "label": [0, 1, 2]}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec, _ = load_benchmark("dbpedia14")
    result = D.load_benchmark_data(spec, None)
    assert calls == [("fancyzhx/dbpedia_14", "train"), ("fancyzhx/dbpedia_14", "test")]
    assert result.source["kind"] == "hub" and "note" not in result.source
    assert result.train.texts == ["a company", "a school", "an artist"]
    from harness.core import hub

    # The revision is pinned to the commit it points at now, so new upstream data is a new configuration.
    monkeypatch.setattr(hub, "resolve_revision", lambda repo, rev, kind: f"{kind}:{repo}@{rev}:abc123")
    assert D.data_identity(spec, None) == {
        "hub_id": "fancyzhx/dbpedia_14",
        "config": None,
        "revision": "main",
        "commit": "dataset:fancyzhx/dbpedia_14@main:abc123",
    }


def test_offline_with_the_dataset_in_the_hub_cache_reads_the_cache(monkeypatch, no_hub_cache):
    """HF_HUB_OFFLINE=1 over a cached copy of the full data set keeps reading that copy, as before."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = no_hub_cache / "hub" / "datasets--fancyzhx--dbpedia_14"
    spec, _ = load_benchmark("dbpedia14")
    # A folder huggingface_hub does not read as a cached repo (no snapshot) is no copy: the sample is used.
    repo.mkdir(parents=True)
    assert D.resolve_source(spec, None)[0] == "embedded sample"
    (repo / "snapshots" / ("c" * 40) / "dbpedia_14").mkdir(parents=True)
    (repo / "snapshots" / ("c" * 40) / "dbpedia_14" / "train.parquet").write_bytes(b"PAR1")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    assert D.resolve_source(spec, None) == ("hub", None)


def test_hub_out_of_reach_answers_for_any_data_set(monkeypatch, no_hub_cache):
    """What a caller asks before choosing a benchmark: amazon_polarity ships no sample, so offline it cannot run."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert D.hub_out_of_reach("fancyzhx/amazon_polarity")
    (no_hub_cache / "datasets" / "fancyzhx___amazon_polarity").mkdir(parents=True)
    assert not D.hub_out_of_reach("fancyzhx/amazon_polarity")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(D, "hub_reachable", lambda *a, **k: True)
    assert not D.hub_out_of_reach("fancyzhx/dbpedia_14")


def test_sample_passed_as_data_dir_is_still_named_a_sample(no_hub_cache):
    spec, _ = load_benchmark("dbpedia14")
    result = D.load_benchmark_data(spec, SAMPLE)
    _assert_is_the_sample(result)
    assert result.source["note"].startswith("passed as --data-dir: read the 1,960-train / 980-test sample")


def test_a_benchmark_without_a_sample_still_fails_in_one_line(
    monkeypatch, no_hub_cache, hub_must_not_be_read
):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(D, "hub_reachable", lambda *a, **k: False)
    spec, _ = load_benchmark("amazon_polarity")
    assert D.resolve_source(spec, None) == ("hub", None)
    with pytest.raises(HarnessInputError) as caught:
        D.load_benchmark_data(spec, None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("dataset 'fancyzhx/amazon_polarity' (benchmark amazon_polarity): cannot reach")
    assert "--data-dir" in message


def test_a_benchmark_reusing_the_name_with_other_data_gets_no_sample(monkeypatch, no_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec, _ = load_benchmark("dbpedia14")
    other = spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"hub_id": "someone/dbpedia"})})
    assert D.resolve_source(other, None) == ("hub", None)
    assert embedded.sample_dir("dbpedia14", "someone/dbpedia") is None
    assert embedded.available() == ["dbpedia14"]


def test_source_md_states_the_files_counts_and_hashes():
    source = (SAMPLE / "SOURCE.md").read_text(encoding="utf-8")
    for name, rows in (("train.csv", "1,960"), ("test.csv", "980")):
        body = (SAMPLE / name).read_bytes()
        row = re.search(
            rf"^\| {re.escape(name)} \| ([\d,]+) \|.*\| ([\d,]+) \| ([0-9a-f]{{64}}) \|$", source, re.M
        )
        assert row is not None, name
        assert row.group(1) == rows and row.group(1).replace(",", "") == str(body.count(b"\n") - 1)
        assert row.group(2).replace(",", "") == str(len(body))
        assert row.group(3) == hashlib.sha256(body).hexdigest()
    assert (SAMPLE / "LICENSE.md").is_file() and "CC BY-SA 3.0" in (SAMPLE / "LICENSE.md").read_text()


def test_package_data_lines_ship_every_sample_file():
    """A wheel carries what [tool.setuptools.package-data] names: every file of every sample must match."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["harness.data"]
    package = ROOT / "harness" / "data"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    files = {path for path in (package / "samples").rglob("*") if path.is_file()}
    assert files and files <= shipped
