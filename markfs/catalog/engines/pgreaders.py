"""The connections a PostgreSQL catalog's reads go to, apart from its writer's.

A daemon's catalog work runs in worker threads (`namespace/workers.CatalogRunner`):
its writes one at a time on the catalog's connection, which a write transaction holds
from BEGIN to COMMIT — on a shared catalog also while it waits for the stamp row's
lock another host's transaction holds. A read made inside `ReadPool.reading()` (a
readdir's page, xattrs, statfs, status.json, the upload journal's rows) goes to a
connection of this pool instead, one thread's at a time: it never queues behind a
write, of this host or of another, and it sees what was committed — never the open
transaction of another thread of this host, as before, when it waited for its COMMIT.
A thread that opens a transaction of its own inside `reading()` still reads what it
wrote: statements inside its transaction stay on the catalog's connection.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

from markfs.errors import FsError, first_line

if TYPE_CHECKING:
    from markfs.catalog.engines.postgres import PgConnection

READERS = 2  # reads in flight at once (`CatalogRunner`'s limit), connections kept idle


class ReadPool:
    def __init__(self, connect: Callable[[], PgConnection]) -> None:
        self._connect = connect
        self._idle: list[PgConnection] = []  # at most READERS, the lock's
        self._lock = threading.Lock()
        self._thread = threading.local()  # `conn`: the connection of this thread's reads
        self._closed = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        """This thread's statements outside a transaction of its own go to a connection
        of the pool until the block ends."""
        conn = self._take()
        self._thread.conn = conn
        try:
            yield
        finally:
            self._thread.conn = None
            self._give_back(conn)

    def current(self) -> PgConnection | None:
        """The pool's connection this thread reads through now, if any."""
        conn: PgConnection | None = getattr(self._thread, "conn", None)
        return conn

    def close(self) -> None:
        """Closes the idle connections; one in use is closed when it is given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    def _take(self) -> PgConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._connect()
        except psycopg.Error as exc:
            raise FsError(errno.EIO, "the catalog's server does not answer: "
                          f"{first_line(exc)}") from None

    def _give_back(self, conn: PgConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < READERS and not conn.raw.broken:
                self._idle.append(conn)
                return
        _close(conn)


def _close(conn: PgConnection) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.close()
