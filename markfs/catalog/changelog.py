"""The change log (`changes`): what each transaction on a shared catalog changed.

Several hosts keep their own caches of one catalog (LMDB, the kernel's entries); each
must hear of the others' writes. A write transaction on a shared engine records its
changes under its stamp (`statements`), in its COMMIT's round trip. Commits happen in
stamp order — the stamp row is locked from its bump (at BEGIN, or in that round trip:
`engines/postgres.py`) to COMMIT, and the log's rows are written after it — so a host
that has applied every stamp up to S reads the rows after S (`read_since`) and misses
nothing. What it gets is
a `ChangeSet` of the nodes' rows as they are now: applying it twice, or after a newer
one, leaves the cache as the catalog is.

The log is trimmed to the newest `KEEP_STAMPS` stamps (`trim`); a host whose last stamp
is older than what was trimmed (`meta.changes_trimmed`) gets None and rebuilds its
caches whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from markfs.catalog.engines import Connection
from markfs.catalog.txn import NODE_COLUMNS, Txn, row_to_node
from markfs.columns import integer
from markfs.model import ChangeSet

KEEP_STAMPS = 100_000  # transactions a host may be behind and still catch up row by row
TRIM_EVERY = 1_000  # a transaction whose stamp is a multiple of this trims the log
_CHUNK = 500  # node ids per IN (...) list


Statement = tuple[str, tuple[Any, ...]]


def statements(stamp: int | None, changes: ChangeSet) -> list[Statement]:
    """The writes that log one transaction's changes (sent with its COMMIT: one round
    trip) under `stamp` — None: the one the transaction bumped just before them
    (`Engine.commit_stamping`) — and, every `TRIM_EVERY` stamps, the trim of the log."""
    rows: list[tuple[int | None, int, int | None, bytes | None]] = [
        *((node.id, 0, None, None) for node in changes.nodes),
        *((node_id, 1, None, None) for node_id in changes.gone_nodes),
        *((None, 0, parent, name) for parent, name in changes.gone_dentries)]
    out: list[Statement] = []
    if rows:
        mark = "?" if stamp is not None else "(SELECT value FROM meta WHERE key = 'stamp')"
        head = (stamp,) if stamp is not None else ()
        out.append(("INSERT INTO changes (stamp, node_id, gone, parent, name) VALUES "
                    + ", ".join([f"({mark}, ?, ?, ?, ?)"] * len(rows)),
                    tuple(value for row in rows for value in (*head, *row))))
    if stamp is not None:
        out += trim_due(stamp)
    return out


def trim_due(stamp: int) -> list[Statement]:
    """The trim a transaction of `stamp` makes: every `TRIM_EVERY` stamps."""
    return trim(stamp - KEEP_STAMPS) if stamp % TRIM_EVERY == 0 and stamp > KEEP_STAMPS else []


def trim(through: int) -> list[Statement]:
    return [("DELETE FROM changes WHERE stamp <= ?", (through,)),
            ("INSERT INTO meta (key, value) VALUES ('changes_trimmed', ?) "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (through,))]


def newest_stamp(conn: Connection | Txn) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
    return integer(row[0]) if row else 0


def read_since(conn: Connection | Txn, after: int, newest: int,
               mine: Collection[int] = ()) -> ChangeSet | None:
    """What changed in the stamps after `after` up to `newest` (read in one snapshot, or
    inside the writer's own transaction) but in the stamps `mine` (the reader's own
    commits its mirror holds: at most `_CHUNK`, else all are read); None if the log no
    longer reaches back."""
    trimmed = conn.execute("SELECT value FROM meta WHERE key = 'changes_trimmed'").fetchone()
    if trimmed is not None and integer(trimmed[0]) > after:
        return None
    changes = ChangeSet()
    touched: set[int] = set()
    skip = sorted(mine) if len(mine) <= _CHUNK else []
    but = f" AND stamp NOT IN ({', '.join('?' * len(skip))})" if skip else ""
    for node_id, gone, parent, name in conn.execute(
            "SELECT node_id, gone, parent, name FROM changes WHERE stamp > ? AND stamp <= ?"
            f"{but} ORDER BY id", (after, newest, *skip)):
        if parent is not None:
            changes.gone_dentries.append((integer(parent), bytes(name)))
        elif gone:
            changes.gone_nodes.append(integer(node_id))
            touched.discard(integer(node_id))
        else:
            touched.add(integer(node_id))
    _current_rows(conn, sorted(touched), changes)
    return changes


def _current_rows(conn: Connection | Txn, ids: list[int], changes: ChangeSet) -> None:
    """The touched nodes' rows and names as they are now (a node gone since: gone)."""
    found: set[int] = set()
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {NODE_COLUMNS} FROM nodes WHERE id IN ({marks})",
                                tuple(chunk)):
            node = row_to_node(row)
            found.add(node.id)
            changes.nodes.append(node)
            if node.id != node.parent:
                changes.dentries.append((node.parent, node.name, node.id))
        for parent, name, node_id in conn.execute(
                f"SELECT parent, name, node_id FROM hardlinks WHERE node_id IN ({marks})",
                tuple(chunk)):
            changes.dentries.append((integer(parent), bytes(name), integer(node_id)))
    changes.gone_nodes.extend(sorted(set(ids) - found))


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def names_and_nodes(changes: ChangeSet) -> tuple[list[tuple[int, bytes]], list[int]]:
    """The names and nodes a kernel may hold that `changes` touched."""
    names = [*changes.gone_dentries, *((p, n) for p, n, _ in changes.dentries)]
    nodes: list[Any] = [*(n.id for n in changes.nodes), *changes.gone_nodes]
    return sorted(set(names)), sorted(set(nodes))
