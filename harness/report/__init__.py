"""From the store to what people read: the leaderboard object (read once), its sections in no format, the
markdown renderer, the figures, and the files written from memory.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
