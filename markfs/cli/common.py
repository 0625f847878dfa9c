"""What every command module of the CLI shares: the data directory, the catalog tree,
and the group that turns user errors into one line and exit code 1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from markfs.config import DataDir
from markfs.errors import UserError

if TYPE_CHECKING:
    from markfs.model import ChangeSet
    from markfs.namespace.tree import Tree


def human_size(count: float) -> str:
    """A byte count as people read it: 512 B, 1.5 KiB, ... 2.0 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def progress_to(bar: Any) -> Callable[[int, int], None]:
    """A (done, total) callback that moves a click progress bar."""
    def update(done: int, total: int) -> None:
        bar.length = total
        bar.update(done - bar.pos)
    return update


def data_dir_of(ctx: click.Context) -> DataDir:
    return DataDir(ctx.obj["data_dir"])


@contextmanager
def open_tree(ctx: click.Context, create: bool = False, walk: bool = False) -> Iterator[Tree]:
    """The data directory's tree, closed when the command is done with it. What the
    command changed is told to the running mounts, which show it before this returns
    (`changefeed`)."""
    from markfs.namespace.tree import Tree

    tree = Tree.open(data_dir_of(ctx), create=create, walk=walk)
    noted = tree.note_changes()
    try:
        yield tree
    finally:
        tree.close()
        if noted:
            _tell_mounts(ctx, noted)


def use_shared_catalog(data_dir: DataDir, url: str) -> None:
    """Point a data directory at a PostgreSQL catalog (`init --catalog`): its URL is
    written once; a data directory with a catalog of its own, or another URL, is refused."""
    from markfs.catalog.engines.postgres import check_url

    url = check_url(url)
    if data_dir.catalog_url_file.exists():
        if data_dir.catalog_location != url:
            raise UserError(f"{data_dir.root} already uses the catalog "
                            f"{data_dir.catalog_location}")
        return
    if data_dir.catalog.exists():
        raise UserError(f"{data_dir.root} has a catalog of its own ({data_dir.catalog}): "
                        "give a new data directory for the shared catalog")
    data_dir.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = data_dir.catalog_url_file.with_suffix(".tmp")
    temp.write_text(url + "\n")
    temp.replace(data_dir.catalog_url_file)


def _tell_mounts(ctx: click.Context, noted: list[ChangeSet]) -> None:
    from markfs.changefeed import CatalogChange, publish

    names = [(p, n) for changes in noted for p, n in changes.gone_dentries]
    names += [(p, n) for changes in noted for p, n, _id in changes.dentries]
    nodes = [n.id for changes in noted for n in changes.nodes]
    nodes += [n for changes in noted for n in changes.gone_nodes]
    late = publish(data_dir_of(ctx), CatalogChange(sorted(set(names)), sorted(set(nodes)),
                                                   gathered=True))
    for mountpoint in late:
        click.echo(f"markfs: the mount on {mountpoint} did not confirm the change yet; it "
                   "shows it within a second or two", err=True)


class MarkfsGroup(click.Group):
    """Turns UserError (and unexpected OS errors) into one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"markfs: {exc}", err=True)
            ctx.exit(1)
        except PermissionError as exc:
            click.echo(f"markfs: permission denied: {exc.filename or exc}", err=True)
            ctx.exit(1)
        except Exception as exc:
            from markfs.catalog.engines.sqlite import DAMAGE_ERRORS, damaged

            if not isinstance(exc, DAMAGE_ERRORS):
                raise
            click.echo(f"markfs: {damaged(data_dir_of(ctx).catalog, exc)}", err=True)
            ctx.exit(1)
