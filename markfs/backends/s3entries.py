"""What the S3 backend says of a key: the `Entry` a listing page or a HEAD gives.

A listing shows size, LastModified and ETag only: its files are `partial` until a HEAD
reads their metadata (`s3meta`: mode, owner, mtime). Prefixes have no time of their
own; a folder's times are the source's creation unless its marker keeps others.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from typing import Any

from markfs.backends.base import Entry, FileAttrs
from markfs.backends.s3meta import attrs_from

DIR_MODE = stat.S_IFDIR | 0o755
FILE_MODE = stat.S_IFREG | 0o644


def name_of(raw: str) -> bytes:
    return os.fsencode(raw)


def typed(attrs: FileAttrs, kind: int) -> FileAttrs:
    """`attrs` with the mode's type bits those of `kind` (as s3fs writes modes)."""
    if attrs.mode is None:
        return attrs
    return replace(attrs, mode=kind | stat.S_IMODE(attrs.mode))


@dataclass(frozen=True)
class S3Entries:
    """Entries of one source: owned by `uid`/`gid` unless an object's metadata says
    otherwise; folders timed `dir_mtime_ns` (prefixes have no time of their own)."""

    uid: int
    gid: int
    dir_mtime_ns: int

    def file(self, name: bytes, size: int, changed_ns: int, etag: str | None) -> Entry:
        """A file as a listing shows it: its metadata not read (`partial`)."""
        return Entry(name=name, mode=FILE_MODE, uid=self.uid, gid=self.gid, size=size,
                     mtime_ns=changed_ns, ctime_ns=changed_ns,
                     etag=etag.strip('"').encode() if etag else None, partial=True)

    def folder(self, name: bytes, partial: bool = False) -> Entry:
        """A folder with no metadata of its own (or, `partial`, none read yet)."""
        return Entry(name=name, mode=DIR_MODE, uid=self.uid, gid=self.gid, size=0,
                     mtime_ns=self.dir_mtime_ns, ctime_ns=self.dir_mtime_ns, nlink=2,
                     meta_kept=None if partial else 0, partial=partial)

    def from_head(self, name: bytes, head: dict[str, Any], kind: int) -> Entry:
        """A file (`kind` S_IFREG) or a folder's marker (S_IFDIR) as a HEAD shows it."""
        changed = int(head["LastModified"].timestamp() * 1e9)
        attrs, kept = attrs_from(head.get("Metadata") or {}, kind)
        if kind == stat.S_IFDIR:
            mode, mtime, etag, size, nlink = DIR_MODE, self.dir_mtime_ns, None, 0, 2
        else:
            mode, mtime, nlink = FILE_MODE, changed, 1
            etag, size = head.get("ETag"), head["ContentLength"]
        return Entry(name=name, mode=attrs.mode or mode,
                     uid=self.uid if attrs.uid is None else attrs.uid,
                     gid=self.gid if attrs.gid is None else attrs.gid, size=size,
                     mtime_ns=mtime if attrs.mtime_ns is None else attrs.mtime_ns,
                     ctime_ns=changed, nlink=nlink,
                     etag=etag.strip('"').encode() if etag else None, meta_kept=kept)

    def of_page(self, page: dict[str, Any], prefix: str) -> list[Entry]:
        """The folders and files of one delimiter listing page below `prefix`."""
        out = [self.folder(name_of(p["Prefix"][len(prefix):-1]), partial=True)
               for p in page.get("CommonPrefixes", [])]
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if not rel:
                continue  # the folder's own marker
            mtime = int(obj["LastModified"].timestamp() * 1e9)
            out.append(self.file(name_of(rel), obj["Size"], mtime, obj.get("ETag")))
        return out
