"""`search_index`: names, columns and comments of everything the catalog knows.

The index is derived data: each source's rows are replaced whole whenever a
scan, `manage` or `unmanage` changes what is known of it, in the same
transaction, so a search never sees half an update. The rows are written in
plain SQL; each engine searches them with its own full-text search — SQLite's
FTS5 (`Search`), PostgreSQL's tsvector (`PostgresSearch`, over a column the
table derives from name and detail; `engines/pgschema.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn

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
        "SELECT t.id, t.schema_name, t.table_name, t.kind FROM sql_tables t "
        "WHERE t.source_id = ? AND t.deprecated_ns IS NULL", (source_id,)).fetchall()
    for table_id, schema, table, kind in rows:
        columns = " ; ".join(f"{n} {t} {c or ''}" for n, t, c in txn.execute(
            "SELECT name, type, comment FROM sql_columns WHERE table_id = ? ORDER BY position",
            (table_id,)).fetchall())
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


def source_nodes_named(conn: Connection, text: str, limit: int) -> list[int]:
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


def search(conn: Connection, text: str, limit: int = 50) -> list[Hit]:
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

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def source_nodes_named(self, text: str, limit: int) -> list[int]:
        return source_nodes_named(self._conn, text, limit)

    def search(self, text: str, limit: int = 50) -> list[Hit]:
        return search(self._conn, text, limit)


class PostgresSearch:
    """The same index searched with PostgreSQL's own full-text search: every word a
    prefix of a word of the row (`'w':*`), best `ts_rank` first."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def source_nodes_named(self, text: str, limit: int) -> list[int]:
        # names are bytes: compared in `escape` form, where ASCII is itself and every other
        # byte an octal escape, the word encoded the same way (case folds for ASCII only)
        words = [_escaped(w.lower()) for w in _WORD.findall(text)]
        if not words:
            return []
        where = " AND ".join("strpos(lower(encode(name, 'escape')), ?) > 0" for _ in words)
        return [int(r[0]) for r in self._conn.execute(
            f"SELECT id FROM nodes WHERE kind = 'source' AND remote_path != ? AND {where} "
            "ORDER BY length(name), id LIMIT ?", (b"", *words, limit))]

    def search(self, text: str, limit: int = 50) -> list[Hit]:
        words = [w.lower() for w in _ALNUM.findall(text)]
        if not words:
            return []
        query = " & ".join(f"'{w}':*" for w in words)
        return [Hit(str(p), str(k), str(n), str(d)) for p, k, n, d in self._conn.execute(
            "SELECT path, kind, name, detail FROM search_index "
            "WHERE words @@ to_tsquery('simple', ?) "
            "ORDER BY ts_rank(words, to_tsquery('simple', ?)) DESC, path LIMIT ?",
            (query, query, limit))]


_ALNUM = re.compile(r"[^\W_]+", re.UNICODE)  # what PostgreSQL's index holds as words


def _escaped(word: str) -> str:
    """`word` as PostgreSQL's `encode(bytes, 'escape')` shows its UTF-8 bytes."""
    return "".join(chr(b) if b < 0x80 and b != 0x5C else
                   ("\\\\" if b == 0x5C else f"\\{b:03o}") for b in word.encode())


def search_of(engine: str, conn: Connection) -> Search | PostgresSearch:
    """The reader of the index for a catalog on `engine`."""
    return PostgresSearch(conn) if engine == "postgresql" else Search(conn)
