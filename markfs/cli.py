"""The `markfs` command line: parses, calls the layers below, prints. Nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from markfs import __version__, runtime
from markfs.cli_admin import backup, restore
from markfs.cli_common import MarkfsGroup, data_dir_of, open_tree
from markfs.cli_curation import category, tag, view
from markfs.cli_service import mount_helper
from markfs.cli_share import share
from markfs.cli_stats import stats
from markfs.config import DataDir, OwnerOverride, default_data_dir
from markfs.errors import UserError

COPY_TIMEOUT_S = 600.0  # one copy-data request copies the whole file before it answers
DUPES_TIMEOUT_S = 30.0  # each answer while dupes lists and reads

if TYPE_CHECKING:
    from markfs.namespace.tree import Tree

MOUNT_WAIT_S = 30.0
DETACHED_ENV = "MARKFS_DETACHED"  # set for the daemon of a background mount: log to file only


@click.group(cls=MarkfsGroup)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="State directory (default: $MARKFS_DATA_DIR, else ~/.local/share/markfs).")
@click.version_option(__version__, prog_name="markfs")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """markfs: S3, SFTP, local folders and SQL tables as one mount, with a catalog."""
    # Catalog, caches, staged copies and logs are private whatever the caller's umask;
    # files made in sources on a user's behalf get their modes explicitly (fchmod).
    os.umask(0o077)
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = (data_dir or default_data_dir()).absolute()


for _command in (view, tag, category, backup, restore, share, mount_helper, stats):
    main.add_command(_command)


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the catalog and caches in the data directory (idempotent)."""
    with open_tree(ctx, create=True):
        pass
    click.echo(f"markfs data directory ready: {data_dir_of(ctx).root}")


# -- sources --------------------------------------------------------------------


@main.group()
def source() -> None:
    """Add, list, inspect, test and remove sources."""


@source.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--read-only", is_flag=True, help="Refuse writes through the mount (EROFS).")
@click.option("--no-check", is_flag=True,
              help="Add an S3 or SFTP source without reaching it first (offline).")
@click.option("--uid", default="", metavar="USER",
              help="PostgreSQL/MySQL: owner of the table files (default: the mount's).")
@click.option("--gid", default="", metavar="GROUP",
              help="PostgreSQL/MySQL: group of the table files (default: the mount's).")
@click.option("--mode", default="", metavar="OCTAL",
              help="PostgreSQL/MySQL: read bits of the table files (default: 0440).")
@click.pass_context
def source_add(ctx: click.Context, name: str, url: str, read_only: bool,
               no_check: bool, uid: str, gid: str, mode: str) -> None:
    """Add a source NAME at URL: file:///abs/dir, s3://bucket/prefix?endpoint=...,
    sftp://user@host:port/path?key_file=..., sqlite://, postgresql://, mysql://."""
    from markfs.catalog.sources import FilesAccess
    from markfs.namespace.files.sources import add_source, redact
    from markfs.namespace.ownership import id_of

    files = FilesAccess(id_of(uid, "user"), id_of(gid, "group"), _octal(mode))
    with open_tree(ctx) as tree:
        add_source(tree, name, url, read_only, check=not no_check, files=files)
    click.echo(f"added source {name} ({redact(url)}){' read-only' if read_only else ''}")


def _octal(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text, 8)
    except ValueError:
        raise UserError(f"--mode must be octal, e.g. 0440: {text!r}") from None


@source.command("list")
@click.pass_context
def source_list(ctx: click.Context) -> None:
    """List sources: name, URL and mode."""
    from markfs.namespace.files.sources import list_sources, redact

    with open_tree(ctx) as tree:
        rows = list_sources(tree)
    for row in rows:
        click.echo(f"{row.name}\t{redact(row.url)}\t{'ro' if row.read_only else 'rw'}")


