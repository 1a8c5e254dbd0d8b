"""What the user declares, typed: the schemas of benchmarks, models, budgets and suites, and the registry
that reads them from YAML.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
