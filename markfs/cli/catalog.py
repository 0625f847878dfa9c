"""`markfs scan`, `tables`, `manage`, `unmanage`, `refresh` and `search`: what the
catalog knows of the sources, and managed tables."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from markfs.cli.common import data_dir_of, human_size, open_tree, progress_to
from markfs.errors import UserError

if TYPE_CHECKING:
    from markfs.namespace.tree import Tree


@click.command()
@click.argument("source_name", required=False)
@click.option("--deep", is_flag=True,
              help="Also level 2: column statistics of tables and structured files.")
@click.pass_context
def scan(ctx: click.Context, source_name: str | None, deep: bool) -> None:
    """Scan sources into the catalog (level 1: tables, columns, folders, files)."""
    from markfs.namespace.files.sources import is_sql, list_sources, require_source

    with open_tree(ctx) as tree:
        rows = [require_source(tree, source_name)] if source_name else list_sources(tree)
        for row in rows:
            if is_sql(row):
                _scan_sql(tree, row, deep)
            else:
                _scan_files(tree, row, deep)


def _scan_sql(tree: Tree, row: Any, deep: bool) -> None:
    from markfs.namespace.files.sources import open_sql
    from markfs.namespace.tables.scans import deep_scan_sql_source, scan_sql_source

    source = open_sql(row)
    try:
        with click.progressbar(length=1, label=f"scanning {row.name}", file=sys.stderr) as bar:
            report = scan_sql_source(tree, row, source, progress_to(bar))
        click.echo(f"{row.name}: {report.tables} tables ({report.read} read, "
                   f"{report.unchanged} unchanged, {report.deprecated} deprecated)")
        if deep:
            with click.progressbar(length=1, label=f"statistics of {row.name}",
                                   file=sys.stderr) as bar:
                deep_report = deep_scan_sql_source(tree, row, source, progress_to(bar))
            click.echo(f"{row.name}: statistics of {deep_report.read} tables computed, "
                       f"{deep_report.unchanged} unchanged")
    finally:
        source.close()


def _scan_files(tree: Tree, row: Any, deep: bool) -> None:
    from markfs.admin.filescans import deep_scan_file_source, scan_file_source
    from markfs.namespace.files.sources import backend_for
    from markfs.namespace.inventory import folder_sizes

    backend = backend_for(row)
    try:
        report = scan_file_source(tree, row, backend)
    except OSError as exc:
        raise UserError(f"cannot scan {row.name}: {exc.strerror or exc}") from None
    click.echo(f"{row.name}: {report.files} files, {human_size(report.bytes)}, "
               f"{report.structured} structured ({report.deprecated} deprecated)")
    for prefix, objects, size in folder_sizes(tree, row.id):
        click.echo(f"  {prefix + '/' if prefix else '(root)'}\t{objects} files\t{human_size(size)}")
    if deep:
        with click.progressbar(length=1, label=f"describing files of {row.name}",
                               file=sys.stderr) as bar:
            described, unchanged, failed = deep_scan_file_source(tree, row, backend,
                                                                 progress_to(bar))
        click.echo(f"{row.name}: {described} files described, {unchanged} unchanged, "
                   f"{failed} unreadable")



@click.command()
@click.argument("source_name", required=False, metavar="[SOURCE | SOURCE/SCHEMA/TABLE]")
@click.pass_context
def tables(ctx: click.Context, source_name: str | None) -> None:
    """Tables found by scans, managed or not; for one table, its columns and statistics."""
    from markfs.namespace.files.sources import require_source
    from markfs.namespace.inventory import tables as list_tables

    if source_name and "/" in source_name:
        _describe_table(ctx, source_name)
        return
    with open_tree(ctx) as tree:
        source_id = require_source(tree, source_name).id if source_name else None
        rows = list_tables(tree, source_id)
        files = _structured_files(tree, source_id)
    for t in rows:
        rows_text = "?" if t.rows is None else f"{t.rows}{'' if t.rows_exact else '~'}"
        flags = ",".join(f for f, on in (("managed", t.managed), ("deprecated", t.deprecated))
                         if on) or "-"
        size = "?" if t.size_bytes is None else human_size(t.size_bytes)
        click.echo(f"{t.source}/{t.schema}/{t.name}\t{t.kind}\t{rows_text} rows\t"
                   f"{t.columns} columns\t{flags}\t{size}")
    for line in files:
        click.echo(line)


def _structured_files(tree: Tree, source_id: int | None) -> list[str]:
    """Structured files of file sources, as lines like the tables'."""
    import json as _json

    from markfs.namespace.files.sources import list_sources
    from markfs.namespace.inventory import structured_files

    lines = []
    for row in list_sources(tree):
        if source_id is not None and row.id != source_id:
            continue
        for f in structured_files(tree, row.id):
            rows = "?" if f.rows is None else f"{f.rows}{'' if f.rows_exact else '~'}"
            cols = len(_json.loads(f.schema_json)) if f.schema_json else "?"
            flags = "deprecated" if f.deprecated else (f"unreadable: {f.error}" if f.error
                                                        else "-")
            lines.append(f"/sources/{row.name}/{f.path}\t{f.format} file\t{rows} rows\t"
                         f"{cols} columns\t{flags}\t{human_size(f.size)}")
    return lines