@source.command("show")
@click.argument("name")
@click.pass_context
def source_show(ctx: click.Context, name: str) -> None:
    """Show one source's settings."""
    from markfs.namespace.files.sources import is_sql, redact, require_source, table_access_of

    with open_tree(ctx) as tree:
        row = require_source(tree, name)
    shown: dict[str, object] = {
        "name": row.name, "url": redact(row.url), "scheme": row.scheme, "read_only": row.read_only,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.created_ns / 1e9)),
        "mount_path": f"/tables/{row.name}" if is_sql(row) else f"/sources/{row.name}",
    }
    if is_sql(row):  # who may read its table files (None: the mount's --uid/--gid)
        access = table_access_of(row)
        shown["table_files"] = {"uid": access.uid, "gid": access.gid,
                                "mode": f"0{access.read:o}"}
    click.echo(json.dumps(shown, indent=2))


@source.command("test")
@click.argument("name")
@click.pass_context
def source_test(ctx: click.Context, name: str) -> None:
    """Check that a source is reachable and usable."""
    from markfs.namespace.files.sources import (
        backend_for,
        is_sql,
        open_sql,
        require_source,
    )

    with open_tree(ctx) as tree:
        row = require_source(tree, name)
    try:
        summary = open_sql(row).check() if is_sql(row) else backend_for(row).check()
    except OSError as exc:
        raise UserError(f"source {name!r} is not usable: {exc.strerror or exc}") from None
    click.echo(f"ok: {summary}")


@source.command("remove")
@click.argument("name")
@click.option("--discard-pending", is_flag=True,
              help="Remove it even with files not uploaded to it yet (they are lost).")
@click.pass_context
def source_remove(ctx: click.Context, name: str, discard_pending: bool) -> None:
    """Remove a source from the catalog (its data is not touched)."""
    from markfs.namespace.files.sources import remove_source

    with open_tree(ctx) as tree:
        remove_source(tree, name, discard_pending)
    click.echo(f"removed source {name}")


# -- mounting -----------------------------------------------------------------------


@main.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--foreground", is_flag=True, help="Serve in this process until unmounted.")
@click.option("--root", "root", default="", help="Mount only this subpath, e.g. views/finance.")
@click.option("--allow-other", is_flag=True, help="Let other users use the mount.")
@click.option("--read-only", is_flag=True, help="Refuse every write (the kernel's ro).")
@click.option("--nonempty", is_flag=True,
              help="Mount over a folder that has files (hidden while mounted).")
@click.option("--uid", default=None, metavar="USER",
              help="Owner of what has none of its own (S3, tables, views; SFTP too).")
@click.option("--gid", default=None, metavar="GROUP", help="Group of the same.")
@click.option("--umask", default=None, metavar="OCTAL",
              help="Take these bits from the modes of the same (default 022).")
@click.pass_context
def mount(ctx: click.Context, mountpoint: Path, foreground: bool, root: str,
          allow_other: bool, read_only: bool, nonempty: bool, uid: str | None,
          gid: str | None, umask: str | None) -> None:
    """Mount the catalog at MOUNTPOINT (in the background unless --foreground)."""
    data_dir = data_dir_of(ctx)
    mountpoint = mountpoint.absolute()
    if not data_dir.exists():
        raise UserError(f"no markfs catalog in {data_dir.root} (run: markfs init)")
    owner = OwnerOverride(uid, gid, umask)
    check_owner(data_dir, owner)
    if not mountpoint.is_dir():
        raise UserError(f"mount point is not a directory: {mountpoint}")
    if runtime.is_mountpoint(mountpoint):
        raise UserError(f"something is mounted on {mountpoint} already")
    if not nonempty and any(os.scandir(mountpoint)):
        raise UserError(f"{mountpoint} is not empty: its files would be hidden while "
                        "mounted (--nonempty mounts over them)")
    if foreground:
        from markfs.config import load_mount_config
        from markfs.fs.mount import daemon_logging, serve

        detached = os.environ.pop(DETACHED_ENV, "") == "1"
        daemon_logging(data_dir, load_mount_config(data_dir), to_stderr=not detached)
        serve(data_dir, mountpoint, root, allow_other, read_only, owner)
        return
    start_background(data_dir, mountpoint, root, allow_other, read_only, owner)
    click.echo(f"mounted on {mountpoint}")


