"""What the catalog knows, read for the command line: tables, described files, folder
sizes, column statistics, search hits, scan jobs, stale snapshots. The CLI asks these
named questions and never holds a catalog connection itself."""

from __future__ import annotations

from markfs.catalog.tables import filescans, jobs, managed, sqltables
from markfs.catalog.tables import search as search_index
from markfs.namespace.curation import definitions
from markfs.namespace.mountpaths import mount_path
from markfs.namespace.tree import Tree


def tables(tree: Tree, source_id: int | None = None) -> list[sqltables.TableRow]:
    """Tables and views scans found, of one source or all."""
    return tree.catalog.tables.list_tables(source_id)


def managed_tables(tree: Tree) -> list[sqltables.TableRow]:
    return [t for t in tables(tree) if t.managed]


def structured_files(tree: Tree, source_id: int) -> list[filescans.StructuredFile]:
    return tree.catalog.file_scans.list_files(source_id)


def folder_sizes(tree: Tree, source_id: int) -> list[tuple[str, int, int]]:
    """(top-level folder, objects, bytes) of a file source's last scan."""
    return tree.catalog.file_scans.prefixes(source_id)


def columns(tree: Tree, table_id: int) -> list[tuple[int, str, str, bool, bool, str | None]]:
    return tree.catalog.tables.columns_of(table_id)


def column_stats(tree: Tree, table_id: int) -> dict[str, tuple[object, ...]]:
    """Column name -> (name, nulls, distinct, exact, min, max) of the last deep scan."""
    return {str(s[0]): s for s in tree.catalog.managed.column_stats(table_id)}


def search(tree: Tree, text: str, limit: int) -> list[search_index.Hit]:
    """The full-text index (sources, tables, columns, files), views by name and rule
    and files by tag and category, then files and folders the catalog knows by name
    (listed through a mount, never scanned)."""
    hits = tree.catalog.search.search(text, limit)
    hits += definitions.find(tree, text)
    seen = {hit.path for hit in hits}
    for node_id in tree.catalog.search.source_nodes_named(text, limit):
        node = tree.node(node_id)
        if node is None or (path := mount_path(tree, node)) in seen:
            continue
        seen.add(path)
        hits.append(search_index.Hit(path, "folder" if node.is_dir else "file",
                                     node.name.decode(errors="replace"), ""))
    return hits[:limit]


def recent_jobs(tree: Tree, limit: int) -> list[jobs.JobRow]:
    return tree.catalog.jobs.recent(limit)


def jobs_by_state(tree: Tree) -> dict[str, int]:
    return tree.catalog.jobs.count_by_state()


def stale_tables(tree: Tree) -> list[managed.StaleTable]:
    return tree.catalog.managed.stale_tables()
