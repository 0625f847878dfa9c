"""`markfs view`, `markfs tag` and `markfs category`: gathering files from every source.

PATH arguments are mount paths (/sources/NAME/..., /tables/SOURCE/SCHEMA/TABLE) or real
paths inside a running mount of the data directory, absolute or relative to the current
folder.
"""

from __future__ import annotations

import click

from markfs.cli.common import data_dir_of, open_tree
from markfs.errors import UserError
from markfs.namespace.curation import definitions

LIST_TIMEOUT_S = 30.0


# -- views ---------------------------------------------------------------------------------

@click.group()
def view() -> None:
    """Virtual folders under /views that gather files of several sources."""


@view.command("add")
@click.argument("name")
@click.argument("rules", nargs=-1, required=True, metavar="SOURCE:GLOB...")
@click.option("--landing", metavar="SOURCE/PATH",
              help="Folder where files created in the view go (else creating is refused).")
@click.pass_context
def view_add(ctx: click.Context, name: str, rules: tuple[str, ...],
             landing: str | None) -> None:
    """Make view NAME of the files RULES select ('**' spans folders)."""
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree:
        definitions.add_view(tree, SourceSet(tree, LIST_TIMEOUT_S), name, list(rules), landing)
    click.echo(f"added view {name}: /views/{name}")


@view.command("pin")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.pass_context
def view_pin(ctx: click.Context, name: str, paths: tuple[str, ...]) -> None:
    """Add files or folders to a view by hand (shown at its top level)."""
    _pin(ctx, name, paths, True)


@view.command("unpin")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.pass_context
def view_unpin(ctx: click.Context, name: str, paths: tuple[str, ...]) -> None:
    """Take pinned members out of a view (the files stay where they are)."""
    _pin(ctx, name, paths, False)


def _pin(ctx: click.Context, name: str, paths: tuple[str, ...], on: bool) -> None:
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree:
        changed = definitions.pin(tree, SourceSet(tree, LIST_TIMEOUT_S), name,
                               _typed(ctx, paths), on)
    click.echo(f"{'pinned' if on else 'unpinned'} {changed} of {len(paths)} in view {name}")


@view.command("list")
@click.pass_context
def view_list(ctx: click.Context) -> None:
    """Views: name and mount path."""

    with open_tree(ctx) as tree:
        for row in definitions.all_views(tree):
            click.echo(f"{row.name}\t/views/{row.name}")


@view.command("show")
@click.argument("name")
@click.pass_context
def view_show(ctx: click.Context, name: str) -> None:
    """A view's rules, landing, pins, members and bytes (its folders are listed now)."""
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree:
        info = definitions.summary(tree, SourceSet(tree, LIST_TIMEOUT_S), name)
    click.echo(f"view {info.name}: /views/{info.name}")
    for rule in info.rules:
        click.echo(f"  rule    {rule}")
    for pinned in info.pins:
        click.echo(f"  pinned  {pinned}")
    click.echo(f"  landing {info.landing or '(none: creating files in the view is refused)'}")
    click.echo(f"  members {info.members} ({info.bytes} bytes)")


@view.command("remove")
@click.argument("name")
@click.pass_context
def view_remove(ctx: click.Context, name: str) -> None:
    """Remove a view (never its members' files)."""

    with open_tree(ctx) as tree:
        definitions.remove_view(tree, name)
    click.echo(f"removed view {name}")


# -- tags ----------------------------------------------------------------------------------

@click.group()
def tag() -> None:
    """Tags of files and folders; /tags/TAG lists everything with the tag."""


@tag.command("add")
@click.argument("name", metavar="TAG")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.pass_context
def tag_add(ctx: click.Context, name: str, paths: tuple[str, ...]) -> None:
    """Give TAG to files or folders."""
    _tag(ctx, name, paths, True)