def check_owner(data_dir: DataDir, owner: OwnerOverride) -> None:
    """--uid/--gid/--umask over [mount]'s, refused in one line before anything starts."""
    from markfs.config import load_mount_config
    from markfs.namespace.ownership import MountOwner

    config = owner.applied(load_mount_config(data_dir))
    MountOwner.parse(config.uid, config.gid, config.umask)


def start_background(data_dir: DataDir, mountpoint: Path, root: str, allow_other: bool,
                     read_only: bool, owner: OwnerOverride | None = None) -> None:
    """Start a detached `mount --foreground` and wait until the mount is there."""
    data_dir.logs.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.logs / "mount.log"
    # From "/" and with -P (3.11+): nothing in the caller's directory can shadow the package.
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []
    args = [sys.executable, *safe_path, "-m", "markfs", "--data-dir", str(data_dir.root),
            "mount", str(mountpoint), "--foreground", "--nonempty"]  # (checked by the caller)
    if root:
        args += ["--root", root]
    if allow_other:
        args.append("--allow-other")
    if read_only:
        args.append("--read-only")
    if owner is not None:
        args += owner.arguments()
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=log_file, start_new_session=True, cwd="/",
                                env={**os.environ, DETACHED_ENV: "1"})
    deadline = time.monotonic() + MOUNT_WAIT_S
    while time.monotonic() < deadline:
        if runtime.is_mountpoint(mountpoint) and _answers(mountpoint, deadline):
            return
        if proc.poll() is not None:
            raise UserError(_last_error(log_path, start) or f"mount failed (see {log_path})")
        time.sleep(0.05)
    proc.terminate()
    raise UserError(f"mount did not appear within {MOUNT_WAIT_S:.0f}s (see {log_path})")


def _answers(mountpoint: Path, deadline: float) -> bool:
    """Does the new mount answer a request? (In a thread: a daemon that hangs must not
    hang this command; one that died answers ENOTCONN.)"""
    import threading

    answer: list[bool] = []

    def ask() -> None:
        try:
            os.stat(mountpoint)
            answer.append(True)
        except OSError:
            answer.append(False)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    asker.join(max(deadline - time.monotonic(), 0.1))
    return bool(answer and answer[0])


def _last_error(log_path: Path, start: int) -> str | None:
    """The daemon's own one-line error, else the last line it logged (a traceback's end)."""
    with open(log_path, "rb") as f:
        f.seek(start)
        lines = [ln.decode(errors="replace").strip() for ln in f]
    lines = [ln for ln in lines if ln]
    for line in reversed(lines):
        if line.startswith("markfs: "):
            return line[len("markfs: "):]
    return f"mount failed: {lines[-1]} (see {log_path})" if lines else None


@main.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.pass_context
def umount(ctx: click.Context, mountpoint: Path) -> None:
    """Unmount MOUNTPOINT and wait for its daemon to finish."""
    mountpoint = mountpoint.absolute()
    record = runtime.find(data_dir_of(ctx), mountpoint)
    if not runtime.is_mountpoint(mountpoint):
        raise UserError(f"not mounted: {mountpoint}")
    done = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise UserError(f"cannot unmount {mountpoint}: {detail}")
    if record is not None:
        _wait_for_daemon(ctx, record)
    click.echo(f"unmounted {mountpoint}")


