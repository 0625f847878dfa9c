"""SFTP version 3 spoken over an OpenSSH client process (`ssh ... -s -- HOST sftp`).

Why a process and not an SSH library: the OpenSSH client does the SSH part (ciphers,
MACs, host keys against known_hosts, key files, ssh-agent, ~/.ssh/config) in C, on
another core, as sshfs does; this module only frames SFTP requests. On one sshd that
gave 2.5 x paramiko's throughput with a tenth of its CPU in the daemon
(docs/benchmarks.md, "SFTP client libraries side by side").

One `SftpSession` is one ssh process. A session is used by one thread at a time (the
backend pools them); that thread may keep many requests in flight: `send` returns a
request id, `wait(id)` its answer, in any order. Every wait and every write to the
process is bounded by the session's timeout. A session whose process ended, which
timed out or which got an answer it cannot parse is broken (`SessionBroken`, its
process killed) and must be replaced. Answers the server gives as status codes raise
OSError with the matching errno (`EndOfFile` for the end of a file or listing).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
import struct
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from markfs.backends.sftp_packets import (
    ATTRS,
    CLOSE,
    DATA,
    ERRNO_OF_STATUS,
    EXTENDED,
    EXTENDED_REPLY,
    FSTAT,
    FX_EOF,
    FX_OK,
    HANDLE,
    INIT,
    LSETSTAT,
    LSTAT,
    MKDIR,
    NAME,
    O_CREAT,
    O_READ,
    O_TRUNC,
    O_WRITE,
    OPEN,
    OPENDIR,
    READ,
    READDIR,
    READLINK,
    REMOVE,
    RENAME,
    RMDIR,
    SETSTAT,
    STAT,
    STATUS,
    SYMLINK,
    VERSION,
    WRITE,
    Answer,
    Attrs,
    EndOfFile,
    SessionBroken,
    SessionTimeout,
    string,
)

SMALL_IO = 32768  # every server reads and writes this much per request
LARGE_IO = 65536  # used where the server's limits say it takes it (fewer requests)
PIPE_BYTES = 1 << 20  # pipe buffers to and from ssh (Linux default: 64 KiB)
F_SETPIPE_SZ = 1031


class SftpSession:
    """One ssh process speaking SFTP; see the module docstring for its rules."""

    def __init__(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        self.process, self.timeout = process, timeout
        assert process.stdin is not None and process.stdout is not None
        self._out, self._in = process.stdin.fileno(), process.stdout.fileno()
        for fd in (self._out, self._in):
            with contextlib.suppress(OSError):  # a larger pipe is a speed-up, not a need
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
            os.set_blocking(fd, False)
        self._buffer = bytearray()
        self._next_id = 0
        self._early: dict[int, tuple[int, Answer]] = {}  # answers before their wait
        self._unwanted: set[int] = set()  # requests whose answers are dropped on arrival
        self.extensions: dict[bytes, bytes] = {}
        self.read_size = self.write_size = SMALL_IO

    @classmethod
    def start(cls, argv: list[str], timeout: float) -> SftpSession:
        """Start ssh with `argv` and agree on SFTP version 3 (SessionBroken if ssh
        cannot connect: the message is what ssh said)."""
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
        session = cls(process, timeout)
        try:
            session._handshake()
        except BaseException:
            session.close()
            raise
        return session

    def _handshake(self) -> None:
        self._write(struct.pack(">IBI", 5, INIT, 3))
        kind, answer = self._read_packet(with_id=False)
        if kind != VERSION:
            raise self._broken(f"the server answered {kind} to SFTP's INIT")
        answer.u32()
        while answer.at < len(answer.body):
            name = answer.string()
            self.extensions[name] = answer.string()
        if b"limits@openssh.com" in self.extensions:
            reply = self.extended(b"limits@openssh.com", b"")
            _packet, max_read, max_write = reply.u64(), reply.u64(), reply.u64()
            self.read_size = LARGE_IO if max_read >= LARGE_IO else SMALL_IO
            self.write_size = LARGE_IO if max_write >= LARGE_IO else SMALL_IO

    # -- the pipe --------------------------------------------------------------------

    def _broken(self, why: str) -> SessionBroken:
        """Kill the process (it may be stuck) and say why, with ssh's own last words."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        said = b""
        if self.process.stderr is not None:  # not blocking: a ProxyCommand may hold it open
            os.set_blocking(self.process.stderr.fileno(), False)
            with contextlib.suppress(OSError):
                said = os.read(self.process.stderr.fileno(), 65536)
        text = said.decode(errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return SessionBroken(lines[-1].rstrip(".") if lines else why, text)

    def _wait_fd(self, fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            if self.process.poll() is None:
                self.process.kill()
            raise SessionTimeout("server did not answer in time")

    def _write(self, data: bytes) -> None:
        deadline, view = time.monotonic() + self.timeout, memoryview(data)
        while view:
            try:
                view = view[os.write(self._out, view):]
            except BlockingIOError:
                self._wait_fd(self._out, select.POLLOUT, deadline)
            except (BrokenPipeError, ValueError):
                raise self._broken("ssh ended") from None

    def _fill(self, size: int, deadline: float) -> None:
        while len(self._buffer) < size:
            try:
                data = os.read(self._in, PIPE_BYTES)
            except BlockingIOError:
                self._wait_fd(self._in, select.POLLIN, deadline)
                continue
            if not data:
                raise self._broken("ssh ended")
            self._buffer += data

    def _read_packet(self, with_id: bool = True) -> tuple[int, Answer]:
        deadline = time.monotonic() + self.timeout
        self._fill(5, deadline)
        (length,) = struct.unpack_from(">I", self._buffer)
        if length < 1 or length > 1 << 24:
            raise self._broken(f"a malformed answer from the server (length {length})")
        self._fill(4 + length, deadline)
        kind, body = self._buffer[4], bytes(self._buffer[5 : 4 + length])
        del self._buffer[: 4 + length]
        return kind, Answer(body)

    # -- requests --------------------------------------------------------------------

    def send(self, kind: int, payload: bytes) -> int:
        """Send one request; its id, for `wait`."""
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        self._write(struct.pack(">IBI", len(payload) + 5, kind, self._next_id) + payload)
        return self._next_id

    def wait(self, request: int) -> tuple[int, Answer]:
        """The answer to `request`: its packet type and body after the id."""
        while request not in self._early:
            kind, answer = self._read_packet()
            number = answer.u32()
            if number in self._unwanted:
                self._unwanted.discard(number)
            else:
                self._early[number] = (kind, answer)
        return self._early.pop(request)

    def forget(self, requests: Iterable[int]) -> None:
        """Answers to these will not be waited for: drop them when they come."""
        self._unwanted.update(requests)

    def ok(self, request: int) -> None:
        self._expect(request, STATUS)

    def _expect(self, request: int, wanted: int) -> Answer:
        kind, answer = self.wait(request)
        if kind == wanted and kind != STATUS:
            return answer
        if kind != STATUS:
            raise self._broken(f"the server answered {kind} where {wanted} was due")
        code, message = answer.u32(), answer.string().decode(errors="replace")
        if code == FX_OK and wanted == STATUS:
            return answer
        if code == FX_EOF:
            raise EndOfFile()
        raise OSError(ERRNO_OF_STATUS.get(code, errno.EIO), message or f"SFTP status {code}")

    def call(self, kind: int, payload: bytes, wanted: int = STATUS) -> Answer:
        return self._expect(self.send(kind, payload), wanted)

    def extended(self, name: bytes, payload: bytes) -> Answer:
        return self.call(EXTENDED, string(name) + payload, EXTENDED_REPLY)

    # -- operations --------------------------------------------------------------------

    def open(self, path: bytes, flags: int, attrs: Attrs | None = None) -> bytes:
        payload = string(path) + struct.pack(">I", flags) + (attrs or Attrs()).pack()
        return self.call(OPEN, payload, HANDLE).string()

    def close_handle(self, handle: bytes) -> None:
        self.call(CLOSE, string(handle))

    def stat(self, path: bytes, follow: bool = True) -> Attrs:
        return self.call(STAT if follow else LSTAT, string(path), ATTRS).attrs()

    def fstat(self, handle: bytes) -> Attrs:
        return self.call(FSTAT, string(handle), ATTRS).attrs()

    def setstat(self, path: bytes, attrs: Attrs) -> None:
        """Attributes of the file at `path`; a symlink there is followed (by the server)."""
        self.call(SETSTAT, string(path) + attrs.pack())

    def lsetstat(self, path: bytes, attrs: Attrs) -> None:
        """Attributes of the entry at `path` itself, a symlink not followed: OpenSSH's
        `lsetstat@openssh.com` where the server has it; elsewhere SETSTAT, for an entry
        that is not a symlink only (EPERM: a link's target is never touched)."""
        if LSETSTAT in self.extensions:
            self.call(EXTENDED, string(LSETSTAT) + string(path) + attrs.pack())
            return
        if stat.S_ISLNK(self.stat(path, follow=False).mode or 0):
            raise OSError(errno.EPERM, "this SFTP server cannot change a symlink's own "
                                       "attributes (it lacks lsetstat@openssh.com)")
        self.setstat(path, attrs)

    def readlinks(self, paths: list[bytes]) -> list[bytes]:
        """The targets of symlinks, asked all at once."""
        requests = [self.send(READLINK, string(path)) for path in paths]
        try:
            targets = []
            while requests:
                answer = self._expect(requests[0], NAME)
                requests.pop(0)
                answer.u32()
                targets.append(answer.string())
            return targets
        finally:
            self.forget(requests)

    def remove(self, path: bytes) -> None:
        self.call(REMOVE, string(path))

    def mkdir(self, path: bytes, attrs: Attrs) -> None:
        self.call(MKDIR, string(path) + attrs.pack())

    def rmdir(self, path: bytes) -> None:
        self.call(RMDIR, string(path))

    def listdir(self, path: bytes) -> list[tuple[bytes, Attrs]]:
        """Every entry of a directory but `.` and `..`, with its (lstat) attributes."""
        handle = self.call(OPENDIR, string(path), HANDLE).string()
        entries: list[tuple[bytes, Attrs]] = []
        try:
            while True:
                answer = self.call(READDIR, string(handle), NAME)
                for _ in range(answer.u32()):
                    name, _long = answer.string(), answer.string()
                    attrs = answer.attrs()
                    if name not in (b".", b".."):
                        entries.append((name, attrs))
        except EndOfFile:
            return entries
        finally:
            self.close_handle(handle)

    def rename(self, old: bytes, new: bytes, replace: bool = True) -> None:
        """Replace `new` if it exists (OpenSSH's posix-rename), or with `replace` False
        fail instead (SFTP v3's own RENAME)."""
        if replace and b"posix-rename@openssh.com" in self.extensions:
            self.call(EXTENDED, string(b"posix-rename@openssh.com") + string(old) + string(new))
        else:
            self.call(RENAME, string(old) + string(new))

    def copy_data(self, src: bytes, dst: bytes) -> None:
        """The server copies the file `src` into a new file `dst` (the copy-data extension:
        no byte passes through here)."""
        source = self.open(src, O_READ)
        try:
            target = self.open(dst, O_WRITE | O_CREAT | O_TRUNC)
            try:  # from offset 0, length 0 (to the end), to offset 0
                self.call(EXTENDED, string(b"copy-data") + string(source)
                          + struct.pack(">QQ", 0, 0) + string(target) + struct.pack(">Q", 0))
            finally:
                self.close_handle(target)
        finally:
            self.close_handle(source)

    def symlink(self, target: bytes, path: bytes) -> None:
        # OpenSSH takes the target first, the reverse of the draft; every client follows it
        self.call(SYMLINK, string(target) + string(path))

    # -- pipelines ---------------------------------------------------------------------

    def read_stream(self, handle: bytes, offset: int, end: int,
                    window: int) -> Iterator[bytes]:
        """Bytes [offset, end) of an open file in order, `window` requests in flight.
        A short answer is followed by the rest of its range before anything later; the
        file's end (it shrank) ends the stream early."""
        pending: deque[tuple[int, int, int]] = deque()  # (request, offset, size)
        ahead = offset
        try:
            while ahead < end or pending:
                while ahead < end and len(pending) < window:
                    size = min(self.read_size, end - ahead)
                    pending.append((self.send(READ, string(handle) + struct.pack(
                        ">QI", ahead, size)), ahead, size))
                    ahead += size
                request, at, size = pending.popleft()
                data = self._expect(request, DATA).string()
                yield data
                if len(data) < size:
                    yield from self._read_rest(handle, at + len(data), size - len(data))
        except EndOfFile:
            return
        finally:
            self.forget(request for request, _, _ in pending)

    def _read_rest(self, handle: bytes, offset: int, size: int) -> Iterator[bytes]:
        while size > 0:
            payload = string(handle) + struct.pack(">QI", offset, size)
            data = self.call(READ, payload, DATA).string()
            offset, size = offset + len(data), size - len(data)
            yield data

    def write_stream(self, handle: bytes, offset: int, data: Iterable[bytes | memoryview],
                     window: int, check: Callable[[], None]) -> int:
        """Write the pieces (each at most `write_size`) at `offset` onwards, `window`
        requests in flight, `check` called before each; the offset after the last."""
        pending: deque[int] = deque()
        try:
            for piece in data:
                check()
                if len(pending) >= window:
                    self.ok(pending.popleft())
                pending.append(self.send(WRITE, string(handle) + struct.pack(">Q", offset)
                                         + string(piece)))
                offset += len(piece)
            while pending:
                self.ok(pending.popleft())
        finally:
            self.forget(pending)
        return offset

    def close(self) -> None:
        """End the ssh process: stdin closed, a moment to leave, then killed."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
