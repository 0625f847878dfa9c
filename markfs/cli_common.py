"""What every command module of the CLI shares: the data directory, the catalog tree,
and the group that turns user errors into one line and exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from markfs.config import DataDir
from markfs.errors import UserError

if TYPE_CHECKING:
    from markfs.namespace.tree import Tree


def data_dir_of(ctx: click.Context) -> DataDir:
    return DataDir(ctx.obj["data_dir"])


@contextmanager
def open_tree(ctx: click.Context, create: bool = False, walk: bool = False) -> Iterator[Tree]:
    """The data directory's tree, closed when the command is done with it."""
    from markfs.namespace.tree import Tree

    tree = Tree.open(data_dir_of(ctx), create=create, walk=walk)
    try:
        yield tree
    finally:
        tree.close()


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
            from markfs.catalog.db import DAMAGE_ERRORS, damaged

            if not isinstance(exc, DAMAGE_ERRORS):
                raise
            click.echo(f"markfs: {damaged(data_dir_of(ctx).catalog, exc)}", err=True)
            ctx.exit(1)