@tag.command("remove")
@click.argument("name", metavar="TAG")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.pass_context
def tag_remove(ctx: click.Context, name: str, paths: tuple[str, ...]) -> None:
    """Take TAG off files or folders."""
    _tag(ctx, name, paths, False)


def _tag(ctx: click.Context, name: str, paths: tuple[str, ...], on: bool) -> None:
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree:
        changed = definitions.tag_paths(tree, SourceSet(tree, LIST_TIMEOUT_S), name,
                                     _typed(ctx, paths),
                                     on)
    click.echo(f"{'tagged' if on else 'untagged'} {changed} of {len(paths)}: {name}")


@tag.command("list")
@click.argument("path", required=False)
@click.pass_context
def tag_list(ctx: click.Context, path: str | None) -> None:
    """Every tag with its count, or the tags of PATH."""
    from markfs.namespace import mountpaths
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree:
        if path is None:
            for name, count in definitions.all_tags(tree):
                click.echo(f"{name}\t{count}\t/tags/{name}")
            return
        node = mountpaths.resolve(tree, SourceSet(tree, LIST_TIMEOUT_S),
                                  mountpaths.typed_path(data_dir_of(ctx), path))
        for name in definitions.tags_of(tree, node):
            click.echo(name)


# -- categories --------------------------------------------------------------------------------

@click.group()
def category() -> None:
    """A tree of categories over the files; /categories shows it."""


@category.command("add")
@click.argument("path", metavar="CATEGORY")
@click.pass_context
def category_add(ctx: click.Context, path: str) -> None:
    """Make a category (and its parents): finance/2024/audit."""

    with open_tree(ctx) as tree:
        made = definitions.add_category(tree, path)
    click.echo(f"{'added' if made else 'already there:'} category "
               f"/categories/{path.strip('/')}")


@category.command("assign")
@click.argument("path", metavar="CATEGORY")
@click.argument("files", nargs=-1, required=True, metavar="PATH...")
@click.pass_context
def category_assign(ctx: click.Context, path: str, files: tuple[str, ...]) -> None:
    """Put files or folders into a category."""
    _assign(ctx, path, files, True)


@category.command("unassign")
@click.argument("path", metavar="CATEGORY")
@click.argument("files", nargs=-1, required=True, metavar="PATH...")
@click.pass_context
def category_unassign(ctx: click.Context, path: str, files: tuple[str, ...]) -> None:
    """Take files or folders out of a category."""
    _assign(ctx, path, files, False)


def _assign(ctx: click.Context, path: str, files: tuple[str, ...], on: bool) -> None:
    from markfs.namespace.files.sources import SourceSet

    with open_tree(ctx) as tree:
        changed = definitions.assign(tree, SourceSet(tree, LIST_TIMEOUT_S), path,
                                  _typed(ctx, files), on)
    click.echo(f"{'assigned' if on else 'unassigned'} {changed} of {len(files)}: "
               f"{path.strip('/')}")


@category.command("list")
@click.pass_context
def category_list(ctx: click.Context) -> None:
    """Every category with the number of files assigned to it."""

    with open_tree(ctx) as tree:
        rows = definitions.all_categories(tree)
    if not rows:
        raise UserError("no categories yet (markfs category add PATH)")
    for path, count in rows:
        click.echo(f"/categories/{path}\t{count}")


@category.command("remove")
@click.argument("path", metavar="CATEGORY")
@click.pass_context
def category_remove(ctx: click.Context, path: str) -> None:
    """Remove a category and its sub-categories (never the files)."""

    with open_tree(ctx) as tree:
        definitions.remove_category(tree, path)
    click.echo(f"removed category {path.strip('/')}")


def _typed(ctx: click.Context, paths: tuple[str, ...]) -> list[str]:
    """PATH arguments as mount paths (real paths inside a mount of this data dir too)."""
    from markfs.namespace.mountpaths import typed_path

    return [typed_path(data_dir_of(ctx), path) for path in paths]
