"""Caches under the catalog: the LMDB hot path (and, later, the on-disk content cache)."""

from markfs.cache.hot import HotCache

__all__ = ["HotCache"]
