"""markfs: a FUSE filesystem with a catalog behind it."""

__version__ = "0.1.0"
