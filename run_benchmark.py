#!/usr/bin/env python
"""Run the benchmark: ``python run_benchmark.py --models all`` (see README.md)."""

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
