"""This daemon's session in a shared catalog, and the fence that stops its writes.

The daemon registers a session as it mounts (`register`) and renews it every fifth of
its TTL (`run`), on a connection of its own, in a worker thread. The server decides
whether a session lapsed, by its own clock (catalog/sessions.py). This host decides,
by its own monotonic clock, when to stop writing: once `fence_after` has passed since
the start of its last renewal that succeeded. A renewal's start comes before the
server's time of it, and `fence_after` (six tenths of the TTL) is well under the TTL,
so a host that is paused (SIGSTOP, a VM frozen) or cut off stops acknowledging writes
before any other host can take its session for dead — and after it resumes, its writes
fail (EIO) until it has registered again. A host stopped inside a write transaction
holds the stamp row's lock every host's writes queue on: the server ends a transaction
of this host idle for the TTL (`idle_in_transaction_session_timeout`), so the others
wait at most that long, and the stopped write never commits. (The window left: a
pause between the check before COMMIT and the COMMIT itself, shorter than the TTL.)

Any live host removes sessions lapsed for `GRACE_S` (each by one host). Their uploads in
pieces (S3 multipart) are then aborted by the next sweep of any host (remote/pieces.py:
a daemon of another host is alive while its session is there). Their journal rows stay:
their staged copies are on that host's disk, and its next mount sends them. A host that
is fenced sends no upload either (remote/uploader.py): the file may have been written
by another host since.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time

import trio

from markfs.catalog import sessions
from markfs.catalog.engines.pgconnection import PgConnection
from markfs.catalog.engines.postgres import PostgresEngine
from markfs.errors import UserError, first_line
from markfs.namespace.tree import Tree
from markfs.namespace.workers import IoRunner
from markfs.runtime import owner_token

log = logging.getLogger(__name__)

GRACE_S = 60.0  # a session lapsed this long is removed by any live host
CLEAN_EVERY = 10  # renewals between two cleanings


class HostSession:
    def __init__(self, tree: Tree, engine: PostgresEngine, io: IoRunner, mountpoint: str,
                 host: str, ttl_s: float) -> None:
        self.tree, self.engine, self.io = tree, engine, io
        self.mountpoint, self.host, self.ttl_s = mountpoint, host, ttl_s
        self.renew_s, self.fence_after_s = ttl_s / 5, ttl_s * 0.6
        self.session_id: int | None = None
        self.last_renewed = -math.inf  # monotonic start of the last renewal that held
        self._conn: PgConnection | None = None
        tree.catalog.fenced = self.fenced
        # stopped inside a write (paused past its session), it holds the lock every
        # host's writes queue on: the server ends that transaction after the TTL
        engine.hold_locks_at_most(ttl_s)

    def fenced(self) -> bool:
        return time.monotonic() - self.last_renewed > self.fence_after_s

    def register(self) -> None:
        """Register a new session (blocking: at mount, before serving; or in a worker)."""
        started = time.monotonic()
        if self._conn is None:
            self._conn = self.engine.connection_apart("session")
        self._refuse_a_shared_data_dir()
        self.session_id = sessions.register(
            self._conn, self.engine.clock, self.host, socket.gethostname(), os.getpid(),
            owner_token(), self.mountpoint, self.ttl_s)
        self.last_renewed = started
        log.info("registered session %d in the shared catalog", self.session_id)

    def _refuse_a_shared_data_dir(self) -> None:
        """One data directory is one host's: its staged copies and journal rows are that
        host's (a data directory on a network share, mounted by two machines, would have
        each send and drop the other's)."""
        assert self._conn is not None
        here = socket.gethostname()
        for other in sessions.every(self._conn, self.engine.clock):
            if other.host == self.host and other.hostname != here and not other.lapsed:
                raise UserError(f"this data directory is in use by host {other.hostname} "
                                f"(pid {other.pid}, {other.mountpoint}): give each host a "
                                "data directory of its own (markfs init --catalog URL)")

    def _renew(self) -> None:
        started = time.monotonic()
        if self._conn is None or self.session_id is None:
            self.register()
            return
        if sessions.renew(self._conn, self.engine.clock, self.session_id):
            self.last_renewed = started
            return
        log.warning("session %d lapsed (this host was paused or cut off): its writes failed "
                    "meanwhile; registering again", self.session_id)
        sessions.end(self._conn, self.session_id)  # (its own: no other host need clean it)
        self.register()

    def _clean(self) -> None:
        assert self._conn is not None
        for gone in sessions.clean(self._conn, self.engine.clock, GRACE_S):
            log.warning("removed the lapsed session %d of %s (pid %d, %s); its pending "
                        "uploads wait for that host, its uploads in pieces are aborted",
                        gone.id, gone.hostname, gone.pid, gone.mountpoint)

    async def run(self) -> None:
        renewals = 0
        while True:
            await trio.sleep(self.renew_s)
            try:
                await self.io(self._renew, timeout=self.renew_s * 2)
                renewals += 1
                if renewals % CLEAN_EVERY == 0:
                    await self.io(self._clean, timeout=self.renew_s * 2)
            except Exception as exc:
                log.warning("could not renew this host's session: %s", first_line(exc))
                self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                log.debug("closing the session's connection: %s", first_line(exc))

    def end(self) -> None:
        """At unmount: the session removed (blocking)."""
        if self._conn is not None and self.session_id is not None:
            try:
                sessions.end(self._conn, self.session_id)
            except Exception as exc:
                log.warning("could not end session %d: %s", self.session_id, first_line(exc))
        self._drop_connection()
