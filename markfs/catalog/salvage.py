"""Salvaging a damaged catalog: every row SQLite can still read, into a new file.

SQLite's own recovery (`sqlite3_recover`, the shell's `.recover`) needs the
`sqlite_dbpage` table, which neither apsw's nor Debian's build has; but the
catalog's schema is ours, so the salvage is simple: a new catalog is made by the
migrations, and each table is copied in rowid order. Where a read fails (a
damaged page), the copy skips ahead — doubling the step — until rows can be read
again, so one bad page costs the rows on it and no more. The search index is
derived and left empty (the next scans fill it); `meta` keeps the old
generation, so NFS handles stay valid. The damaged file is kept beside the new one
(`catalog.db.damaged-<time>`), and the report says, per table, what was lost.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import apsw

from markfs.catalog.db import Catalog
from markfs.catalog.engines.sqlite import DAMAGE_ERRORS, SqliteEngine

_SKIPPED = ("meta", "search_index")  # copied separately; derived


def salvage(path: Path) -> list[str]:
    """Replace the catalog at `path` by what can be read of it; what happened."""
    new_path = path.with_name(path.name + ".salvaged")
    for leftover in (new_path, Path(f"{new_path}-wal"), Path(f"{new_path}-shm")):
        leftover.unlink(missing_ok=True)
    old = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY
                          | apsw.SQLITE_OPEN_URI)
    new = Catalog(new_path)
    assert isinstance(new.engine, SqliteEngine)
    conn = new.engine.conn
    try:
        conn.execute("PRAGMA foreign_keys = OFF")  # a row's parent may be lost
        report = [_copy_table(old, conn, table) for table in _tables(conn)]
        _copy_meta(old, conn)
    finally:
        new.close()
        old.close()
    kept = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    os.replace(path, kept)
    for suffix in ("-wal", "-shm"):  # they belong to the damaged file
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{kept}{suffix}")
    os.replace(new_path, path)
    lost = [line for line in report if line]
    return [f"salvaged the catalog into a new file; the damaged one is kept as {kept}",
            *(lost or ["every readable table was copied whole"]),
            "the search index starts empty: run markfs scan to fill it"]


def _tables(conn: apsw.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'search_index%' AND name != 'meta' ORDER BY name")]


def _copy_table(old: apsw.Connection, new: apsw.Connection, table: str) -> str:
    """Copy what can be read; a line on what was lost ("" if nothing was)."""
    try:
        names = [str(r[1]) for r in old.execute(f'PRAGMA table_info("{table}")')]
    except DAMAGE_ERRORS:
        return f"{table}: unreadable, all rows lost"
    wanted = [n for n in (str(r[1]) for r in new.execute(f'PRAGMA table_info("{table}")'))
              if n in names]
    columns = ", ".join(f'"{n}"' for n in wanted)
    if "WITHOUT ROWID" in str(new.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                          (table,)).fetchone()).upper():
        return _copy_in_key_order(old, new, table, columns, len(wanted))
    insert = (f'INSERT OR IGNORE INTO "{table}" (rowid, {columns}) '
              f'VALUES (?, {", ".join("?" for _ in wanted)})')
    copied, gaps = 0, 0
    after, step, limit = -(2**63), 1, 1000
    with new:
        while after < 2**62:
            try:
                rows = old.execute(f'SELECT rowid, {columns} FROM "{table}" WHERE rowid > ? '
                                   f"ORDER BY rowid LIMIT {limit}", (after,)).fetchall()
            except DAMAGE_ERRORS:
                if limit > 1:  # row by row up to the damage, then skip ahead
                    limit = 1
                    continue
                gaps, after, step = gaps + (step == 1), after + step, step * 2
                continue
            if not rows:
                break
            new.executemany(insert, rows)
            copied, after = copied + len(rows), int(rows[-1][0])  # type: ignore[arg-type]
            if step > 1:
                step, limit = 1, 1000
    return "" if not gaps else (f"{table}: {copied} row(s) copied; the rows of "
                                f"{gaps} damaged stretch(es) are lost")


def _copy_in_key_order(old: apsw.Connection, new: apsw.Connection, table: str,
                       columns: str, count: int) -> str:
    """A table without rowids (small ones here): rows up to the first damage."""
    insert = f'INSERT OR IGNORE INTO "{table}" ({columns}) VALUES ({", ".join("?" * count)})'
    copied = 0
    with new:
        try:
            for row in old.execute(f'SELECT {columns} FROM "{table}"'):
                new.execute(insert, row)
                copied += 1
        except DAMAGE_ERRORS:
            return f"{table}: {copied} row(s) copied, the rest lost"
    return ""


def _copy_meta(old: apsw.Connection, new: apsw.Connection) -> None:
    """The old generation (NFS handles) and a stamp past the old one; the new schema
    version stays. AUTOINCREMENT counters never go back (inodes are never reused)."""
    with new:
        with contextlib.suppress(*DAMAGE_ERRORS, apsw.SQLError):
            for key, value in old.execute(
                    "SELECT key, value FROM meta WHERE key IN ('generation', 'stamp')"):
                bump = 1 if key == "stamp" else 0
                new.execute("UPDATE meta SET value = ? WHERE key = ?",
                            (int(value) + bump, key))  # type: ignore[arg-type]
        with contextlib.suppress(*DAMAGE_ERRORS, apsw.SQLError):
            for name, seq in old.execute("SELECT name, seq FROM sqlite_sequence"):
                new.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                            (seq, name))
                new.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT "
                            "EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                            (name, seq, name))