def _wait_for_daemon(ctx: click.Context, record: runtime.MountRecord) -> None:
    """Wait while the daemon sends what it still has queued, saying how much is left.
    Uploads of other daemons sharing the data directory are theirs to wait for."""
    owner = record.owner or None
    last_report, started = 0.0, time.monotonic()
    while record.alive():
        with open_tree(ctx) as tree:
            count, size = tree.pending_uploads(owner)
        if count and time.monotonic() - last_report > 2.0:
            click.echo(f"waiting for {count} upload(s) ({_human(size)}), "
                       f"{time.monotonic() - started:.0f}s so far", err=True)
            last_report = time.monotonic()
        time.sleep(0.1)
    with open_tree(ctx) as tree:
        count, size = tree.pending_uploads(owner)
        parked = [row for row in tree.parked_uploads() if owner is None or row.owner == owner]
    if count:
        raise UserError(f"unmounted, but {count} upload(s) ({_human(size)}) are still pending;"
                        " they resume at the next mount")
    if parked:
        raise UserError(f"unmounted, but {len(parked)} upload(s) were parked: "
                        f"{parked[0].last_error} (see: markfs status)")


# -- the catalog of tables ----------------------------------------------------------


@main.command()
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
            report = scan_sql_source(tree, row, source, _progress_to(bar))
        click.echo(f"{row.name}: {report.tables} tables ({report.read} read, "
                   f"{report.unchanged} unchanged, {report.deprecated} deprecated)")
        if deep:
            with click.progressbar(length=1, label=f"statistics of {row.name}",
                                   file=sys.stderr) as bar:
                deep_report = deep_scan_sql_source(tree, row, source, _progress_to(bar))
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
    click.echo(f"{row.name}: {report.files} files, {_human(report.bytes)}, "
               f"{report.structured} structured ({report.deprecated} deprecated)")
    for prefix, objects, size in folder_sizes(tree, row.id):
        click.echo(f"  {prefix + '/' if prefix else '(root)'}\t{objects} files\t{_human(size)}")
    if deep:
        with click.progressbar(length=1, label=f"describing files of {row.name}",
                               file=sys.stderr) as bar:
            described, unchanged, failed = deep_scan_file_source(tree, row, backend,
                                                                 _progress_to(bar))
        click.echo(f"{row.name}: {described} files described, {unchanged} unchanged, "
                   f"{failed} unreadable")


def _progress_to(bar: Any) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bar.length = total
        bar.update(done - bar.pos)
    return update


@main.command()
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
        size = "?" if t.size_bytes is None else _human(t.size_bytes)
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
                         f"{cols} columns\t{flags}\t{_human(f.size)}")
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


@main.command()
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
    click.echo(f"{ref}: {snapshot.rows} rows, data.parquet {_human(size)}")


@main.command()
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


@main.command()
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


@main.command()
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


@main.command("cp")
@click.argument("src")
@click.argument("dst")
@click.pass_context
def copy(ctx: click.Context, src: str, dst: str) -> None:
    """Copy the file at SRC to DST (a new name, or a folder) on its server — S3
    CopyObject, SFTP copy-data, copy_file_range — with no byte passing through markfs.
    Mount paths, or real paths inside a running mount of this data dir."""
    from markfs.admin.servercopy import copy_on_server
    from markfs.namespace.files.sources import SourceSet
    from markfs.namespace.mountpaths import typed_path

    src, dst = typed_path(data_dir_of(ctx), src), typed_path(data_dir_of(ctx), dst)
    with open_tree(ctx) as tree:
        done = copy_on_server(tree, SourceSet(tree, COPY_TIMEOUT_S), src, dst)
    click.echo(f"copied on the server: {done.path} ({done.size} bytes)")


