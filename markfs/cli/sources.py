"""`markfs source ...`: adding, listing, showing, testing and removing sources."""

from __future__ import annotations

import json
import time

import click

from markfs.cli.common import open_tree
from markfs.errors import UserError


@click.group()
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
    from markfs.namespace.files.sources import add_source
    from markfs.namespace.files.urls import redact
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
    from markfs.namespace.files.sources import list_sources
    from markfs.namespace.files.urls import redact

    with open_tree(ctx) as tree:
        rows = list_sources(tree)
    for row in rows:
        click.echo(f"{row.name}\t{redact(row.url)}\t{'ro' if row.read_only else 'rw'}")


@source.command("show")
@click.argument("name")
@click.pass_context
def source_show(ctx: click.Context, name: str) -> None:
    """Show one source's settings."""
    from markfs.namespace.files.sources import is_sql, require_source, table_access_of
    from markfs.namespace.files.urls import redact

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
    from markfs.namespace.files.sources import backend_for, is_sql, open_sql, require_source

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
