"""What the catalog knows, read for the command line: tables, described files, folder
sizes, column statistics, search hits, scan jobs, stale snapshots. The CLI asks these
named questions and never holds a catalog connection itself."""

from __future__ import annotations

from markfs.catalog import filescans as fq
from markfs.catalog import jobs as jq
from markfs.catalog import managed as mq
from markfs.catalog import search as sq
from markfs.catalog import sqltables as tq
from markfs.namespace.tree import Tree


def tables(tree: Tree, source_id: int | None = None) -> list[tq.TableRow]:
    """Tables and views scans found, of one source or all."""
    return tq.list_tables(tree.catalog.conn, source_id)


def managed_tables(tree: Tree) -> list[tq.TableRow]:
    return [t for t in tables(tree) if t.managed]


def structured_files(tree: Tree, source_id: int) -> list[fq.StructuredFile]:
    return fq.list_files(tree.catalog.conn, source_id)


def folder_sizes(tree: Tree, source_id: int) -> list[tuple[str, int, int]]:
    """(top-level folder, objects, bytes) of a file source's last scan."""
    return fq.prefixes(tree.catalog.conn, source_id)


def columns(tree: Tree, table_id: int) -> list[tuple[int, str, str, bool, bool, str | None]]:
    return tq.columns_of(tree.catalog.conn, table_id)


def column_stats(tree: Tree, table_id: int) -> dict[str, tuple[object, ...]]:
    """Column name -> (name, nulls, distinct, exact, min, max) of the last deep scan."""
    return {str(s[0]): s for s in mq.column_stats(tree.catalog.conn, table_id)}


def search(tree: Tree, text: str, limit: int) -> list[sq.Hit]:
    return sq.search(tree.catalog.conn, text, limit)


def recent_jobs(tree: Tree, limit: int) -> list[jq.JobRow]:
    return jq.recent(tree.catalog.conn, limit)


def stale_tables(tree: Tree) -> list[mq.StaleTable]:
    return mq.stale_tables(tree.catalog.conn)
