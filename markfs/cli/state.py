"""`markfs status` and `fsck`: the data directory's state, checked and repaired."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from markfs import runtime
from markfs.cli.common import data_dir_of, human_size, open_tree
from markfs.config import DataDir
from markfs.errors import UserError

if TYPE_CHECKING:
    from markfs.namespace.tree import Tree


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Mounts, sources, catalog and cache use, stale tables, recent scans."""
    from markfs.namespace.files.sources import list_sources
    from markfs.namespace.files.urls import redact
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
        shared = _shared_catalog(tree)
    mounts = runtime.active_mounts(data_dir)
    click.echo(f"data directory: {data_dir.root}")
    click.echo(f"mounts: {len(mounts)}")
    for rec in mounts:
        click.echo(f"  {rec.mountpoint} (root {rec.root}, pid {rec.pid})")
    click.echo(f"sources: {len(sources)}")
    troubles = _source_troubles(data_dir, mounts)
    for row in sources:
        click.echo(f"  {row.name}\t{redact(row.url)}{troubles.get(row.name, '')}")
    if shared:
        click.echo("\n".join(shared))
    else:
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


def _shared_catalog(tree: Tree) -> list[str]:
    """What `status` says of a catalog several hosts share: where, how far this host's
    cache is behind it, each host's session and the uploads each still has to send."""
    catalog = tree.catalog
    if not catalog.engine.shared:
        return []
    stamp, applied = catalog.stamp, tree.hot.stamp() or 0
    lines = [f"catalog: {catalog.engine.describe()} (shared), {tree.count_nodes()} nodes",
             f"change feed: this host's cache at stamp {applied} of {stamp} "
             f"({max(0, stamp - applied)} behind; a mount catches up within a second)",
             f"sessions: {len(sessions := catalog.sessions())}"]
    for s in sessions:
        state = "LAPSED" if s.lapsed else "live"
        lines.append(f"  {s.hostname} (host {s.host}, pid {s.pid}, {s.mountpoint}): {state}, "
                     f"renewed {s.since_renewal_us / 1e6:.1f} s ago, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(s.started_us / 1e6))}")
    for host, (count, size) in sorted(catalog.uploads.by_host().items()):
        lines.append(f"  pending uploads of host {host or '(this one)'}: {count} ({size} bytes;"
                     " sent by that host's daemon)")
    return lines


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
    return human_size(total)


def _size(path: Path) -> str:
    try:
        return human_size(path.stat().st_size)
    except OSError:
        return "absent"



@click.command()
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
