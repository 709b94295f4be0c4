"""The version of wdist (one place)."""

__version__ = "0.1.0"
