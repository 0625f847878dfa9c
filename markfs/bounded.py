"""Bounded memory for a daemon meant to run for months: `RecentMap`, the dict every
long-lived cache keyed by node or folder uses when nothing else prunes it."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecentMap(OrderedDict[K, V]):
    """A dict of the `bound` most recently set entries: setting one makes it the newest,
    and the oldest leaves once there are more. For what is safe to forget — a forgotten
    entry costs a recomputation (a listing read again), never a wrong answer."""

    def __init__(self, bound: int) -> None:
        super().__init__()
        if bound < 1:
            raise ValueError("a RecentMap keeps at least one entry")
        self.bound = bound

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.bound:
            self.popitem(last=False)
