"""Pure computations on per-example arrays: quality metrics, statistics (intervals, paired tests) and cost
measurement (latency, memory, device facts).

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
