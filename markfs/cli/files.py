"""`markfs cp` and `dupes`: files of the sources, handled by markfs without a mount."""

from __future__ import annotations

import sys

import click

from markfs.cli.common import data_dir_of, open_tree, progress_to

COPY_TIMEOUT_S = 600.0  # one copy-data request copies the whole file before it answers
DUPES_TIMEOUT_S = 30.0  # each answer while dupes lists and reads



@click.command("cp")
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


@click.command()
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
                                progress_to(bar))
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
