"""The two kinds of error markfs raises on purpose.

`UserError` is bad input or an unusable environment: the CLI prints its one-line
message and exits 1, never a traceback. `FsError` carries an errno for the FUSE
adapter to hand to the kernel.
"""

from __future__ import annotations

import errno as _errno
import os


def first_line(exc: BaseException) -> str:
    """An error's first line as a person reads it in one line (its type if it says none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """A mistake the user can fix; `str()` is the one line shown to them."""


class CatalogDamaged(UserError):
    """The catalog file cannot be read as it should (`markfs fsck --repair` salvages it)."""


class SourceError(UserError):
    """A database or server that failed while being read (gone, refused, broken)."""

    @classmethod
    def of(cls, what: str, exc: BaseException) -> SourceError:
        return cls(f"{what}: {first_line(exc)}")


class SourceRefused(OSError):
    """A backend's word that the source itself is not there or will not have us — its
    bucket does not exist, access is denied, its root folder is gone: no retry helps
    until someone fixes it. (The errno is what a caller is told: EIO, or EACCES.)"""


class FsError(OSError):
    """A filesystem operation refused with an errno; `refused`: by the source itself,
    for good (no such bucket, access denied — `backends.base.SourceRefused`)."""

    def __init__(self, code: int, detail: str = "", refused: bool = False) -> None:
        super().__init__(code, detail or os.strerror(code))
        self.code = code
        self.refused = refused

    @classmethod
    def from_os(cls, exc: OSError) -> FsError:
        return cls(exc.errno if exc.errno is not None else _errno.EIO,
                   exc.strerror or str(exc),  # (str() would say "[Errno N]" once more)
                   refused=isinstance(exc, SourceRefused) or getattr(exc, "refused", False))


class CatalogConflict(FsError):
    """A write transaction the catalog's server ended to let another go on (a deadlock,
    a serialization failure: SQLSTATE 40P01, 40001). Nothing of it committed: the work
    that ran it may run again (`CatalogRunner` does, with back-off)."""

    def __init__(self, detail: str) -> None:
        super().__init__(_errno.EIO, detail)


class SourceShut(FsError):
    """A call not made: its source is known not to answer (EIO at once until a probe
    sees it again). No news about the source, so its health does not count it."""

