"""`search_index` (FTS5): names, columns and comments of everything the catalog knows.

The index is derived data: each source's rows are replaced whole whenever a
scan, `manage` or `unmanage` changes what is known of it, in the same
transaction, so a search never sees half an update.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import apsw

from markfs.catalog.db import Txn

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    path: str
    kind: str
    name: str
    detail: str


def _words(text: str) -> str:
    """camelCase and snake_case names also as their parts, so 'order' finds 'OrderItems'."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return text if spaced == text else f"{text} {spaced}"


def reindex_tables(txn: Txn, source_id: int, source_name: str,
                   folder: dict[str, str]) -> None:
    """Replace the source's rows with one per table/view (and the source itself).
    `folder` maps a managed table's SOURCE/SCHEMA/TABLE to its mount path."""
    txn.execute("DELETE FROM search_index WHERE source_id = ?", (source_id,))
    txn.execute("INSERT INTO search_index (path, source_id, kind, name, detail) "
                "VALUES (?, ?, 'source', ?, '')", (source_name, source_id, source_name))
    rows = txn.execute(
        "SELECT t.schema_name, t.table_name, t.kind, "
        "(SELECT group_concat(c.name || ' ' || c.type || ' ' || coalesce(c.comment, ''), ' ; ')"
        " FROM sql_columns c WHERE c.table_id = t.id) "
        "FROM sql_tables t WHERE t.source_id = ? AND t.deprecated_ns IS NULL",
        (source_id,)).fetchall()
    for schema, table, kind, columns in rows:
        ref = f"{source_name}/{schema}/{table}"
        txn.execute("INSERT INTO search_index (path, source_id, kind, name, detail) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (folder.get(ref, ref), source_id, kind, _words(f"{schema} {table}"),
                     _words(str(columns or ""))))


def reindex_files(txn: Txn, source_id: int, source_name: str, paths: list[str],
                  details: dict[str, str]) -> None:
    """Replace the source's rows with one per file and folder a scan listed; `details`
    adds words (a structured file's column names) to some of them."""
    txn.execute("DELETE FROM search_index WHERE source_id = ?", (source_id,))
    txn.execute("INSERT INTO search_index (path, source_id, kind, name, detail) "
                "VALUES (?, ?, 'source', ?, '')", (f"/sources/{source_name}", source_id,
                                                    source_name))
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        txn.execute("INSERT INTO search_index (path, source_id, kind, name, detail) "
                    "VALUES (?, ?, 'file', ?, ?)",
                    (f"/sources/{source_name}/{path}", source_id, _words(name),
                     _words(details.get(path, ""))))


def forget_source(txn: Txn, source_id: int) -> None:
    txn.execute("DELETE FROM search_index WHERE source_id = ?", (source_id,))


def source_nodes_named(conn: apsw.Connection, text: str, limit: int) -> list[int]:
    """Ids of files and folders of file sources the catalog knows (listed through a
    mount or named by the CLI, scanned or not) whose name holds every word of `text`,
    case aside: what a user sees in `ls` is found without a scan."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return []
    where = " AND ".join("instr(lower(CAST(name AS TEXT)), ?) > 0" for _ in words)
    return [int(r[0]) for r in conn.execute(
        f"SELECT id FROM nodes WHERE kind = 'source' AND remote_path != x'' AND {where} "
        "ORDER BY length(name), id LIMIT ?", (*words, limit))]


def search(conn: apsw.Connection, text: str, limit: int = 50) -> list[Hit]:
    """Entries matching every word of `text` (each as a prefix), best first."""
    words = _WORD.findall(text)
    if not words:
        return []
    query = " AND ".join('"' + w.replace('"', '""') + '"*' for w in words)
    return [Hit(str(p), str(k), str(n), str(d)) for p, k, n, d in conn.execute(  # type: ignore[misc]
        "SELECT path, kind, name, detail FROM search_index WHERE search_index MATCH ? "
        "ORDER BY rank LIMIT ?", (query, limit))]

class Search:
    """The full-text index of names and comments, read on the catalog's connection (writes:
    this module's functions, inside a transaction)."""

    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn

    def source_nodes_named(self, text: str, limit: int) -> list[int]:
        return source_nodes_named(self._conn, text, limit)

    def search(self, text: str, limit: int = 50) -> list[Hit]:
        return search(self._conn, text, limit)
