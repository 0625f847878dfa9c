"""Share definitions for a running markfs mount (`markfs share smb|nfs`): a Samba share
section, an nfs-ganesha EXPORT block and the kernel's /etc/exports line, each with the
settings a FUSE filesystem needs, as text for the administrator to install.

What the text leaves out is as deliberate as what it says: no kernel oplocks, leases
or share modes (FUSE has no lease support and markfs no flock); no DOS attributes
kept in xattrs (table folders refuse every write, and a failed xattr write on each
create would fill Samba's log); no alternate data streams (markfs keeps user.*
xattrs only). Names are case-sensitive: a case-insensitive lookup of a missing name
makes Samba list the whole folder, which on S3 is a LIST request per miss.

Safe by default, because the mount is root's and shared with every user: nothing a
user gave (a share name, user names, a folder's path) is pasted into the text
without being checked against what the other program would read in it — a newline
or a bracket in a share name would start a section of its own (`[global]`); Samba
keeps `wide links = no`; NFS squashes root and names its clients (`--clients`, or an
explicit `*`).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from markfs.errors import UserError

FSTYPE = "fuse.markfs"  # fuse_options: subtype=markfs
EXPORT_NAMESPACE = uuid.UUID("6d61726b-6673-4e46-9300-000000000000")  # fsid= of exports


@dataclass(frozen=True)
class MountedFs:
    """A markfs mount as the kernel's mount table shows it."""

    mountpoint: Path
    options: frozenset[str]  # the mount's super options: allow_other, default_permissions...


def markfs_mount_at(path: Path) -> MountedFs:
    """The markfs mount whose mount point is `path`, else a user error."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            fields, described = head.split(" "), tail.split(" ")
            if _unescape(fields[4]) == target and described[0] == FSTYPE:
                options = described[2].strip().split(",") if len(described) > 2 else []
                return MountedFs(Path(target), frozenset(options))
    raise UserError(f"{path} is not a markfs mount point (see: markfs mount)")


def _unescape(field: str) -> str:
    """A path as mountinfo writes it (space, tab, newline, backslash as octal)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def shared_folder(mount: MountedFs, root: str) -> Path:
    """The folder a share exports: the mount point, or SUBPATH below it."""
    folder = Path(os.path.normpath(mount.mountpoint / root.strip("/")))
    if folder != mount.mountpoint and mount.mountpoint not in folder.parents:
        raise UserError(f"--root {root} leads outside the mount {mount.mountpoint}")
    if not folder.is_dir():
        raise UserError(f"--root {root}: no such folder in the mount {mount.mountpoint}")
    return folder


def require_allow_other(mount: MountedFs, protocol: str) -> None:
    if "allow_other" not in mount.options:
        raise UserError(
            f"{mount.mountpoint} was mounted without allow_other: {protocol} serves each "
            f"user as themselves and the kernel hides a FUSE mount from every user but "
            f"the one who mounted it; remount with: markfs mount --allow-other "
            f"{mount.mountpoint}")


