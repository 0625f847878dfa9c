"""Whole-file xxh3-128 digests taken on the way, for `content_hashes` (what `markfs
dupes` compares): of a remote file read through one handle from its first byte to its
last, and of a staged copy as it is uploaded. A file markfs has moved whole is then
not read again to be compared.

A digest is recorded only under the content identity (S3 ETag, SFTP size+mtime) the
bytes were of: a read whose node changed while it ran, or an upload whose file was
written again meanwhile, records nothing. On SFTP the identity is size and whole-second
mtime: a file rewritten by someone else within the second markfs wrote or read it, to
the same size, keeps the identity — the same limit the content cache lives with.
"""

from __future__ import annotations

from pathlib import Path

import xxhash

MAX_AHEAD = 32 * 1024 * 1024  # bytes of reads answered ahead of the gap kept, then give up
READ_PIECE = 1024 * 1024


class ReadDigest:
    """The digest of a file fed by the reads of one handle. The kernel's read-ahead keeps
    several reads in flight and their answers can arrive out of order: those ahead of
    the gap wait here (bounded); a read that skips ahead for good ends the digest."""

    def __init__(self) -> None:
        self._hasher = xxhash.xxh3_128()
        self._upto = 0  # bytes hashed, from offset 0
        self._ahead: dict[int, bytes] = {}  # offset -> bytes answered past the gap
        self._held = 0
        self.broken = False

    def feed(self, offset: int, data: bytes) -> None:
        if self.broken or not data:
            return
        if offset > self._upto:
            self._held += len(data)
            self._ahead[offset] = data
            if self._held > MAX_AHEAD:
                self.stop()
            return
        self._take(offset, data)
        while self._ahead and not self.broken:
            ready = [at for at in self._ahead if at <= self._upto]
            if not ready:
                break
            for at in ready:
                piece = self._ahead.pop(at)
                self._held -= len(piece)
                self._take(at, piece)

    def _take(self, offset: int, data: bytes) -> None:
        """Bytes starting at or before the hashed end: the new part of them is hashed."""
        new = data[self._upto - offset:]
        if new:
            self._hasher.update(new)
            self._upto += len(new)

    def stop(self) -> None:
        """No digest from this handle."""
        self.broken = True
        self._ahead.clear()
        self._held = 0

    def hexdigest(self, size: int) -> str | None:
        """The digest if exactly `size` bytes were read from the start, else None."""
        if self.broken or self._upto != size or self._ahead:
            return None
        return self._hasher.hexdigest()


def file_digest(path: Path | str) -> str:
    """The digest of a local file, read in pieces (blocks: run it in a worker thread)."""
    hasher = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as file:
        while piece := file.read(READ_PIECE):
            hasher.update(piece)
    return hasher.hexdigest()
