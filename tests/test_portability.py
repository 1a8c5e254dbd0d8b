"""The package where POSIX-only modules are missing (Windows), its declared dependencies, and the caches it uses."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_path

FIXTURES = Path(__file__).parent / "fixtures"

BLOCKER = '''
import sys


class _Missing:
    """fcntl and resource do not exist here, as on Windows."""

    NAMES = {"fcntl", "resource"}

    def find_spec(self, name, path=None, target=None):
        if name in self.NAMES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
for _name in _Missing.NAMES:
    sys.modules.pop(_name, None)
'''


def _without_posix_modules(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "HF_HUB_OFFLINE": "1",
           "TEXTCLF_BENCH_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_the_blocker_blocks(tmp_path):
    out = _without_posix_modules(tmp_path, "import fcntl")
    assert out.returncode == 1 and "No module named 'fcntl'" in out.stderr


def test_import_report_run_and_predict_without_fcntl_and_resource(tmp_path, bench_dir, binary_dir):
    store = tmp_path / "results"
    shutil.copytree(FIXTURES / "store", store)
    runs = tmp_path / "runs"
    report = ["report", "--benchmark", "tiny_multilingual", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
              "--results-dir", str(store), "--quiet"]
    run = ["run", "--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir", str(bench_dir),
           "--data-dir", str(binary_dir), "--results-dir", str(runs), "--quiet", "--no-isolate"]
    predict = ["predict", "--json", "The blender is excellent, great value.", "--model-dir"]
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import harness, harness.cli, harness.run.predict, harness.store.results_store, harness.metrics.cost\n"
        "assert 'fcntl' not in sys.modules and 'resource' not in sys.modules\n"
        f"assert harness.cli.main({report!r}) == 0\n"
        f"assert harness.cli.main({run!r}) == 0\n"
        "from pathlib import Path\n"
        f"model = next(Path({str(runs)!r}).glob('tiny_binary/configs/*/runs/tfidf-logreg/seed-42/model'))\n"
        f"assert harness.cli.main({predict!r} + [str(model)]) == 0\n"
        "assert 'fcntl' not in sys.modules and 'resource' not in sys.modules\n"
    )
    out = _without_posix_modules(tmp_path, code)
    assert out.returncode == 0, out.stderr
    assert (store / "tiny_multilingual" / "leaderboard.md").read_bytes() == (
        FIXTURES / "report_golden" / "leaderboard.md"
    ).read_bytes()
    assert json.loads(out.stdout.splitlines()[-1])["label"] == "positive"
    result = json.loads((run_path(runs, "tiny_binary", "tfidf-logreg", 42) / "result.json").read_text())
    assert result["status"] == "completed"


def _third_party_imports() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "harness"}


def _declared() -> set[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    import re

    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_every_imported_distribution_is_declared():
    owners = metadata.packages_distributions()
    declared = _declared()
    missing = {}
    for module in sorted(_third_party_imports()):
        distributions = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        if not distributions & declared:
            missing[module] = sorted(distributions)
    assert missing == {}
    assert {"scipy", "huggingface-hub", "filelock", "platformdirs", "threadpoolctl"} <= declared


def test_cache_root_follows_xdg_cache_home_then_hf_home(tmp_path, monkeypatch):
    from harness.models.cache import cache_root

    monkeypatch.delenv("TEXTCLF_BENCH_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_root() == tmp_path / "xdg" / "textclf-bench"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_root() == tmp_path / "hf" / "textclf-bench"
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_the_hub_cache_is_read_through_huggingface_hub(tmp_path, monkeypatch):
    """A revision resolves offline to the commit the cache's refs name, as huggingface_hub scans them."""
    from huggingface_hub import constants

    from harness.core import hub
    from harness.data import loading

    cache = tmp_path / "hub"
    commit = "b" * 40
    for kind, name in (("models", "org--tiny"), ("datasets", "org--data")):
        snapshot = cache / f"{kind}--{name}" / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
        (cache / f"{kind}--{name}" / "refs").mkdir()
        (cache / f"{kind}--{name}" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    assert hub.cached_commit("org/tiny", None, "model") == commit
    assert hub.cached_commit("org/tiny", "v2", "model") is None
    assert hub.cached_commit("org/data", "main", "dataset") == commit
    assert hub.cached_commit("org/other", "main", "model") is None
    assert loading._in_local_hub_cache("org/data") and not loading._in_local_hub_cache("org/other")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "absent"))
    assert hub.cached_commit("org/tiny", None, "model") is None
