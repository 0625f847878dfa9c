"""Whether source paths may have moved while a reader looked at them.

A rename changes paths on the backend first and in the catalog a moment later
(both under the renamed entry's parent locks, but not under the locks of the
folders below it). A listing or stat of a path below that was taken in the
meantime describes a path that no longer means what the catalog says, so its
result must be dropped, not applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RenameEpochs:
    """Counts renames begun and finished; a reader compares marks around its I/O."""

    def __init__(self) -> None:
        self._epoch = 0
        self._in_flight = 0

    @contextmanager
    def renaming(self) -> Iterator[None]:
        self._epoch += 1
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._epoch += 1

    def mark(self) -> int | None:
        """A mark to take before reading paths (None: a rename is under way)."""
        return None if self._in_flight else self._epoch

    def unchanged_since(self, mark: int | None) -> bool:
        return mark is not None and mark == self._epoch
