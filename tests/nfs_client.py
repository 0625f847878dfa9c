"""A minimal NFSv3 client over ONC RPC (TCP, AUTH_SYS as root) for the tests: MOUNT's
MNT, and NFS's GETATTR, SETATTR (owners), LOOKUP, READ and RENAME — what libnfs's
command-line tools cannot do (rename, file ids, chown, reads with the status). The
client side of a test, not the thing under test (RFC 1813, RFC 5531)."""

from __future__ import annotations

import itertools
import os
import socket
import struct
from dataclasses import dataclass

MOUNT_PROG, NFS_PROG = 100005, 100003
MNT, GETATTR, SETATTR, LOOKUP, READ, RENAME = 1, 1, 2, 3, 6, 14
_xids = itertools.count(int.from_bytes(os.urandom(3), "big"))


class NfsError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"NFS3 error {status}")
        self.status = status


def _opaque(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data + b"\0" * (-len(data) % 4)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u32(self) -> int:
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        (value,) = struct.unpack_from(">Q", self.data, self.pos)
        self.pos += 8
        return int(value)

    def opaque(self) -> bytes:
        size = self.u32()
        value = self.data[self.pos:self.pos + size]
        self.pos += size + (-size % 4)
        return value


@dataclass(frozen=True)
class Attrs:
    type: int
    size: int
    fileid: int


def _fattr3(r: _Reader) -> Attrs:
    kind = r.u32()
    for _ in range(4):  # mode, nlink, uid, gid
        r.u32()
    size = r.u64()
    r.u64()  # used
    r.u32(), r.u32()  # rdev
    r.u64()  # fsid
    fileid = r.u64()
    for _ in range(6):  # atime, mtime, ctime
        r.u32()
    return Attrs(kind, size, fileid)


def _call(port: int, prog: int, proc: int, args: bytes) -> _Reader:
    xid = next(_xids) & 0xFFFFFFFF
    cred = struct.pack(">I", 0) + _opaque(b"markfs-test") + struct.pack(">III", 0, 0, 0)
    head = struct.pack(">IIIIII", xid, 0, 2, prog, 3, proc)
    body = head + struct.pack(">I", 1) + _opaque(cred) + struct.pack(">II", 0, 0) + args
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
        reply = b""
        last = False
        while not last:
            (mark,) = struct.unpack(">I", _recv(s, 4))
            last = bool(mark & 0x80000000)
            reply += _recv(s, mark & 0x7FFFFFFF)
    r = _Reader(reply)
    if r.u32() != xid or r.u32() != 1 or r.u32() != 0:
        raise RuntimeError("RPC call not accepted")
    r.u32(), r.opaque()  # verifier
    if (accepted := r.u32()) != 0:
        raise RuntimeError(f"RPC accept_stat {accepted}")
    return r


def _recv(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = s.recv(size - len(data))
        if not piece:
            raise ConnectionError("connection closed mid-reply")
        data += piece
    return data


class Nfs3:
    """One export, by its MOUNT and NFS ports (no portmapper needed)."""

    def __init__(self, nfs_port: int, mount_port: int, export: str) -> None:
        self.port = nfs_port
        r = _call(mount_port, MOUNT_PROG, MNT, _opaque(export.encode()))
        if (status := r.u32()) != 0:
            raise NfsError(status)
        self.root = r.opaque()

    def lookup(self, path: str) -> bytes:
        handle = self.root
        for name in (p for p in path.split("/") if p):
            r = _call(self.port, NFS_PROG, LOOKUP, _opaque(handle) + _opaque(name.encode()))
            if (status := r.u32()) != 0:
                raise NfsError(status)
            handle = r.opaque()
        return handle

    def getattr(self, handle: bytes) -> Attrs:
        r = _call(self.port, NFS_PROG, GETATTR, _opaque(handle))
        if (status := r.u32()) != 0:
            raise NfsError(status)
        return _fattr3(r)

    def rename(self, folder: str, old: str, new: str) -> None:
        handle = self.lookup(folder)
        r = _call(self.port, NFS_PROG, RENAME, _opaque(handle) + _opaque(old.encode())
                  + _opaque(handle) + _opaque(new.encode()))
        if (status := r.u32()) != 0:
            raise NfsError(status)

    def read(self, handle: bytes, count: int = 4096) -> bytes:
        r = _call(self.port, NFS_PROG, READ, _opaque(handle) + struct.pack(">QI", 0, count))
        if (status := r.u32()) != 0:
            raise NfsError(status)
        if r.u32():  # post-op attributes follow
            _fattr3(r)
        r.u32(), r.u32()  # count, eof
        return r.opaque()

    def chown(self, handle: bytes, uid: int, gid: int) -> None:
        """SETATTR of the owners only (sattr3: mode no, uid, gid, size no, times don't
        change; no guard)."""
        sattr = struct.pack(">IIIIIIIII", 0, 1, uid, 1, gid, 0, 0, 0, 0)
        r = _call(self.port, NFS_PROG, SETATTR, _opaque(handle) + sattr + struct.pack(">I", 0))
        if (status := r.u32()) != 0:
            raise NfsError(status)
