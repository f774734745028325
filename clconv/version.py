"""The release: one place for it (the package metadata reads it too)."""
__version__ = "0.1.0"
