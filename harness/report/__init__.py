"""From the store to what people read: the leaderboard object, its analysis and group tables, figures and the
markdown renderer.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
