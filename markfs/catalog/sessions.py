"""`sessions`: the daemons of the hosts that share a catalog, each renewing its row.

Every time is the database server's (`clock`: an SQL expression of its time in µs), so
whether a host is alive is never decided by another host's clock. A session lapses when
not renewed for its `ttl_us`; a renewal of a lapsed session fails (`renew` is False) —
its daemon must stop writing and register anew. `clean` removes sessions lapsed for
longer than a grace period: DELETE … RETURNING hands each to exactly one cleaning host.
"""

from __future__ import annotations

from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.columns import integer, text

_COLUMNS = "id, host, hostname, pid, owner, mountpoint, started_us, renewed_us, ttl_us"


@dataclass(frozen=True)
class Session:
    id: int
    host: str
    hostname: str
    pid: int
    owner: str
    mountpoint: str
    started_us: int
    renewed_us: int
    ttl_us: int
    since_renewal_us: int  # by the server's clock, when read

    @property
    def lapsed(self) -> bool:
        return self.since_renewal_us >= self.ttl_us


def _session(row: tuple[object, ...]) -> Session:
    sid, host, hostname, pid, owner, mountpoint, started, renewed, ttl, since = row
    return Session(integer(sid), text(host), text(hostname), integer(pid), text(owner),
                   text(mountpoint), integer(started), integer(renewed), integer(ttl),
                   integer(since))


def register(conn: Connection, clock: str, host: str, hostname: str, pid: int, owner: str,
             mountpoint: str, ttl_s: float) -> int:
    rows = conn.execute(
        "INSERT INTO sessions (host, hostname, pid, owner, mountpoint, started_us, renewed_us, "
        f"ttl_us) VALUES (?, ?, ?, ?, ?, {clock}, {clock}, ?) RETURNING id",
        (host, hostname, pid, owner, mountpoint, int(ttl_s * 1e6))).fetchall()
    return integer(rows[0][0])


def renew(conn: Connection, clock: str, session_id: int) -> bool:
    """Renewed; False if the session had lapsed (or was cleaned): register anew."""
    rows = conn.execute(f"UPDATE sessions SET renewed_us = {clock} WHERE id = ? "
                        f"AND renewed_us + ttl_us > {clock} RETURNING id",
                        (session_id,)).fetchall()
    return bool(rows)


def end(conn: Connection, session_id: int) -> None:
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def every(conn: Connection, clock: str) -> list[Session]:
    return [_session(r) for r in conn.execute(
        f"SELECT {_COLUMNS}, {clock} - renewed_us FROM sessions ORDER BY id")]


def clean(conn: Connection, clock: str, grace_s: float) -> list[Session]:
    """Remove the sessions lapsed for longer than `grace_s`; those removed (each by one
    host only)."""
    return [_session(r) for r in conn.execute(
        f"DELETE FROM sessions WHERE renewed_us + ttl_us + ? < {clock} "
        f"RETURNING {_COLUMNS}, {clock} - renewed_us", (int(grace_s * 1e6),))]
