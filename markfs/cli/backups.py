"""`markfs backup` and `markfs restore`: the data directory kept safe and put back."""

from __future__ import annotations

from pathlib import Path

import click

from markfs.cli.common import data_dir_of, open_tree
from markfs.config import load_backup_config
from markfs.errors import UserError


@click.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx: click.Context, file: Path | None) -> None:
    """Copy the catalog, config, pending uploads and table snapshots into FILE (a tar),
    also while mounted. Without FILE: into DATA_DIR/backups/, keeping the newest
    [backup] keep of them (what a [backup] schedule runs)."""
    from markfs.admin.backup import prune_backups, scheduled_name, take_backup

    data_dir = data_dir_of(ctx)
    keep = load_backup_config(data_dir).keep
    with open_tree(ctx) as tree:
        if file is None:
            data_dir.backups.mkdir(mode=0o700, exist_ok=True)
            file = scheduled_name(data_dir.backups)
        report = take_backup(data_dir, tree.catalog, file.absolute())
    click.echo(f"backup written: {report.path} ({report.size:,} bytes; "
               f"{report.uploads} pending upload(s), {report.snapshots} table snapshot(s))")
    if file.parent == data_dir.backups:
        for old in prune_backups(data_dir.backups, keep):
            click.echo(f"removed an older backup: {old.name}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def restore(ctx: click.Context, file: Path) -> None:
    """Put the backup FILE in place of the data directory's catalog (unmounted: the
    current catalog, config and staged copies are set aside, not deleted)."""
    from markfs.admin.backup import restore_backup

    if not file.is_file():
        raise UserError(f"no such file: {file}")
    report = restore_backup(data_dir_of(ctx), file.absolute())
    with open_tree(ctx):  # migrates an older catalog and rebuilds the LMDB mirror
        pass
    click.echo(f"restored {file}: {report.uploads} pending upload(s) resume at the next "
               f"mount, {report.snapshots} table snapshot(s)")
    if report.set_aside is not None:
        click.echo(f"the previous catalog and staged copies are in {report.set_aside}")
