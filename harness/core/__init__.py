"""Foundations every layer may use: errors, escaping of user strings, hub settings, the version.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
