"""Who may read a database source's table files: never more than may read the database.

The mount runs as root, so the kernel's checks are all that stand between a user and
`/tables`; they check what `ownership` shows. A SQLite source's files take the
database file's owner, group and read bits — less those a class of users loses to a
folder above the file it cannot search (alice's 0644 database in her 0700 home is
hers alone). A PostgreSQL or MySQL database has no file to copy them from: its
source carries `uid`, `gid` and `mode` of its own (`markfs source add --uid --gid
--mode`), by default the mount's owner and group with 0440 — never world-readable
unless asked. Folders of a source's tables get a search bit beside each read bit.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from markfs.catalog.sources import SourceRow

SERVER_DEFAULT_MODE = 0o440
READ_BITS = 0o444


@dataclass(frozen=True)
class TableAccess:
    uid: int | None  # None: the mount's --uid
    gid: int | None  # None: the mount's --gid
    read: int  # read bits of the files


NOBODY_BUT_ROOT = TableAccess(0, 0, 0)  # a source gone, or a database file gone


def access_of(row: SourceRow | None, sqlite_path: str | None) -> TableAccess:
    """The access of a source's table files (`sqlite_path`: the database file of a
    sqlite:// source)."""
    if row is None:
        return NOBODY_BUT_ROOT
    if sqlite_path is not None:
        return sqlite_access(Path(sqlite_path))
    mode = SERVER_DEFAULT_MODE if row.files_mode is None else row.files_mode
    return TableAccess(row.files_uid, row.files_gid, mode & READ_BITS)


def sqlite_access(path: Path) -> TableAccess:
    try:
        st = os.stat(path)
        read = st.st_mode & READ_BITS
        for folder in path.parents:
            read &= _searchable(os.stat(folder), st)
    except OSError:
        return NOBODY_BUT_ROOT
    return TableAccess(st.st_uid, st.st_gid, read)


def _searchable(folder: os.stat_result, file: os.stat_result) -> int:
    """The read bits of `file` that survive `folder` above it: a class keeps its read
    bit only if it may search the folder (counted narrowly: the file's group members
    are judged by the folder's group bits only where the two groups are one)."""
    mode = folder.st_mode
    other = bool(mode & stat.S_IXOTH)
    group = other or (folder.st_gid == file.st_gid and bool(mode & stat.S_IXGRP))
    owner = other or (folder.st_uid == file.st_uid and bool(mode & stat.S_IXUSR)) or (
        folder.st_gid == file.st_gid and bool(mode & stat.S_IXGRP))
    return ((stat.S_IRUSR if owner else 0) | (stat.S_IRGRP if group else 0)
            | (stat.S_IROTH if other else 0))


def folder_bits(read: int) -> int:
    """A folder's bits for these read bits: read and search together."""
    return read | (read >> 2)
