"""Who owns what the mount shows, and with which modes (`--uid`, `--gid`, `--umask`).

A local source shows the disk's owners and modes: the kernel then checks every user
against them (default_permissions), exactly as on the disk. markfs's own folders,
tables and views have none to keep: those show the mount's owner and group (the user
who mounted, unless --uid/--gid say otherwise) and the modes 0777 (folders) / 0666
(files) less the mount's umask (022 unless --umask says otherwise), without write bits
where nothing can be written — except table files, which are never more readable than
their database (`tableaccess`). An SFTP server's modes are kept; its owners are numbers
of another machine, shown as they are (as sshfs does) unless --uid/--gid are given,
which then own every SFTP entry (sshfs's `-o uid=,gid=`). An S3 object shows the mode
and owner its metadata keeps (`backends/s3meta`), and the defaults above where it keeps
none; as whoever can write to the bucket sets that metadata, its modes stay within the
mount's umask and lose set-user/group-ID bits, and --uid/--gid, where given, own every
S3 entry too (s3fs's `-o umask=,uid=,gid=`).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from markfs.backends.base import KEPT_GID, KEPT_MODE, KEPT_UID
from markfs.errors import UserError
from markfs.model import Kind, Node
from markfs.namespace.tables.access import TableAccess, folder_bits
from markfs.schemes import scheme_of

WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID
MAX_ID = 2**32 - 2  # the largest uid/gid (2**32 - 1 is the kernel's "none")
TABLE_ACCESS_TTL_S = 5.0  # a chmod of a database file shows within this (+ attr_ttl)


@dataclass(frozen=True)
class MountOwner:
    """The mount's --uid/--gid/--umask; `uid`/`gid` None: not given (the mounting user's)."""

    uid: int | None = None
    gid: int | None = None
    umask: int = 0o022

    @classmethod
    def parse(cls, uid: str, gid: str, umask: str) -> MountOwner:
        """From --uid/--gid/--umask (or [mount] uid/gid/umask): names or numbers, octal."""
        try:
            mask = int(umask, 8)
        except ValueError:
            mask = -1
        if not 0 <= mask <= 0o777:
            raise UserError(f"umask must be octal, 000 to 777: {umask!r}")
        return cls(id_of(uid, "user"), id_of(gid, "group"), mask)

    @property
    def shown_uid(self) -> int:
        return os.getuid() if self.uid is None else self.uid

    @property
    def shown_gid(self) -> int:
        return os.getgid() if self.gid is None else self.gid


def id_of(name: str, what: str) -> int | None:
    """A user ("user") or group ("group") given by name or number; None if not given."""
    if not name:
        return None
    look_up: Callable[[str], object] = pwd.getpwnam if what == "user" else grp.getgrnam
    if name.lstrip("-").isdigit():
        number = int(name)
        if not 0 <= number <= MAX_ID:
            raise UserError(f"a {what} number must be between 0 and {MAX_ID}: {name}")
        return number
    if name.isdigit():
        return int(name)
    try:
        entry = look_up(name)
    except KeyError:
        raise UserError(f"no such {what}: {name!r} (a name or a number)") from None
    return int(getattr(entry, "pw_uid" if what == "user" else "gr_gid"))


class Ownership:
    """(mode, uid, gid) of a node as the kernel is told them."""

    def __init__(self, owner: MountOwner, scheme_of: Callable[[int], str | None],
                 table_access: Callable[[int], TableAccess]) -> None:
        self.owner = owner
        self._scheme_of = scheme_of  # a source's URL scheme, by source id
        self._table_access = table_access  # who may read a database source's table files
        self._uid, self._gid = owner.shown_uid, owner.shown_gid
        self._schemes: dict[int, str | None] = {}  # one entry per source
        self._tables: dict[int, tuple[float, TableAccess]] = {}  # one entry per source

    def of(self, node: Node) -> tuple[int, int, int]:
        if node.kind is Kind.TABLE and node.source_id is not None:
            return self._table(node)
        if node.kind is not Kind.SOURCE or node.source_id is None:
            return self._made_up(node.mode), self._uid, self._gid
        scheme = self._schemes.get(node.source_id)
        if scheme is None:
            scheme = self._schemes[node.source_id] = self._scheme_of(node.source_id)
        if scheme_of(scheme).local:
            return node.mode, node.uid, node.gid
        if scheme_of(scheme).keeps_modes:  # SFTP: the server's modes; its owners unless given
            return (node.mode, node.uid if self.owner.uid is None else self._uid,
                    node.gid if self.owner.gid is None else self._gid)
        return self._from_metadata(node)

    def _from_metadata(self, node: Node) -> tuple[int, int, int]:
        """S3: what the object's metadata gave, the defaults for the rest."""
        kept = node.meta_kept or 0
        mode = (stat.S_IFMT(node.mode) | (stat.S_IMODE(node.mode) & ~self.owner.umask
                                          & ~PRIVILEGE_BITS)
                if kept & KEPT_MODE else self._made_up(node.mode))
        return (mode, node.uid if kept & KEPT_UID and self.owner.uid is None else self._uid,
                node.gid if kept & KEPT_GID and self.owner.gid is None else self._gid)

    def _table(self, node: Node) -> tuple[int, int, int]:
        """A table file or folder: its source's access, asked again every few seconds."""
        assert node.source_id is not None
        now = time.monotonic()
        asked, access = self._tables.get(node.source_id, (0.0, None))
        if access is None or now - asked > TABLE_ACCESS_TTL_S:
            access = self._table_access(node.source_id)
            self._tables[node.source_id] = (now, access)
        bits = folder_bits(access.read) if stat.S_ISDIR(node.mode) else access.read
        return (stat.S_IFMT(node.mode) | (bits & ~self.owner.umask),
                self._uid if access.uid is None else access.uid,
                self._gid if access.gid is None else access.gid)

    def _made_up(self, mode: int) -> int:
        """0777/0666 less the umask, for a node whose stored mode only says its type and
        whether it can be written (symlinks stay 0777, as everywhere)."""
        if stat.S_ISLNK(mode):
            return mode
        full = 0o777 if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0o666
        if not mode & stat.S_IWUSR:
            full &= ~WRITE_BITS
        return stat.S_IFMT(mode) | (full & ~self.owner.umask)
