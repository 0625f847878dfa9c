"""The ssh sessions of one SFTP source: a small pool of `ssh` processes speaking SFTP
(`sftp_wire`), started on first use, one replaced when it broke; each call runs on a
session taken from the pool (`run`), and ssh's own words become one line when it could
not connect."""

from __future__ import annotations

import errno
import math
import os
import queue
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from markfs.backends.base import SftpLocation
from markfs.backends.sftp_packets import SessionBroken, SessionTimeout
from markfs.backends.sftp_wire import SftpSession

T = TypeVar("T")


class SessionPool:
    def __init__(self, location: SftpLocation, size: int, timeout: float) -> None:
        self.loc, self.timeout = location, timeout
        self._pool: queue.LifoQueue[SftpSession | None] = queue.LifoQueue()
        for _ in range(size):
            self._pool.put(None)  # connect lazily

    def ssh_command(self) -> list[str]:
        """The ssh command line of one session: no terminal, no forwarding, never a
        prompt; `--` so that no host name can pass for an option."""
        loc = self.loc
        argv = ["ssh", "-T", "-x", "-a", "-oBatchMode=yes", "-oLogLevel=ERROR",
                f"-oConnectTimeout={max(1, math.ceil(self.timeout))}",
                "-oStrictHostKeyChecking=" + ("accept-new" if loc.accept_unknown_host else "yes"),
                "-p", str(loc.port), "-l", loc.user]
        if loc.known_hosts:
            argv += [f"-oUserKnownHostsFile={loc.known_hosts}", "-oGlobalKnownHostsFile=/dev/null"]
        if loc.key_file:
            argv += ["-i", loc.key_file, "-oIdentitiesOnly=yes", "-oIdentityAgent=none"]
        return [*argv, "-s", "--", loc.host, "sftp"]

    def _connect(self) -> SftpSession:
        if shutil.which("ssh") is None:
            raise OSError(errno.EIO, "sftp sources need the OpenSSH client: no 'ssh' command "
                          "on PATH (Debian: apt install openssh-client)")
        try:
            return SftpSession.start(self.ssh_command(), self.timeout)
        except SessionBroken as exc:
            raise self._connect_error(str(exc), exc.said) from None

    def _connect_error(self, last: str, said: str) -> OSError:
        """One line for what ssh said when it could not connect."""
        where = f"{self.loc.host}:{self.loc.port}"
        if "IDENTIFICATION HAS CHANGED" in said or "has changed and you have" in said:
            return OSError(errno.EACCES, f"host key of {self.loc.host} does not match "
                           "known_hosts")
        if "Host key verification failed" in said or "host key is known" in said:
            return OSError(errno.EACCES, f"unknown host key for [{self.loc.host}]:"
                           f"{self.loc.port} (add it to known_hosts)")
        if "Permission denied" in said:
            return OSError(errno.EACCES, f"authentication to {self.loc.host} failed ({last})")
        return OSError(errno.EIO, f"connect to {where}: {last}")

    @contextmanager
    def session(self) -> Iterator[SftpSession]:
        session = self._pool.get()
        try:
            if session is None:
                session = self._connect()
            yield session
        except SessionBroken:
            if session is not None:
                session.close()
            session = None  # the pool starts a fresh one next time
            raise
        finally:
            self._pool.put(session)

    def run(self, what: str, fn: Callable[[SftpSession], T]) -> T:
        """Run `fn` on a pooled session. A session found broken is replaced and the call
        tried once more (the server may have restarted since it was last used); a
        timeout is not retried: the caller is waiting already."""
        for attempt in (1, 2):
            try:
                with self.session() as session:
                    return fn(session)
            except OSError as exc:
                raise OSError(exc.errno or errno.EIO,
                              f"{what}: {exc.strerror or os.strerror(exc.errno or errno.EIO)}"
                              ) from None
            except SessionBroken as exc:
                if attempt == 2 or isinstance(exc, SessionTimeout):
                    raise OSError(errno.EIO, f"{what}: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        while True:
            try:
                session = self._pool.get_nowait()
            except queue.Empty:
                return
            if session is not None:
                session.close()
