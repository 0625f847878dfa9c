"""The `markfs` command: its options, `init`, and every command group registered on it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from markfs import __version__
from markfs.cli.backups import backup, restore
from markfs.cli.catalog import manage, refresh, scan, search, tables, unmanage
from markfs.cli.common import MarkfsGroup, data_dir_of, open_tree, use_shared_catalog
from markfs.cli.curation import category, tag, view
from markfs.cli.files import copy, dupes
from markfs.cli.mounting import demo, mount, umount
from markfs.cli.service import mount_helper
from markfs.cli.share import share
from markfs.cli.sources import source
from markfs.cli.state import fsck, status
from markfs.cli.stats import stats
from markfs.config import default_data_dir


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


for _command in (source, mount, umount, scan, tables, manage, unmanage, refresh, search, copy,
                 dupes, status, fsck, demo, view, tag, category, backup, restore, share,
                 mount_helper, stats):
    main.add_command(_command)


@main.command()
@click.option("--catalog", "catalog_url", metavar="URL", default=None,
              help="Keep the catalog in PostgreSQL, shared by every host given the same URL "
                   "(postgresql://USER@HOST:PORT/DATABASE; the password from ~/.pgpass or "
                   "PGPASSWORD). Default: an SQLite file in the data directory.")
@click.pass_context
def init(ctx: click.Context, catalog_url: str | None) -> None:
    """Create the catalog and caches in the data directory (idempotent)."""
    if catalog_url is not None:
        use_shared_catalog(data_dir_of(ctx), catalog_url)
    with open_tree(ctx, create=True) as tree:
        where = tree.catalog.engine.describe()
    click.echo(f"markfs data directory ready: {data_dir_of(ctx).root} (catalog: {where})")


