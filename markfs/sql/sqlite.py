"""`sqlite:///path.db` sources, read through apsw in read-only mode.

Change tokens never miss a committed change: a table's token is its SQL, its row
count and a digest of all its rows (every value `quote`d by SQLite itself, hashed
in batches); a view's, its SQL and the digests of all tables. Hashing every table
at every scan would read the whole database, so each scan also records the
database's commit identity (`scan_hint`) — the file header (with its change
counter), the WAL header (checkpoint sequence and salts) and both files' sizes
and mtimes, of which every commit changes at least one. While it is the one of
the last scan, the last tokens stand without a row being read.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import apsw
import pyarrow as pa
import xxhash

from markfs.columns import integer
from markfs.errors import SourceError
from markfs.sql.base import ColumnInfo, ReadAgain, TableInfo

SCHEMA = "main"
TOKEN_VERSION = "v2"
DIGEST_BATCH = 16_384  # rows hashed per query (their text is built by SQLite, in C)


def quote(identifier: str) -> str:
    """An SQL identifier, quoted so that any name (quotes, spaces, case) is exact."""
    return '"' + identifier.replace('"', '""') + '"'


class SqliteSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.database = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY
                                    | apsw.SQLITE_OPEN_URI)
        self.database.set_busy_timeout(5000)
        self._row_by_row: set[str] = set()  # tables whose values defeat the fast path
        self._commit: str | None = None  # the database's commit identity at tables()

    def close(self) -> None:
        self.database.close()

    def tables(self, known: Mapping[tuple[str, str], str] | None = None,
               hint: str | None = None) -> list[TableInfo]:
        self._commit = commit_identity(self.path)  # before reading: later commits show next time
        rows = [(str(k), str(n), str(q)) for k, n, q in self.database.execute(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_schema "
            "WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name")]
        sizes = self._sizes()
        previous = dict(known or {}) if hint == self._commit else {}
        infos = {name: self._info(kind, name, sql, sizes.get(name),
                                  previous.get((SCHEMA, name)))
                 for kind, name, sql in rows if kind == "table"}
        everything = hashlib.sha1("".join(sorted(i.change_token for i in infos.values()))
                                  .encode()).hexdigest()
        for kind, name, sql in rows:
            if kind == "view":  # its rows come from the tables: it changes with any of them
                count = self._count(name)
                infos[name] = TableInfo(SCHEMA, name, kind, count, True, ":".join(
                    (TOKEN_VERSION, _hash(sql), str(count), everything)), sizes.get(name))
        return [infos[name] for _kind, name, _sql in rows]

    def scan_hint(self) -> str | None:
        return self._commit

    def _sizes(self) -> dict[str, int]:
        """Bytes of pages per table, its indexes included (SQLite's dbstat table)."""
        try:
            return {str(t): integer(n) for t, n in self.database.execute(
                "SELECT s.tbl_name, sum(d.pgsize) FROM dbstat d "
                "JOIN sqlite_schema s ON s.name = d.name GROUP BY s.tbl_name")}
        except apsw.SQLError:  # a SQLite built without dbstat: sizes unknown
            return {}

    def _info(self, kind: str, name: str, sql: str, size: int | None,
              known: str | None) -> TableInfo:
        parts = (known or "").split(":")
        if len(parts) == 4 and parts[:2] == [TOKEN_VERSION, _hash(sql)]:  # unchanged database
            return TableInfo(SCHEMA, name, kind, int(parts[2]), True, known or "", size)
        count, digest = self._digest(name, "WITHOUT ROWID" in sql.upper())
        token = ":".join((TOKEN_VERSION, _hash(sql), str(count), digest))
        return TableInfo(SCHEMA, name, kind, count, True, token, size)

    def _count(self, name: str) -> int:
        row = self.database.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
        return integer(row[0]) if row else 0

    def _digest(self, table: str, without_rowid: bool) -> tuple[int, str]:
        """(rows, xxh3-128 of every value of every row, in rowid order)."""
        names = [str(r[1]) for r in self.database.execute(f"PRAGMA table_info({quote(table)})")]
        row_text = " || x'1f' || ".join(f"quote({quote(n)})" for n in names) or "''"
        digest, count = xxhash.xxh3_128(), 0
        if without_rowid:  # (rare) row by row, in primary-key order
            for (text,) in self.database.execute(f"SELECT {row_text} FROM {quote(table)}"):
                digest.update(str(text).encode() + b"\x1e")
                count += 1
            return count, digest.hexdigest()
        last: int | None = None
        while True:
            after = "" if last is None else f"WHERE rowid > {last} "
            got = self.database.execute(
                f"SELECT count(*), max(r), group_concat(t, x'1e') FROM (SELECT rowid AS r, "
                f"{row_text} AS t FROM {quote(table)} {after}ORDER BY rowid "
                f"LIMIT {DIGEST_BATCH})").fetchone()
            if not got or not got[0]:
                return count, digest.hexdigest()
            count += integer(got[0])
            last = integer(got[1])
            digest.update(str(got[2]).encode() + f"|{last}|".encode())

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        rows = self.database.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return [ColumnInfo(name=str(name), type=str(ctype or ""), nullable=not notnull,
                           primary_key=bool(pk), comment=None, position=integer(cid))
                for cid, name, ctype, notnull, _default, pk in rows]

    def read_table(self, schema: str, table: str, columns: list[ColumnInfo],
                   batch_rows: int = 65_536) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Through ADBC's SQLite driver (C, straight into Arrow: about 3x faster than
        fetching rows through apsw) cast to the declared types. That driver fixes each
        column's type from the first rows; SQLite lets later rows hold other types, and
        then it stops with an error. The table is then marked for row-by-row reading
        (apsw, SQLite's own affinity rules) and `ReadAgain` tells the caller to start over."""
        arrow = arrow_schema(columns)
        if table in self._row_by_row:
            return arrow, stream_batches(self, table, arrow, batch_rows)
        return arrow, self._fast_batches(table, arrow, batch_rows)

    def _fast_batches(self, table: str, schema: pa.Schema,
                      batch_rows: int) -> Iterator[pa.RecordBatch]:
        import adbc_driver_sqlite.dbapi as adbc

        names = ", ".join(quote(f.name) for f in schema)
        conn = adbc.connect(f"file:{self.path}?mode=ro")
        try:
            cursor = conn.cursor()
            cursor.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(batch_rows)})
            cursor.execute(f"SELECT {names} FROM {quote(table)}")
            for batch in cursor.fetch_record_batch():
                yield batch.cast(schema)
            cursor.close()
        except (adbc.Error, OSError, pa.ArrowInvalid) as exc:
            self._row_by_row.add(table)
            raise ReadAgain(f"{table}: mixed value types ({exc}); reading row by row") from None
        finally:
            conn.close()

    def check(self) -> str:
        tables = self.tables()
        return f"{self.path}: SQLite database, {len(tables)} tables and views"


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def commit_identity(path: Path) -> str:
    """What changes with every commit to the database: the header (its change counter),
    the WAL's header (checkpoint sequence, salts), and both files' sizes and mtimes."""
    parts = []
    for file, head in ((str(path), 100), (f"{path}-wal", 32)):
        try:
            st = os.stat(file)
            with open(file, "rb") as f:
                parts.append(f.read(head) + f"{st.st_size}:{st.st_mtime_ns}".encode())
        except FileNotFoundError:
            parts.append(b"-")
    return xxhash.xxh3_64_hexdigest(b"|".join(parts))


