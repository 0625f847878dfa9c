"""SFTP version 3's packets (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks):
packet types, flags and status codes, file attributes packed and read, answers parsed,
and how a session fails. `sftp_wire.SftpSession` sends and awaits them."""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

# packet types (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks)
INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT, SETSTAT = 1, 2, 3, 4, 5, 6, 7, 8, 9
OPENDIR, READDIR, REMOVE, MKDIR, RMDIR, STAT, RENAME, READLINK, SYMLINK = (
    11, 12, 13, 14, 15, 17, 18, 19, 20)
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED, EXTENDED_REPLY = 101, 102, 103, 104, 105, 200, 201
# open flags
O_READ, O_WRITE, O_CREAT, O_TRUNC = 0x01, 0x02, 0x08, 0x10
# attribute flags
A_SIZE, A_UIDGID, A_PERMISSIONS, A_TIMES, A_EXTENDED = 0x1, 0x2, 0x4, 0x8, 0x80000000
LSETSTAT = b"lsetstat@openssh.com"  # SETSTAT of a symlink itself (OpenSSH 8.0+)
# status codes the server may answer with, and the errno each becomes
FX_OK, FX_EOF = 0, 1
ERRNO_OF_STATUS = {2: errno.ENOENT, 3: errno.EACCES, 8: errno.EOPNOTSUPP}


class SessionBroken(Exception):
    """The session cannot be used any more. The message says why in one line (ssh's
    last words when its process ended); `said` is all ssh wrote to stderr."""

    def __init__(self, why: str, said: str = "") -> None:
        super().__init__(why)
        self.said = said


class SessionTimeout(SessionBroken):
    """The server did not answer within the session's timeout."""


class EndOfFile(Exception):
    """The server's EOF status: no more bytes at that offset, no more entries."""


@dataclass(frozen=True)
class Attrs:
    """A file's attributes as SFTP v3 carries them (None: not sent); times in seconds."""

    size: int | None = None
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    atime: int | None = None
    mtime: int | None = None

    def pack(self) -> bytes:
        flags, body = 0, b""
        if self.size is not None:
            flags, body = flags | A_SIZE, body + struct.pack(">Q", self.size)
        if self.uid is not None and self.gid is not None:
            flags, body = flags | A_UIDGID, body + struct.pack(">II", self.uid, self.gid)
        if self.mode is not None:
            flags, body = flags | A_PERMISSIONS, body + struct.pack(">I", self.mode)
        if self.atime is not None and self.mtime is not None:
            flags, body = flags | A_TIMES, body + struct.pack(">II", self.atime, self.mtime)
        return struct.pack(">I", flags) + body


def string(data: bytes | bytearray | memoryview) -> bytes:
    return struct.pack(">I", len(data)) + bytes(data)


class Answer:
    """A cursor over the body of one answer."""

    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def u32(self) -> int:
        (value,) = struct.unpack_from(">I", self.body, self.at)
        self.at += 4
        return int(value)

    def u64(self) -> int:
        (value,) = struct.unpack_from(">Q", self.body, self.at)
        self.at += 8
        return int(value)

    def string(self) -> bytes:
        size = self.u32()
        if self.at + size > len(self.body):
            raise SessionBroken("a malformed answer from the server")
        self.at += size
        return self.body[self.at - size : self.at]

    def attrs(self) -> Attrs:
        flags = self.u32()
        size = self.u64() if flags & A_SIZE else None
        uid, gid = (self.u32(), self.u32()) if flags & A_UIDGID else (None, None)
        mode = self.u32() if flags & A_PERMISSIONS else None
        atime, mtime = (self.u32(), self.u32()) if flags & A_TIMES else (None, None)
        if flags & A_EXTENDED:
            for _ in range(self.u32()):
                self.string(), self.string()
        return Attrs(size, uid, gid, mode, atime, mtime)
