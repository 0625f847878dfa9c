"""Level-1 scan of an SQL source: its tables and views, their row counts and columns.

Incremental: a table whose change token is the one recorded at the last scan is
not read again. Everything is read from the source first and written to the
catalog in one short transaction afterwards, so a source that fails mid-scan
leaves the catalog as it was. Tables the scan no longer finds are marked
deprecated, not dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from markfs.catalog.sources import SourceRow
from markfs.catalog.tables import jobs, sqltables
from markfs.catalog.tables import managed as managed_rows
from markfs.catalog.tables import search as search_index
from markfs.catalog.tables.sqltables import TableRow
from markfs.catalog.txn import Txn
from markfs.namespace.tree import Tree, table_folder_path
from markfs.scan.stats import ColumnStats, TableStats
from markfs.sql.base import ColumnInfo, SqlSource, TableInfo, reading_again_once
from markfs.values import json_default


@dataclass(frozen=True)
class ScanReport:
    source: str
    tables: int  # found now
    read: int  # new or changed: columns read again
    unchanged: int
    deprecated: int  # no longer found


Progress = Callable[[int, int], None]
SAMPLE_ROWS = 10
_PROGRESS_EVERY_S = 1.0  # job progress reaches the catalog at most this often


@contextmanager
def tracked_job(tree: Tree, kind: str, target: str,
                total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A row in the scan-job log for the duration of the block; yields a function that
    records how many units are done. A failure is logged with its message, then raised."""
    with tree.transaction() as txn:
        job = jobs.start(txn, kind, target, total, time.time_ns())
    last = [0.0]
    latest = [0]  # the newest count, written at the end whatever the throttle kept back

    def report(done: int) -> None:
        latest[0] = done
        if time.monotonic() - last[0] >= _PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            with tree.transaction() as txn:
                jobs.progress(txn, job, done)

    try:
        yield report
    except BaseException as exc:
        with tree.transaction() as txn:
            jobs.finish(txn, job, False, (str(exc) or type(exc).__name__).splitlines()[0],
                      time.time_ns())
        raise
    with tree.transaction() as txn:
        jobs.progress(txn, job, latest[0])
        jobs.finish(txn, job, True, "", time.time_ns())


def scan_sql_source(tree: Tree, row: SourceRow, source: SqlSource,
                    progress: Progress | None = None) -> ScanReport:
    with tracked_job(tree, "scan", row.name) as report:
        def both(done: int, total: int) -> None:
            report(done)
            if progress is not None:
                progress(done, total)
        return _scan_sql(tree, row, source, both)


def _scan_sql(tree: Tree, row: SourceRow, source: SqlSource, progress: Progress) -> ScanReport:
    known = tree.catalog.tables.known_tokens(row.id)
    infos = source.tables({key: token for key, (_id, token) in known.items()},
                          tree.catalog.tables.scan_hint(row.id))
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
        sqltables.set_scan_hint(txn, row.id, source.scan_hint())
        seen = set(unchanged)
        for table_id in unchanged:
            sqltables.touch(txn, table_id, now)
        for info, columns in changed:
            table_id = sqltables.upsert(txn, row.id, info.schema, info.name, info.kind, info.rows,
                                 info.rows_exact, info.change_token, now, info.size_bytes)
            sqltables.replace_columns(txn, table_id, [
                (c.position, c.name, c.type, c.nullable, c.primary_key, c.comment)
                for c in columns])
            seen.add(table_id)
        deprecated = sqltables.deprecate_missing(txn, row.id, seen, now)
        reindex_sql(tree, txn, row.id, row.name)
    return ScanReport(row.name, len(infos), len(changed), len(unchanged), deprecated)


def reindex_sql(tree: Tree, txn: Txn, source_id: int, source_name: str) -> None:
    """Rebuild the search rows of an SQL source (inside `txn`); managed tables are found at
    their folder."""
    folders = {f"{t.source}/{t.schema}/{t.name}": table_folder_path(t.source, t.schema, t.name)
               for t in tree.catalog.tables.list_tables(source_id) if t.managed}
    search_index.reindex_tables(txn, source_id, source_name, folders)


def save_table_stats(txn: Txn, table: TableRow, rows: int, stats: list[ColumnStats],
                     sample: list[dict[str, object]], when_ns: int) -> None:
    managed_rows.save_stats(txn, table.id, table.change_token, rows,
                  json.dumps(sample, ensure_ascii=False, default=json_default), when_ns,
                  [(i, c.null_count, c.distinct_count, c.distinct_exact, c.min_value,
                    c.max_value, c.min_length, c.max_length, c.avg_length)
                   for i, c in enumerate(stats)])


@dataclass(frozen=True)
class DeepReport:
    source: str
    read: int  # tables whose statistics were computed now
    unchanged: int  # statistics still current (same change token)


def deep_scan_sql_source(tree: Tree, row: SourceRow, source: SqlSource,
                         progress: Progress | None = None) -> DeepReport:
    """Level 2: per-column statistics and a sample of every table whose statistics are
    older than its change token (run a level-1 scan first so tokens are current)."""
    tables = [t for t in tree.catalog.tables.list_tables(row.id) if not t.deprecated]
    done_at = tree.catalog.managed.stats_tokens(row.id)
    todo = [t for t in tables if done_at.get(t.id) != t.change_token]
    with tracked_job(tree, "deep-scan", row.name, len(todo)) as report:
        for done, table in enumerate(todo, 1):
            _deep_scan_table(tree, source, table)
            report(done)
            if progress is not None:
                progress(done, len(todo))
    return DeepReport(row.name, len(todo), len(tables) - len(todo))


def _deep_scan_table(tree: Tree, source: SqlSource, table: TableRow) -> None:
    columns = [ColumnInfo(name, ctype, nullable, pk, comment, pos) for pos, name, ctype,
               nullable, pk, comment in tree.catalog.tables.columns_of(table.id)]
    stats, sample = reading_again_once(lambda: _column_stats(source, table, columns))
    with tree.transaction() as txn:
        save_table_stats(txn, table, stats.rows, stats.columns(), sample, time.time_ns())


def _column_stats(source: SqlSource, table: TableRow,
                  columns: list[ColumnInfo]) -> tuple[TableStats, list[dict[str, object]]]:
    schema, batches = source.read_table(table.schema, table.name, columns)
    stats = TableStats(schema)
    sample: list[dict[str, object]] = []
    for batch in batches:
        stats.add(batch)
        if len(sample) < SAMPLE_ROWS:
            sample += batch.slice(0, SAMPLE_ROWS - len(sample)).to_pylist()
    return stats, sample
