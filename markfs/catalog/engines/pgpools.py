"""The connections a PostgreSQL catalog's work goes to apart from its own connection.

A daemon's catalog work runs in worker threads (`namespace/workers.CatalogRunner`).
Two pools of connections serve it, each connection one thread's at a time:
- reads (`READERS`): a read made inside `reading()` (a readdir's page, xattrs, statfs,
  status.json, the upload journal's rows) never queues behind a write, of this host
  or of another, and sees what was committed — never the open transaction of another
  thread of this host. A thread that opens a transaction of its own inside
  `reading()` still reads what it wrote: its transaction's statements stay on the
  transaction's connection.
- writes (`WRITERS`): a transaction that holds only some folders (`begin_locking`)
  runs on a connection of its own from BEGIN to COMMIT, so this host's writes to
  different folders run at once, as different hosts' do (their rows' locks order
  them where they meet). A transaction that holds the whole catalog stays on the
  catalog's own connection, one at a time.
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
    from markfs.catalog.engines.pgconnection import PgConnection

READERS = 2  # reads in flight at once (`CatalogRunner`'s limit), connections kept idle
# folder-holding write transactions in flight at once, connections kept idle (a create
# is two round trips of ~0.3 ms: a few keep the server busy while the others wait)
WRITERS = 4


class ConnectionPool:
    def __init__(self, connect: Callable[[], PgConnection], kept: int) -> None:
        self._connect = connect
        self._kept = kept
        self._idle: list[PgConnection] = []  # at most `kept`, the lock's
        self._lock = threading.Lock()
        self._thread = threading.local()  # `conn`: this thread's connection of the pool
        self._closed = False

    @contextmanager
    def using(self) -> Iterator[PgConnection]:
        """This thread's statements go to a connection of the pool until the block ends."""
        conn = self._take()
        self._thread.conn = conn
        try:
            yield conn
        finally:
            self._thread.conn = None
            self._give_back(conn)

    def current(self) -> PgConnection | None:
        """The pool's connection this thread uses now, if any."""
        conn: PgConnection | None = getattr(self._thread, "conn", None)
        return conn

    def drop_idle(self) -> None:
        """The idle connections are closed (the next are made with new options)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    def close(self) -> None:
        """Closes the idle connections; one in use is closed when it is given back."""
        with self._lock:
            self._closed = True
        self.drop_idle()

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
        if conn.raw.broken:  # (the server restarted, or the network was cut: the idle
            self.drop_idle()  # ones are as gone, and each would fail one request first)
        with self._lock:
            if not (self._closed or len(self._idle) >= self._kept or conn.raw.broken
                    or conn.in_transaction):
                self._idle.append(conn)
                return
        _close(conn)


def _close(conn: PgConnection) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.close()
