"""Results on disk: the typed result of one run and the store that files it under its configuration.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
