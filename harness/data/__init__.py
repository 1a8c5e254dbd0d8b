"""A benchmark's data: loaded from the hub, local files or the samples shipped in the package, validated and
subsampled the same way for every model.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