def arrow_type(declared: str) -> pa.DataType:
    """SQLite's type affinity rules (section 3.1 of its datatype page) mapped to Arrow."""
    upper = declared.upper()
    if "INT" in upper:
        return pa.int64()
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in upper or not upper:
        return pa.binary() if "BLOB" in upper else pa.string()
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    return pa.string()  # NUMERIC affinity: exact text, never a lossy float


def arrow_schema(columns: list[ColumnInfo]) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable)
                      for c in columns])


def _column(values: list[object], field: pa.Field) -> pa.Array:
    if pa.types.is_string(field.type):
        values = [v if v is None or isinstance(v, str) else
                  (v.hex() if isinstance(v, bytes) else str(v)) for v in values]
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        raise ValueError(f"column {field.name!r} holds values that are not "
                         f"{field.type}: the table needs a string column type") from None


def stream_batches(source: SqliteSource, table: str, schema: pa.Schema,
                   batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """The table's rows as Arrow record batches, `batch_rows` at a time (bounded memory)."""
    names = ", ".join(quote(f.name) for f in schema)
    try:
        cursor = source.database.execute(f"SELECT {names} FROM {quote(table)}")
        yield from _batches_of(cursor, schema, batch_rows)
    except apsw.Error as exc:
        raise SourceError.of(f"cannot read {table!r} from {source.path}", exc) from None


def _batches_of(cursor: apsw.Cursor, schema: pa.Schema,
                batch_rows: int) -> Iterator[pa.RecordBatch]:
    while rows := list(itertools.islice(cursor, batch_rows)):
        columns = list(zip(*rows, strict=True))
        yield pa.RecordBatch.from_arrays(
            [_column(list(col), field) for col, field in zip(columns, schema, strict=True)],
            schema=schema)