# Samba's section names: letters, digits, space, '.', '_', '-' (nothing smb.conf or a
# Windows client reads as syntax: no brackets, '=', ';', '#', '%', '\\', '/', ...)
_SHARE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}")
_RESERVED_SHARES = {"global", "homes", "printers", "print$", "ipc$"}
_USER_NAME = re.compile(r"@?[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def check_share_name(name: str) -> str:
    if not _SHARE_NAME.fullmatch(name) or name.endswith(" "):
        raise UserError("invalid share name: use 1-80 letters, digits, spaces, '.', '_' "
                        "or '-', starting with a letter or digit (give --name)")
    if name.lower() in _RESERVED_SHARES:
        raise UserError(f"invalid share name {name!r}: Samba reserves it")
    return name


def check_users(users: list[str]) -> list[str]:
    """Users (and @groups) of this system, each checked to exist."""
    for user in users:
        if not _USER_NAME.fullmatch(user):
            raise UserError("invalid user name in --users: letters, digits, '_', '.', '-' "
                            "(a group as @group)")
        try:
            grp.getgrnam(user[1:]) if user.startswith("@") else pwd.getpwnam(user)
        except KeyError:
            kind = "group" if user.startswith("@") else "user"
            raise UserError(f"no such {kind} on this system: {user.lstrip('@')!r}") from None
    return users


def check_share_path(folder: Path) -> Path:
    """A folder path another program's config may hold: no control characters,
    quotes or backslashes (each would end a value or start another line)."""
    text = str(folder)
    if any(ord(c) < 32 or c in '"\\' for c in text) or "\x7f" in text:
        raise UserError("the shared folder's path holds a control character, a quote or a "
                        "backslash: share a folder whose path has none (--root)")
    return folder


def check_clients(clients: str) -> list[str]:
    """NFS clients: addresses, networks (CIDR) or host names; '*' alone for anyone."""
    wanted = [c.strip() for c in clients.split(",") if c.strip()]
    if wanted == ["*"]:
        return wanted
    if not wanted:
        raise UserError("--clients needs at least one address, network or host name")
    for client in wanted:
        try:
            ipaddress.ip_network(client, strict=False)
        except ValueError:
            if not _HOST_NAME.fullmatch(client):
                raise UserError("invalid NFS client in --clients: give addresses, networks "
                                "(10.0.0.0/8) or host names, or '*' alone for anyone") from None
    return wanted


def smb_share(mount: MountedFs, folder: Path, name: str, read_only: bool,
              users: list[str]) -> str:
    """A Samba share section for `folder` of the mount (name, users and path checked)."""
    name, users, folder = check_share_name(name), check_users(users), check_share_path(folder)
    lines = [
        f"# markfs mount {mount.mountpoint}: needs allow_other (it has it)",
        f"[{name}]",
        f"   path = {folder}",
        f"   comment = markfs {folder}",
        f"   read only = {'yes' if read_only else 'no'}",
        "   browseable = yes",
    ]
    if users:
        lines.append(f"   valid users = {' '.join(users)}")
    lines += [
        "   # FUSE has no leases, markfs no flock: Samba keeps oplocks and locks itself",
        "   kernel oplocks = no",
        "   kernel share modes = no",
        "   posix locking = no",
        "   # no DOS attributes in xattrs or mode bits (table folders refuse writes)",
        "   store dos attributes = no",
        "   map archive = no",
        "   map hidden = no",
        "   map system = no",
        "   map readonly = no",
        "   ea support = yes",
        "   # symlinks are followed only inside the share (never to the rest of the host)",
        "   wide links = no",
        "   # case-sensitive names: a miss must not list the whole folder (S3 LIST)",
        "   case sensitive = yes",
        "   preserve case = yes",
        "   short preserve case = yes",
        "   # space is what statfs answers; files are written whole on close",
        "   strict allocate = no",
        "   strict sync = yes",
        "",
    ]
    return "\n".join(lines)


def export_ids(generation: int, folder: Path, mount: MountedFs) -> tuple[int, str, uuid.UUID]:
    """(Export_Id, Filesystem_Id, kernel fsid) for a folder of a catalog: the same for
    every mount of that catalog at any mount point, so NFS clients' handles and
    paths survive a daemon restart, and different for each exported folder."""
    inside = folder.relative_to(mount.mountpoint).as_posix()
    key = f"{generation}:{inside}"
    crc = zlib.crc32(key.encode())
    export_id = 100 + crc % 60000  # 1..65535; 0 is the pseudo root's
    return export_id, f"{generation}.{crc}", uuid.uuid5(EXPORT_NAMESPACE, key)


def nfs_export(mount: MountedFs, folder: Path, generation: int, read_only: bool,
               clients: list[str], root_squash: bool = True) -> str:
    """An nfs-ganesha EXPORT block (VFS FSAL over the mount) and the /etc/exports line:
    only `clients` (['*']: anyone), root squashed unless asked otherwise."""
    folder = check_share_path(folder)
    export_id, filesystem_id, fsid = export_ids(generation, folder, mount)
    inside = folder.relative_to(mount.mountpoint).as_posix()
    pseudo = "/markfs" if inside == "." else f"/markfs/{inside}"
    access = "RO" if read_only else "RW"
    squash = "Root_Squash" if root_squash else "No_Root_Squash"
    options = (f"{'ro' if read_only else 'rw'},sync,no_subtree_check,"
               f"{'root_squash' if root_squash else 'no_root_squash'},fsid={fsid}")
    exported = str(folder).replace(" ", "\\040")  # /etc/exports: a space ends the path
    return "\n".join([
        f"# nfs-ganesha: markfs mount {mount.mountpoint} (a stable Filesystem_Id and inode",
        "# numbers after the daemon restarts; ganesha's handles hold while the mount gets",
        "# its device number back, else clients look names up again); only the clients",
        "# named below, root squashed",
        "EXPORT {",
        f"    Export_Id = {export_id};",
        f'    Path = "{folder}";',
        f'    Pseudo = "{pseudo}";',
        "    Access_Type = None;  # for anyone not named in CLIENT",
        f"    Squash = {squash};",
        "    Protocols = 3, 4;",
        "    Transports = TCP;",
        "    SecType = sys;",
        f"    Filesystem_Id = {filesystem_id};",
        "    CLIENT {",
        f"        Clients = {', '.join(clients)};",
        f"        Access_Type = {access};",
        f"        Squash = {squash};",
        "    }",
        "    FSAL { Name = VFS; }",
        "}",
        "",
        "# a kernel NFS server instead: this line in /etc/exports, without the '# '",
        "# (fsid= is required for a FUSE filesystem):",
        f"# {exported}  {' '.join(f'{c}({options})' for c in clients)}",
        "",
    ])
