"""The two kinds of error markfs raises on purpose.

`UserError` is bad input or an unusable environment: the CLI prints its one-line
message and exits 1, never a traceback. `FsError` carries an errno for the FUSE
adapter to hand to the kernel.
"""

from __future__ import annotations

import errno as _errno
import os


class UserError(Exception):
    """A mistake the user can fix; `str()` is the one line shown to them."""


class CatalogDamaged(UserError):
    """The catalog file cannot be read as it should (`markfs fsck --repair` salvages it)."""


class SourceError(UserError):
    """A database or server that failed while being read (gone, refused, broken)."""

    @classmethod
    def of(cls, what: str, exc: BaseException) -> SourceError:
        text = str(exc).strip()
        return cls(f"{what}: {text.splitlines()[0] if text else type(exc).__name__}")


class FsError(OSError):
    """A filesystem operation refused with an errno."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail or os.strerror(code))
        self.code = code

    @classmethod
    def from_os(cls, exc: OSError) -> FsError:
        return cls(exc.errno if exc.errno is not None else _errno.EIO,
                   exc.strerror or str(exc))  # (str() would say "[Errno N]" once more)
