"""A file's content identity: what one version of its bytes is known by, and the one
place its text forms are written and read.

- `version`: the storage's own token (an S3 ETag; an SFTP size and mtime, with the time
  it was seen while it may still change within the same second), else size and mtime:
  what the content cache names chunks by, so a new version never reads an old chunk.
- `digest_key`: the version without when it was seen — what a whole-file digest is
  recorded under (`content_hashes`), since the bytes are the same however often looked.
- `scan_text`: what a file scan stores (the ETag, else `size:mtime` — a colon, so a
  stored text tells an ETag, whose multipart form has a hyphen, from no ETag at all).
"""

from __future__ import annotations

from dataclasses import dataclass

SEEN_MARK = b"-seen-"  # joins a version to the time it was observed (SFTP)


@dataclass(frozen=True)
class ContentIdentity:
    etag: bytes | None
    size: int
    mtime_ns: int

    @property
    def version(self) -> bytes:
        return self.etag if self.etag is not None else f"{self.size}-{self.mtime_ns}".encode()

    @property
    def digest_key(self) -> bytes:
        return self.version.split(SEEN_MARK, 1)[0]

    @property
    def scan_text(self) -> str:
        return (self.etag.decode("utf-8", "replace") if self.etag
                else f"{self.size}:{self.mtime_ns}")


def etag_of_scan_text(text: str) -> bytes | None:
    """The ETag a stored scan text names; None when it is a size and mtime."""
    size, colon, _mtime = text.partition(":")
    return None if colon and size.isdigit() else text.encode()


def observed_version(size: int, mtime_ns: int, now_ns: int, settle_ns: int) -> bytes:
    """A version from size and mtime alone (SFTP). A file changed within `settle_ns` may
    change again within the same second without either moving, so while it is that
    young the time of this observation is part of its version: each new look at it is
    a new version to the content cache."""
    base = f"{size}-{mtime_ns}".encode()
    return base + SEEN_MARK + str(now_ns).encode() if now_ns - mtime_ns < settle_ns else base


def size_and_mtime(version: bytes) -> tuple[bytes, bytes]:
    """The size and mtime an `observed_version` was made of (as their decimal text)."""
    size, _, rest = version.partition(b"-")
    return size, rest.split(b"-", 1)[0]
