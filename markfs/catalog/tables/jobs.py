"""The `scan_jobs` log: every scan and render, its progress and its outcome."""

from __future__ import annotations

from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    target: str
    started_ns: int
    finished_ns: int | None
    state: str
    done: int
    total: int | None
    message: str | None


def start(txn: Txn, kind: str, target: str, total: int | None, now_ns: int) -> int:
    return txn.insert("INSERT INTO scan_jobs (kind, target, started_ns, state, total) "
                      "VALUES (?, ?, ?, 'running', ?)", (kind, target, now_ns, total))


def progress(txn: Txn, job_id: int, done: int) -> None:
    txn.execute("UPDATE scan_jobs SET done = ? WHERE id = ?", (done, job_id))


def finish(txn: Txn, job_id: int, ok: bool, message: str, now_ns: int) -> None:
    txn.execute("UPDATE scan_jobs SET state = ?, message = ?, finished_ns = ? WHERE id = ?",
                ("done" if ok else "failed", message, now_ns, job_id))


def count_by_state(conn: Connection) -> dict[str, int]:
    """How many jobs are running, done and failed (the whole log)."""
    counts = {"running": 0, "done": 0, "failed": 0}
    for state, count in conn.execute("SELECT state, count(*) FROM scan_jobs GROUP BY state"):
        counts[str(state)] = int(count)
    return counts


def recent(conn: Connection, limit: int = 10) -> list[JobRow]:
    return [JobRow(*(r)) for r in conn.execute(  # type: ignore[misc]
        "SELECT id, kind, target, started_ns, finished_ns, state, done, total, message "
        "FROM scan_jobs ORDER BY id DESC LIMIT ?", (limit,))]

class Jobs:
    """Scan and render jobs, read on the catalog's connection (writes: this module's
    functions, inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def count_by_state(self) -> dict[str, int]:
        return count_by_state(self._conn)

    def recent(self, limit: int = 10) -> list[JobRow]:
        return recent(self._conn, limit)
