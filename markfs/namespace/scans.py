"""Level-1 scan of an SQL source: its tables and views, their row counts and columns.

Incremental: a table whose change token is the one recorded at the last scan is
not read again. Everything is read from the source first and written to the
catalog in one short transaction afterwards, so a source that fails mid-scan
leaves the catalog as it was. Tables the scan no longer finds are marked
deprecated, not dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from markfs.catalog import jobs as jq
from markfs.catalog import search as sx
from markfs.catalog import sqltables as tq
from markfs.catalog.db import Txn
from markfs.catalog.sources import SourceRow
from markfs.namespace.tree import Tree, table_folder_path
from markfs.sources.base import ColumnInfo, SqlSource, TableInfo


@dataclass(frozen=True)
class ScanReport:
    source: str
    tables: int  # found now
    read: int  # new or changed: columns read again
    unchanged: int
    deprecated: int  # no longer found


Progress = Callable[[int, int], None]
_PROGRESS_EVERY_S = 1.0  # job progress reaches the catalog at most this often


@contextmanager
def tracked_job(tree: Tree, kind: str, target: str,
                total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A row in the scan-job log for the duration of the block; yields a function that
    records how many units are done. A failure is logged with its message, then raised."""
    with tree.transaction() as txn:
        job = jq.start(txn, kind, target, total, time.time_ns())
    last = [0.0]

    def report(done: int) -> None:
        if time.monotonic() - last[0] >= _PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            with tree.transaction() as txn:
                jq.progress(txn, job, done)

    try:
        yield report
    except BaseException as exc:
        with tree.transaction() as txn:
            jq.finish(txn, job, False, (str(exc) or type(exc).__name__).splitlines()[0],
                      time.time_ns())
        raise
    with tree.transaction() as txn:
        jq.finish(txn, job, True, "", time.time_ns())


def scan_sql_source(tree: Tree, row: SourceRow, source: SqlSource,
                    progress: Progress | None = None) -> ScanReport:
    with tracked_job(tree, "scan", row.name) as report:
        def both(done: int, total: int) -> None:
            report(done)
            if progress is not None:
                progress(done, total)
        return _scan_sql(tree, row, source, both)


def _scan_sql(tree: Tree, row: SourceRow, source: SqlSource, progress: Progress) -> ScanReport:
    known = tq.known_tokens(tree.catalog.conn, row.id)
    infos = source.tables()
    changed: list[tuple[TableInfo, list[ColumnInfo]]] = []
    unchanged: list[int] = []
    for done, info in enumerate(infos, 1):
        previous = known.get((info.schema, info.name))
        if previous is not None and previous[1] == info.change_token:
            unchanged.append(previous[0])
        else:
            changed.append((info, source.columns(info.schema, info.name)))
        progress(done, len(infos))
    now = time.time_ns()
    with tree.transaction() as txn:
        seen = set(unchanged)
        for table_id in unchanged:
            tq.touch(txn, table_id, now)
        for info, columns in changed:
            table_id = tq.upsert(txn, row.id, info.schema, info.name, info.kind, info.rows,
                                 info.rows_exact, info.change_token, now)
            tq.replace_columns(txn, table_id, [
                (c.position, c.name, c.type, c.nullable, c.primary_key, c.comment)
                for c in columns])
            seen.add(table_id)
        deprecated = tq.deprecate_missing(txn, row.id, seen, now)
        reindex_sql(txn, row.id, row.name)
    return ScanReport(row.name, len(infos), len(changed), len(unchanged), deprecated)


def reindex_sql(txn: Txn, source_id: int, source_name: str) -> None:
    """Rebuild the search rows of an SQL source; managed tables are found at their folder."""
    folders = {f"{t.source}/{t.schema}/{t.name}": table_folder_path(t.source, t.schema, t.name)
               for t in tq.list_tables(txn.conn, source_id) if t.managed}
    sx.reindex_tables(txn, source_id, source_name, folders)
