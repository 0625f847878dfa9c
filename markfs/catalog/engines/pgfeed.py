"""A host's own connections to the change feed of a shared catalog (psycopg 3): one to
tell the other hosts of its commits (`Announcer`), one to hear of theirs and read the
change log (`ChangeListener`) — apart from the catalog's, so neither waits for a write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Any

import psycopg

from markfs.catalog.engines.pgconnection import PgConnection
from markfs.model import ChangeSet

CONNECT_TIMEOUT_S = 10
# a stalled server or a cut network shows within ~15 s instead of the kernel's minutes
KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                             "keepalives_count": 3, "tcp_user_timeout": 15_000}


CHANNEL = "markfs_changes"  # NOTIFY channel: the payload is the newest stamp


class ChangeListener:
    """A host's own connection to hear of other hosts' commits: LISTEN, then read the
    change log. One task uses it at a time (a socket to wait on, then a read)."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                     application_name="markfs feed", **KEEPALIVE)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def fileno(self) -> int:
        return int(self._conn.pgconn.socket)

    def heard(self) -> int:
        """The newest stamp the notifications that arrived carry (0: none arrived)."""
        pgconn = self._conn.pgconn
        pgconn.consume_input()
        newest = 0
        while (note := pgconn.notifies()) is not None:
            with contextlib.suppress(ValueError):
                newest = max(newest, int(note.extra.decode()))
        return newest

    def read_since(self, after: int, mine: Collection[int] = ()) -> tuple[int, ChangeSet | None]:
        """(the catalog's stamp, what changed after `after` up to it but in the stamps
        `mine`: `changelog.read_since`), in one snapshot."""
        from markfs.catalog import changelog  # (it imports the catalog, which imports this)
        with self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            reader = PgConnection(self._conn)
            newest = changelog.newest_stamp(reader)
            if newest <= after:
                return newest, ChangeSet()
            return newest, changelog.read_since(reader, after, newest, mine)

    def close(self) -> None:
        self._conn.close()


class Announcer:
    """A host's connection to tell the others of its commits (a NOTIFY of its own
    transaction: every notifying commit takes a cluster-wide lock, so never inside
    the catalog's writes)."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                     application_name="markfs announce", **KEEPALIVE)

    def announce(self, stamp: int) -> None:
        self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(stamp)))

    def close(self) -> None:
        self._conn.close()