def _describe_table(ctx: click.Context, text: str) -> None:
    from markfs.namespace.inventory import column_stats, columns
    from markfs.namespace.tables.managed import ManagedTables, TableRef

    with open_tree(ctx) as tree:
        table = ManagedTables(tree, data_dir_of(ctx)).find(TableRef.parse(text))
        described = columns(tree, table.id)
        stats = column_stats(tree, table.id)
    rows = "?" if table.rows is None else f"{table.rows}{'' if table.rows_exact else '~'}"
    click.echo(f"{text}\t{table.kind}\t{rows} rows")
    for _pos, name, ctype, nullable, pk, comment in described:
        line = f"  {name}\t{ctype}{' NOT NULL' if not nullable else ''}{' PK' if pk else ''}"
        if name in stats:
            _, nulls, distinct, exact, low, high = stats[name]
            line += (f"\tnulls={nulls} distinct={distinct}{'' if exact else '~'} "
                     f"min={low} max={high}")
        click.echo(line + (f"\t-- {comment}" if comment else ""))


@click.command()
@click.argument("tables", nargs=-1, required=True, metavar="SOURCE/SCHEMA/TABLE...")
@click.pass_context
def manage(ctx: click.Context, tables: tuple[str, ...]) -> None:
    """Show tables under /tables as files: renders a snapshot of each."""
    from markfs.namespace.tables.managed import ManagedTables, TableRef

    refs = [TableRef.parse(text) for text in tables]
    with open_tree(ctx) as tree:
        managed = ManagedTables(tree, data_dir_of(ctx))
        for source in dict.fromkeys(ref.source for ref in refs):
            managed.rescan(source)
        for ref in refs:
            _render(managed, ref, managed.find(ref))


def _render(managed: Any, ref: Any, table: Any) -> None:
    with click.progressbar(length=table.rows or 0, label=f"rendering {ref}",
                           file=sys.stderr) as bar:
        snapshot = managed.take_snapshot(table, bar.update)
    size = sum(f.size for f in snapshot.files if f.name == "data.parquet")
    click.echo(f"{ref}: {snapshot.rows} rows, data.parquet {human_size(size)}")


@click.command()
@click.argument("tables", nargs=-1, required=True, metavar="SOURCE/SCHEMA/TABLE...")
@click.pass_context
def unmanage(ctx: click.Context, tables: tuple[str, ...]) -> None:
    """Take tables out of /tables (the source is not touched)."""
    from markfs.namespace.tables.managed import ManagedTables, TableRef

    with open_tree(ctx) as tree:
        managed = ManagedTables(tree, data_dir_of(ctx))
        for text in tables:
            table = managed.find(TableRef.parse(text))
            if not table.managed:
                raise UserError(f"{text} is not managed")
            managed.unmanage(table)
            click.echo(f"{text}: no longer managed")


@click.command()
@click.argument("table_ref", required=False, metavar="[SOURCE/SCHEMA/TABLE]")
@click.option("--force", is_flag=True, help="Render again even if the source is unchanged.")
@click.pass_context
def refresh(ctx: click.Context, table_ref: str | None, force: bool) -> None:
    """Render new snapshots of managed tables whose source changed."""
    from markfs.namespace.inventory import managed_tables
    from markfs.namespace.tables.managed import ManagedTables, TableRef

    with open_tree(ctx) as tree:
        managed = ManagedTables(tree, data_dir_of(ctx))
        wanted = [TableRef.parse(table_ref)] if table_ref else [
            TableRef(t.source, t.schema, t.name)
            for t in managed_tables(tree)]
        for ref in wanted:
            if not managed.find(ref).managed:
                raise UserError(f"{ref} is not managed (run: markfs manage {ref})")
        for source in dict.fromkeys(ref.source for ref in wanted):
            managed.rescan(source)
        stale = {(t.source, t.schema, t.table) for t in managed.stale()}
        todo = [r for r in wanted if force or (r.source, r.schema, r.table) in stale]
        for ref in todo:
            _render(managed, ref, managed.find(ref))
    if not todo:
        click.echo("all managed tables are up to date")


@click.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--limit", default=50, show_default=True, help="At most this many results.")
@click.pass_context
def search(ctx: click.Context, text: tuple[str, ...], limit: int) -> None:
    """Find sources, tables, columns and files by name or comment (words as prefixes)."""
    from markfs.namespace.inventory import search as run_search

    with open_tree(ctx) as tree:
        hits = run_search(tree, " ".join(text), limit)
    if not hits:
        raise UserError(f"nothing matches {' '.join(text)!r} (scan sources first: markfs scan)")
    for hit in hits:
        click.echo(f"{hit.path}\t{hit.kind}")
