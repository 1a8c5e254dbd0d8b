"""The layers of docs/ARCHITECTURE.md hold: import-linter's contracts in pyproject.toml, run on every test run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the package under ``root``, in a child process (it changes logging and output streams)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True)


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter")
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


def test_contracts_catch_an_upward_import(tmp_path):
    """The layer contract is not vacuous: a copy of the package with one upward import breaks it.

    Checked in a child process, so the copy never mixes with the package this test run imported.
    """
    pytest.importorskip("importlinter")
    copy = tmp_path / "harness"
    shutil.copytree(ROOT / "harness", copy, ignore=shutil.ignore_patterns("__pycache__", "samples", "defaults"))
    with open(copy / "core" / "errors.py", "a") as handle:
        handle.write("\nfrom harness.report import board  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = lint(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "harness.core.errors -> harness.report.board" in out.stdout
