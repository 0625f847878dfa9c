"""Sources: adding and removing them, the backend of each, and the set a mount serves
(their URLs are `urls`' business)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from markfs.backends.base import Backend, S3Location, SftpLocation
from markfs.backends.local import LocalBackend
from markfs.catalog import nodes
from markfs.catalog import sources as source_rows
from markfs.catalog.sources import FilesAccess, SourceRow
from markfs.catalog.tables.search import forget_source
from markfs.errors import SourceShut, UserError
from markfs.model import Kind, Node
from markfs.namespace.files.health import SourceHealth, SourceState
from markfs.namespace.files.urls import (
    SourceUrl,
    parse_source_url,
    redact,
    validate_source_name,
)
from markfs.namespace.tables.access import TableAccess, access_of
from markfs.namespace.tree import SOURCES_ID, TABLES_ID, Tree
from markfs.schemes import scheme_of
from markfs.sql.base import SqliteLocation, SqlSource
from markfs.sql.connect import open_sql_source

NO_FILES_ACCESS = FilesAccess()  # the defaults: the mount's owner and group, 0440


def backend_for(row: SourceRow, timeout: float = 30.0) -> Backend:
    return _backend_at(parse_source_url(row.url), row.name, timeout, row.created_ns)


def _backend_at(parsed: SourceUrl, name: str, timeout: float, created_ns: int) -> Backend:
    if scheme_of(parsed.scheme).tables:
        raise UserError(f"source {name!r} holds tables, not files")
    return OPENERS[parsed.scheme](parsed.location, timeout, created_ns)


def _open_local(location: object, timeout: float, created_ns: int) -> Backend:
    assert isinstance(location, Path)
    return LocalBackend(location)


def _open_s3(location: object, timeout: float, created_ns: int) -> Backend:
    from markfs.backends.s3 import S3Backend  # boto3 is slow to import: only when used

    assert isinstance(location, S3Location)
    return S3Backend(location, read_timeout=timeout, created_ns=created_ns)


def _open_sftp(location: object, timeout: float, created_ns: int) -> Backend:
    from markfs.backends.sftp import SftpBackend

    assert isinstance(location, SftpLocation)
    return SftpBackend(location, timeout=timeout)


# the backend of each scheme of files (`markfs.schemes`): its location, the timeout of a
# request, when the source was added (S3 prefixes have no time of their own)
OPENERS: dict[str, Callable[[object, float, int], Backend]] = {
    "file": _open_local, "s3": _open_s3, "sftp": _open_sftp,
}


def _check_usable(name: str, parsed: SourceUrl) -> None:
    """What `source test` does, before a remote source is recorded."""
    backend = _backend_at(parsed, name, CHECK_TIMEOUT_S, time.time_ns())
    try:  # (an SFTP session it opened ends with this process: its ssh reads our pipe)
        backend.check()
    except OSError as exc:
        raise UserError(f"source {name!r} cannot be used: {exc.strerror or exc} (fix the URL "
                        "or the server; --no-check adds it anyway)") from None


def _add_sql_source(tree: Tree, name: str, url: str, parsed: SourceUrl,
                    read_only: bool, files: FilesAccess) -> None:
    """A database: recorded now, its tables appear under /tables once managed."""
    open_sql_source(parsed.location).close()  # a clear error now beats one at scan time
    with tree.transaction() as txn:
        source_rows.insert_source(txn, name, redact(url), parsed.scheme, read_only, files)


def _check_files_access(parsed: SourceUrl, files: FilesAccess) -> None:
    if files == NO_FILES_ACCESS:
        return
    if not scheme_of(parsed.scheme).server_database:
        raise UserError("--uid, --gid and --mode are for postgresql:// and mysql:// sources "
                        "(a SQLite source's table files take the database file's owner, "
                        "group and read bits)")
    if files.mode is not None and files.mode & ~0o444:
        raise UserError("--mode takes read bits only, e.g. 0440 (table files are read-only)")


def open_sql(row: SourceRow) -> SqlSource:
    """A connection to the database of an SQL source (the caller closes it)."""
    return open_sql_source(parse_source_url(row.url).location)


CHECK_TIMEOUT_S = 15.0  # `source add` waits this long for a remote source's first answer


def table_access_of(row: SourceRow | None) -> TableAccess:
    """Who may read a source's table files."""
    location = None if row is None else parse_source_url(row.url).location
    return access_of(row, location.path if isinstance(location, SqliteLocation) else None)


def is_sql(row: SourceRow) -> bool:
    return scheme_of(row.scheme).tables


def add_source(tree: Tree, name: str, url: str, read_only: bool,
               check: bool = False, files: FilesAccess = NO_FILES_ACCESS) -> Node | None:
    """Register a source and give it its folder under /sources; `check`: an S3 or SFTP
    source must answer first (as `source test`), else a one-line error; `files`: who
    may read a PostgreSQL/MySQL source's table files."""
    validate_source_name(name)
    parsed = parse_source_url(url)
    _check_files_access(parsed, files)
    if tree.catalog.sources.get_source(name) is not None:
        raise UserError(f"a source named {name!r} exists already")
    scheme = scheme_of(parsed.scheme)
    if check and not scheme.local and not scheme.tables:
        _check_usable(name, parsed)
    if scheme.tables:
        _add_sql_source(tree, name, url, parsed, read_only, files)
        return None
    now = time.time_ns()
    mode, uid, gid, mtime = stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), now
    if isinstance(parsed.location, Path):
        if not parsed.location.is_dir():
            raise UserError(f"not a directory: {parsed.location}")
        root = os.stat(parsed.location)
        mode, uid, gid, mtime = root.st_mode, root.st_uid, root.st_gid, root.st_mtime_ns
    with tree.transaction() as txn:
        source_id = source_rows.insert_source(txn, name, redact(url), parsed.scheme, read_only)
        mode = stat.S_IFDIR | (stat.S_IMODE(mode) & (0o555 if read_only else 0o7777))
        new = nodes.NewNode(Kind.SOURCE, mode, uid, gid, 0, mtime, now, nlink=2,
                        source_id=source_id, remote_path=b"")
        node_id = nodes.insert_node(txn, SOURCES_ID, name.encode(), new,
                                generation=tree.generation)
    node = tree.node(node_id)
    assert node is not None
    return node


