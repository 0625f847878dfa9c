"""`markfs mount`, `umount` and `demo`: the daemon started, stopped and waited for."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from markfs import runtime
from markfs.cli.common import data_dir_of, human_size, open_tree
from markfs.config import DataDir, OwnerOverride
from markfs.errors import UserError
from markfs.fs.daemon import DETACHED_ENV, start_background


@click.command()
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



@click.command()
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
            click.echo(f"waiting for {count} upload(s) ({human_size(size)}), "
                       f"{time.monotonic() - started:.0f}s so far", err=True)
            last_report = time.monotonic()
        time.sleep(0.1)
    with open_tree(ctx) as tree:
        count, size = tree.pending_uploads(owner)
        parked = [row for row in tree.parked_uploads() if owner is None or row.owner == owner]
    if count:
        raise UserError(f"unmounted, but {count} upload(s) ({human_size(size)}) are still pending;"
                        " they resume at the next mount")
    if parked:
        raise UserError(f"unmounted, but {len(parked)} upload(s) were parked: "
                        f"{parked[0].last_error} (see: markfs status)")



@click.command()
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
