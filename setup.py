"""Build hook: ship the default registry and benchmark YAMLs inside the package.

The design keeps ``models_registry.yaml`` and ``benchmarks/`` at the top of the project, where users edit
them; a wheel has no top of the project, so the build copies them to ``harness/defaults/`` (the YAMLs only,
not the benchmark scripts beside them). ``harness.config.registry`` looks there when no local file is given.
Everything else about the build is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithDefaults(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the files where they are
        target = Path(self.build_lib) / "harness" / "defaults"
        (target / "benchmarks").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "models_registry.yaml", target / "models_registry.yaml")
        for path in sorted((ROOT / "benchmarks").glob("*.yaml")):
            shutil.copy2(path, target / "benchmarks" / path.name)
        # Suites (several benchmarks in one command) are found by name in benchmarks/suites/.
        (target / "benchmarks" / "suites").mkdir(exist_ok=True)
        for path in sorted((ROOT / "benchmarks" / "suites").glob("*.yaml")):
            shutil.copy2(path, target / "benchmarks" / "suites" / path.name)


setup(cmdclass={"build_py": BuildPyWithDefaults})