def remove_source(tree: Tree, name: str, discard_pending: bool = False) -> None:
    """Take a source out of the catalog (its data is not touched). Files written through
    a mount and not on the source yet would be lost with it: refused unless
    `discard_pending`."""
    row = require_source(tree, name)
    waiting = tree.catalog.uploads.count_of_source(row.id)
    if waiting and not discard_pending:
        raise UserError(f"source {name!r} has {waiting} file(s) written through a mount "
                        "and not uploaded yet (see: markfs status); wait for them, or "
                        "remove it anyway with --discard-pending")
    node = tree.catalog.nodes.node_by_remote(row.id, b"")
    tables = tree.catalog.nodes.find_child(TABLES_ID, name.encode())
    with tree.transaction() as txn:
        for folder in (node, tables):
            if folder is not None:
                nodes.delete_subtree(txn, folder.id)
        forget_source(txn, row.id)
        source_rows.delete_source(txn, row.id)


def require_source(tree: Tree, name: str) -> SourceRow:
    row = tree.catalog.sources.get_source(name)
    if row is None:
        raise UserError(f"unknown source: {name!r}")
    return row


def list_sources(tree: Tree) -> list[SourceRow]:
    return tree.catalog.sources.list_sources()


class SourceSet:
    """The backends of all sources of a mount, by source id."""

    def __init__(self, tree: Tree, timeout: float = 30.0,
                 open_backend: Callable[[SourceRow, float], Backend] | None = None) -> None:
        self.tree = tree
        self.timeout = timeout
        # how a source's backend is made (the in-process tests give their own stores)
        self._open_backend = open_backend or backend_for
        self.health = SourceHealth()  # a mount gives it a file for `markfs status`
        self._backends: dict[int, Backend] = {}
        self._rows: dict[int, SourceRow] = {}

    def row(self, source_id: int) -> SourceRow | None:
        if source_id not in self._rows:
            row = self.tree.catalog.sources.get_source_by_id(source_id)
            if row is None:
                return None
            self._rows[source_id] = row
        return self._rows[source_id]

    def scheme(self, source_id: int) -> str | None:
        row = self.row(source_id)
        return None if row is None else row.scheme

    def name(self, source_id: int | None) -> str:
        """The source's name, for metrics labels ("" for nodes of no source)."""
        row = self.row(source_id) if source_id is not None else None
        return row.name if row is not None else ""

    def answered(self, source_id: int | None, error: BaseException | None = None) -> None:
        """What a call to a source's backend came to, for its health (a call not made
        because the source is shut says nothing new)."""
        if isinstance(error, SourceShut):
            return
        name = self.name(source_id)
        if name:
            if error is None:
                self.health.worked(name)
            else:
                self.health.failed(name, error)

    def shut(self, source_id: int) -> SourceState | None:
        """The state of a remote source that is not ok (its calls fail at once until it
        answers a probe); None for one that is, and for local sources (their disk is
        asked each time: one bad file must not shut the folder)."""
        if scheme_of(self.scheme(source_id)).local:
            return None
        state = self.health.state_of(self.name(source_id))
        return state if state is not None and state.state != "ok" else None

    def shut_ids(self) -> list[int]:
        """Remote sources whose calls fail at once now (each was called, so its row is
        known here: no catalog read, every few seconds, on the loop)."""
        return [row.id for row in list(self._rows.values())
                if not is_sql(row) and self.shut(row.id) is not None]

    def table_access(self, source_id: int) -> TableAccess:
        """Who may read the source's table files (a SQLite file is looked at now)."""
        return table_access_of(self.row(source_id))

    def backend(self, source_id: int) -> Backend | None:
        if source_id not in self._backends:
            row = self.row(source_id)
            if row is None:
                return None
            self._backends[source_id] = self._open_backend(row, self.timeout)
        return self._backends[source_id]

    def slow_to_connect(self) -> list[Backend]:
        """The backends whose first connection is slow (SFTP: starting ssh and its key
        exchange), made now; others are not built before their first use (an S3 client
        takes ~0.3 s to build, and building it connects to nothing)."""
        rows = self.tree.catalog.sources.list_sources()
        found = [self.backend(row.id) for row in rows if scheme_of(row.scheme).connect_ahead]
        return [backend for backend in found if backend is not None]

    def local_roots(self) -> dict[int, Path]:
        """Source id -> directory, for every file:// source (for the watcher)."""
        out = {}
        for row in self.tree.catalog.sources.list_sources():
            location = parse_source_url(row.url).location
            if isinstance(location, Path):
                out[row.id] = location.resolve()
        return out
