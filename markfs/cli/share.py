"""`markfs share smb|nfs MOUNTPOINT`: share definitions for a running mount, printed or
written to a file for Samba, nfs-ganesha or a kernel NFS server to load."""

from __future__ import annotations

from pathlib import Path

import click

from markfs import runtime
from markfs.cli.common import data_dir_of, open_tree
from markfs.errors import UserError
from markfs.fs.shares import (
    check_clients,
    markfs_mount_at,
    nfs_export,
    require_allow_other,
    shared_folder,
    smb_share,
)

_ROOT = click.option("--root", default="", metavar="SUBPATH",
                     help="Share this folder of the mount (default: all of it).")
_READ_ONLY = click.option("--read-only", is_flag=True, help="Refuse writes over the share.")
_WRITE = click.option("--write", "out", type=click.Path(path_type=Path),
                      help="Write the definition to this file instead of printing it.")


@click.group()
def share() -> None:
    """Share a running mount over SMB (Samba) or NFS (nfs-ganesha, kernel NFS)."""


@share.command("smb")
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--name", help="The share's name (default: the shared folder's name).")
@_ROOT
@_READ_ONLY
@click.option("--users", default="", metavar="U,...", help="Only these users may connect.")
@_WRITE
def share_smb(mountpoint: Path, name: str | None, root: str, read_only: bool, users: str,
              out: Path | None) -> None:
    """A Samba share section for MOUNTPOINT (a markfs mount with allow_other)."""
    mount = markfs_mount_at(mountpoint)
    require_allow_other(mount, "Samba")
    folder = shared_folder(mount, root)
    wanted = [u.strip() for u in users.split(",") if u.strip()]
    _emit(smb_share(mount, folder, name or folder.name or "markfs", read_only, wanted), out)



@share.command("nfs")
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--clients", required=True, metavar="ADDR[,ADDR...]",
              help="Who may mount it: addresses, networks (10.0.0.0/8), host names; "
                   "'*' for anyone (say so explicitly).")
@click.option("--no-root-squash", is_flag=True,
              help="Let a client's root act as root on the mount (default: squashed).")
@_ROOT
@_READ_ONLY
@_WRITE
@click.pass_context
def share_nfs(ctx: click.Context, mountpoint: Path, clients: str, no_root_squash: bool,
              root: str, read_only: bool, out: Path | None) -> None:
    """An nfs-ganesha EXPORT block and an /etc/exports line for MOUNTPOINT, for the
    --clients named, root squashed."""
    allowed = check_clients(clients)
    mount = markfs_mount_at(mountpoint)
    require_allow_other(mount, "NFS")
    data_dir = data_dir_of(ctx)
    record = runtime.find(data_dir, mount.mountpoint)
    if record is None or not record.alive():
        raise UserError(f"{mount.mountpoint} is not mounted from {data_dir.root} "
                        "(give that data directory: markfs --data-dir DIR share nfs ...)")
    folder = shared_folder(mount, root)
    with open_tree(ctx) as tree:
        generation = tree.catalog.generation
    _emit(nfs_export(mount, folder, generation, read_only, allowed, not no_root_squash), out)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"written: {out}")