@main.command()
@click.argument("sources", nargs=-1)
@click.pass_context
def dupes(ctx: click.Context, sources: tuple[str, ...]) -> None:
    """Identical files across SOURCES (all file sources when none): files that share a
    size are read once and hashed; unchanged files are not read again next time."""
    from markfs.admin.dupes import find_identical
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree, click.progressbar(length=0, label="hashing",
                                                   file=sys.stderr) as bar:
        groups = find_identical(tree, SourceSet(tree, DUPES_TIMEOUT_S), list(sources),
                                _progress_to(bar))
    if not groups:
        click.echo("no identical files")
        return
    for group in groups:
        click.echo(f"{len(group.paths)} identical files of {group.size} bytes "
                   f"(xxh3-128 {group.digest}):")
        for path in group.paths:
            click.echo(f"  {path}")
    spare = sum(group.size * (len(group.paths) - 1) for group in groups)
    click.echo(f"{len(groups)} groups; {spare} bytes in copies beyond the first")


# -- state ------------------------------------------------------------------------------


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Mounts, sources, catalog and cache use, stale tables, recent scans."""
    from markfs.namespace.files.sources import list_sources, redact
    from markfs.namespace.inventory import managed_tables, recent_jobs, stale_tables

    data_dir = data_dir_of(ctx)
    with open_tree(ctx) as tree:
        sources = list_sources(tree)
        nodes = tree.count_nodes()
        uploads, upload_bytes = tree.pending_uploads()
        parked = tree.parked_uploads()
        unfinished = tree.unfinished_piece_uploads()
        managed = len(managed_tables(tree))
        stale = stale_tables(tree)
        jobs = recent_jobs(tree, 5)
    mounts = runtime.active_mounts(data_dir)
    click.echo(f"data directory: {data_dir.root}")
    click.echo(f"mounts: {len(mounts)}")
    for rec in mounts:
        click.echo(f"  {rec.mountpoint} (root {rec.root}, pid {rec.pid})")
    click.echo(f"sources: {len(sources)}")
    troubles = _source_troubles(data_dir, mounts)
    for row in sources:
        click.echo(f"  {row.name}\t{redact(row.url)}{troubles.get(row.name, '')}")
    click.echo(f"catalog: {nodes} nodes, {_size(data_dir.catalog)}")
    click.echo(f"hot cache: {_size(data_dir.hot / 'data.mdb')}")
    click.echo(f"pending uploads: {uploads} ({upload_bytes} bytes)")
    click.echo(f"parked uploads: {len(parked)}")
    for upload in parked:
        click.echo(f"  parked: {upload.remote_path.decode(errors='replace')} "
                   f"({upload.last_error}; markfs fsck --repair drops it)")
    click.echo(f"uploads in pieces not finished: {len(unfinished)}")
    for piece_upload in unfinished:
        click.echo(f"  unfinished: {piece_upload.remote_path.decode(errors='replace')} "
                   f"(daemon {piece_upload.owner}; aborted unless that daemon finishes it)")
    click.echo(f"content cache: {_size_of_tree(data_dir.cache)}")
    _status_of_tables(managed, stale, jobs)


def _source_troubles(data_dir: DataDir, mounts: list[runtime.MountRecord]) -> dict[str, str]:
    """What running mounts last saw of sources that do not answer as they should."""
    from markfs.namespace.files.health import health_file, read_health

    found: dict[str, str] = {}
    for rec in mounts:
        for name, state in read_health(health_file(data_dir.run, rec.pid)).items():
            if state.state != "ok":
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.since))
                found[name] = (f"\t{state.state.upper()} since {since} (mount {rec.mountpoint}):"
                               f" {state.last_error}")
    return found


def _status_of_tables(managed: int, stale: list[Any], jobs: list[Any]) -> None:
    click.echo(f"managed tables: {managed} ({len(stale)} stale)")
    for t in stale:
        click.echo(f"  stale: {t.source}/{t.schema}/{t.table} (run: markfs refresh)")
    click.echo("recent scans and renders:" if jobs else "recent scans and renders: none")
    for job in jobs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.started_ns / 1e9))
        total = f"/{job.total}" if job.total is not None else ""
        outcome = f": {job.message}" if job.message else ""
        click.echo(f"  {when} {job.kind} {job.target}: {job.state} "
                   f"({job.done}{total}){outcome}")


def _size_of_tree(root: Path) -> str:
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
    return _human(total)


def _size(path: Path) -> str:
    try:
        return _human(path.stat().st_size)
    except OSError:
        return "absent"


def _human(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


@main.command()
@click.option("--repair", is_flag=True, help="Fix what is found (SQLite is the truth).")
@click.pass_context
def fsck(ctx: click.Context, repair: bool) -> None:
    """Check catalog <-> hot cache consistency; exit 1 if problems remain."""
    from markfs.admin.fsck import check_data_dir
    from markfs.config import load_mount_config

    data_dir = data_dir_of(ctx)
    salvaged = _salvage_if_damaged(data_dir, repair)
    report = check_data_dir(data_dir, repair, load_mount_config(data_dir).cache_max_bytes)
    report.repaired[:0] = salvaged
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    for fix in report.repaired:
        click.echo(f"repaired: {fix}")
    if report.clean:
        click.echo("clean")
    elif not repair:
        raise UserError(f"{len(report.problems)} problem(s) found (run: markfs fsck --repair)")


def _salvage_if_damaged(data_dir: DataDir, repair: bool) -> list[str]:
    """SQLite's own check of the catalog first: a damaged one is salvaged (--repair)
    before anything else reads it, or reported."""
    from markfs.admin.fsck import catalog_damage, salvage_catalog

    if not data_dir.exists():
        raise UserError(f"no markfs catalog in {data_dir.root} (run: markfs init)")
    problems = catalog_damage(data_dir)
    if not problems:
        return []
    if not repair:
        for problem in problems[:20]:
            click.echo(f"problem: sqlite: {problem}")
        raise UserError(f"the catalog {data_dir.catalog} is damaged "
                        "(run: markfs fsck --repair to salvage what SQLite can read)")
    return salvage_catalog(data_dir)


@main.command()
@click.argument("mountpoint", type=click.Path(path_type=Path), default="mnt")
@click.pass_context
def demo(ctx: click.Context, mountpoint: Path) -> None:
    """Build the embedded demo and mount it at MOUNTPOINT (default ./mnt)."""
    from markfs.demo import ORDERS, build_curation, build_demo, build_shop

    data_dir = data_dir_of(ctx)
    with open_tree(ctx, create=True) as tree:
        build_demo(tree, data_dir.root / "demo-files")
        with click.progressbar(length=ORDERS + 5200, label="rendering the demo tables",
                               file=sys.stderr) as bar:
            build_shop(tree, data_dir, bar.update)
        build_curation(tree)
    mountpoint = mountpoint.absolute()
    mountpoint.mkdir(parents=True, exist_ok=True)
    if not runtime.is_mountpoint(mountpoint):
        start_background(data_dir, mountpoint, "", allow_other=False, read_only=False)
    markfs = f"markfs --data-dir {data_dir.root}"
    click.echo(f"markfs demo mounted on {mountpoint}. Try:\n"
               f"  ls -lR {mountpoint}\n"
               f"  cat {mountpoint}/sources/demo/finance/2024/revenue.csv | head\n"
               f"  cat {mountpoint}/.markfs/status.json\n"
               f"  ls -l {mountpoint}/tables/shop/main/orders\n"
               f"  head {mountpoint}/tables/shop/main/orders/preview.csv\n"
               f"  ls -l {mountpoint}/views/finance   (a view: demo files + the orders table)\n"
               f"  ls -l {mountpoint}/tags/finance {mountpoint}/tags/q1\n"
               f"  ls -R {mountpoint}/categories\n"
               f"  getfattr -n user.markfs.tags "
               f"{mountpoint}/sources/demo/finance/2024/revenue.csv\n"
               f"  {markfs} view show finance\n"
               f"  {markfs} search country\n"
               f"  echo hello > {mountpoint}/sources/demo/hello.txt\n"
               f"Unmount with: make demo-stop   (or: {markfs} umount {mountpoint})")

