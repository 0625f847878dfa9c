"""The node record shared by the catalog (its truth) and the hot cache (its mirror).

A node is one inode of the mount. Its `id` is the catalog row id and the inode
number the kernel sees; it is never reused. `kind` says which provider serves
the node; the file type lives in `mode` as in `st_mode`.
"""

from __future__ import annotations

import functools
import stat
import struct
from dataclasses import dataclass, field, replace
from enum import Enum

from markfs.identity import ContentIdentity

ROOT_ID = 1
USER_XATTRS = b"user."  # the only namespace of xattrs markfs stores or serves


class Kind(str, Enum):
    """Which provider answers for a node."""

    LAYOUT = "layout"  # fixed folders of the mount: /, /sources, /tables, ...
    CONTROL = "control"  # generated read-only files under /.markfs
    SOURCE = "source"  # a path inside a source (the source root has remote_path b"")
    TABLE = "table"  # a folder or snapshot file of a managed table under /tables
    VIEW = "view"  # a view's folder under /views, or a folder inside it
    TAG = "tag"  # a tag's folder under /tags
    CATEGORY = "category"  # a category's folder under /categories


_KIND_CODES = {Kind.LAYOUT: 1, Kind.CONTROL: 2, Kind.SOURCE: 3, Kind.TABLE: 4, Kind.VIEW: 5,
               Kind.TAG: 6, Kind.CATEGORY: 7}
_KINDS_BY_CODE = {v: k for k, v in _KIND_CODES.items()}


@dataclass(frozen=True)
class Node:
    id: int
    parent: int
    name: bytes
    kind: Kind
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int = 1
    generation: int = 0
    source_id: int | None = None
    remote_path: bytes | None = None
    target: bytes | None = None  # symlink target
    etag: bytes | None = None  # identity of the content (S3 ETag, SFTP size+mtime)
    atime_ns: int | None = None  # None where the source keeps no access time (S3)
    rdev: int = 0  # device number of a device node
    # which of mode/uid/gid the source's own metadata gave (KEPT_* bits; S3 object
    # metadata); None where the source has no such metadata or it was not read yet
    meta_kept: int | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def identity(self) -> bytes:
        """What a whole-file digest of this content is recorded under (as `Entry.identity`)."""
        return ContentIdentity(self.etag, self.size, self.mtime_ns).digest_key

    def with_(self, **changes: object) -> Node:
        return replace(self, **changes)  # type: ignore[arg-type]


# Fixed part of a packed node: id, parent, kind, mode, uid, gid, size, mtime,
# ctime, nlink, generation, source_id (0 = none), atime (NO_ATIME = none), rdev,
# meta_kept (-1 = none), then four length-prefixed blobs.
_FIXED = struct.Struct("<QQBIIIQqqIQQqQi")
NO_ATIME = -(1 << 63)
_LEN = struct.Struct("<i")  # -1 encodes None


def _pack_blob(value: bytes | None) -> bytes:
    if value is None:
        return _LEN.pack(-1)
    return _LEN.pack(len(value)) + value


def _unpack_blob(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    (length,) = _LEN.unpack_from(buf, pos)
    pos += _LEN.size
    if length < 0:
        return None, pos
    return bytes(buf[pos : pos + length]), pos + length


def pack_node(node: Node) -> bytes:
    """Serialise a node for the LMDB mirror."""
    fixed = _FIXED.pack(
        node.id, node.parent, _KIND_CODES[node.kind], node.mode, node.uid, node.gid,
        node.size, node.mtime_ns, node.ctime_ns, node.nlink, node.generation,
        node.source_id or 0, NO_ATIME if node.atime_ns is None else node.atime_ns, node.rdev,
        -1 if node.meta_kept is None else node.meta_kept,
    )
    return b"".join((fixed, _pack_blob(node.name), _pack_blob(node.remote_path),
                     _pack_blob(node.target), _pack_blob(node.etag)))


@functools.lru_cache(maxsize=8192)
def unpack_node(buf: bytes) -> Node:
    """A node from its packed bytes. Remembered by those bytes (bounded): the same
    bytes are the same node, and nodes are frozen, so one may be shared. A request reads
    its node 4-5 times between writes; decoding one cost ~12 µs (most of it the frozen
    dataclass's constructor), a hit ~0.3 µs."""
    (nid, parent, kind, mode, uid, gid, size, mtime, ctime, nlink, gen, src, atime, rdev,
     kept) = (
        _FIXED.unpack_from(buf, 0)
    )
    name, pos = _unpack_blob(buf, _FIXED.size)
    remote, pos = _unpack_blob(buf, pos)
    target, pos = _unpack_blob(buf, pos)
    etag, pos = _unpack_blob(buf, pos)
    return Node(
        id=nid, parent=parent, name=name or b"", kind=_KINDS_BY_CODE[kind], mode=mode,
        uid=uid, gid=gid, size=size, mtime_ns=mtime, ctime_ns=ctime, nlink=nlink,
        generation=gen, source_id=src or None, remote_path=remote, target=target, etag=etag,
        atime_ns=None if atime == NO_ATIME else atime, rdev=rdev,
        meta_kept=None if kept < 0 else kept,
    )


@dataclass
class ChangeSet:
    """What one committed catalog transaction did to nodes and names (for the mirror)."""

    nodes: list[Node] = field(default_factory=list)  # present rows, new or changed
    dentries: list[tuple[int, bytes, int]] = field(default_factory=list)  # (parent, name, id)
    gone_nodes: list[int] = field(default_factory=list)
    gone_dentries: list[tuple[int, bytes]] = field(default_factory=list)
