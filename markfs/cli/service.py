"""Running markfs as a system service: `markfs mount-helper`, what `mount -t markfs` and
an /etc/fstab line call (through mount/mount.markfs or the `mount.markfs` script)."""

from __future__ import annotations

import os
import sys

import click

from markfs.errors import UserError

# fstab options that concern mount(8), systemd or the boot order, not the filesystem
IGNORED_OPTIONS = {"defaults", "rw", "auto", "noauto", "user", "nouser", "users", "nofail",
                   "_netdev", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "async",
                   "atime", "noatime", "relatime"}


def mount_arguments(data_dir: str, mountpoint: str, options: str) -> list[str]:
    """`markfs` arguments for `mount -t markfs DATA_DIR MOUNTPOINT -o OPTIONS`."""
    args = ["--data-dir", data_dir, "mount", mountpoint]
    for option in filter(None, options.split(",")):
        name, _, value = option.partition("=")
        if name in IGNORED_OPTIONS or name.startswith(("x-", "comment=")):
            continue
        if name in ("root", "uid", "gid", "umask") and value:
            args += [f"--{name}", value]
        elif name in ("allow_other", "ro", "foreground", "nonempty") and not value:
            args.append({"allow_other": "--allow-other", "ro": "--read-only",
                         "foreground": "--foreground", "nonempty": "--nonempty"}[name])
        else:
            raise UserError(f"unknown mount option for markfs: {option} (known: root=PATH, "
                            "uid=, gid=, umask=, allow_other, ro, nonempty, foreground, "
                            "and mount(8)'s generic ones)")
    return args


@click.command("mount-helper", hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("data_dir")
@click.argument("mountpoint")
@click.option("-o", "options", default="", help="Comma-separated mount options.")
@click.option("-s", "sloppy", is_flag=True, help="(mount(8): tolerate unknown options)")
@click.option("-f", "fake", is_flag=True, help="(mount(8): do everything but mount)")
@click.option("-n", "no_mtab", is_flag=True, help="(mount(8): no /etc/mtab entry)")
@click.option("-v", "verbose", is_flag=True, help="(mount(8): verbose)")
def mount_helper(data_dir: str, mountpoint: str, options: str, sloppy: bool, fake: bool,
                 no_mtab: bool, verbose: bool) -> None:
    """mount.markfs DATA_DIR MOUNTPOINT [-o OPTIONS]: the mount(8) helper."""
    args = mount_arguments(os.path.abspath(data_dir), os.path.abspath(mountpoint), options)
    if verbose:
        click.echo(f"markfs {' '.join(args)}", err=True)
    if fake:
        return
    command = [sys.executable, "-m", "markfs", *args]
    os.execv(sys.executable, command)


def mount_script() -> None:
    """The `mount.markfs` console script: mount(8)'s calling convention."""
    from markfs.cli.common import MarkfsGroup

    group = MarkfsGroup(commands={"mount-helper": mount_helper})
    group(args=["mount-helper", *sys.argv[1:]], prog_name="mount.markfs")
