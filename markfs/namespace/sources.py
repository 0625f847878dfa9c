"""Sources: parsing their URLs, adding and removing them, and the backend of each."""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markfs.backends.base import Backend
from markfs.backends.local import LocalBackend
from markfs.catalog import nodes as q
from markfs.catalog import sources as sq
from markfs.catalog.sources import SourceRow
from markfs.errors import UserError
from markfs.model import Kind, Node
from markfs.namespace.tree import SOURCES_ID, Tree

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
PLANNED_SCHEMES = {
    "s3": "S3 sources",
    "sftp": "SFTP sources",
    "sqlite": "SQLite sources",
    "postgresql": "PostgreSQL sources",
    "mysql": "MySQL sources",
}


@dataclass(frozen=True)
class SourceUrl:
    scheme: str
    path: Path  # for file://


def validate_source_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"invalid source name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")


def parse_source_url(url: str) -> SourceUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise UserError(f"not a source URL: {url!r} (expected e.g. file:///abs/dir)")
    if scheme in PLANNED_SCHEMES:
        raise UserError(f"{PLANNED_SCHEMES[scheme]} are not supported yet: {scheme}://")
    if scheme != "file":
        raise UserError(f"unknown URL scheme {scheme!r} in {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise UserError(f"file:// URLs take an absolute path, got host {parts.netloc!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise UserError(f"file:// URLs take an absolute path: {url!r}")
    if ".." in path.split("/"):
        raise UserError(f"source path must not contain '..': {path}")
    return SourceUrl("file", Path(path))


def backend_for(row: SourceRow) -> Backend:
    parsed = parse_source_url(row.url)
    return LocalBackend(parsed.path)


def add_source(tree: Tree, name: str, url: str, read_only: bool) -> Node:
    """Register a source and give it its folder under /sources."""
    validate_source_name(name)
    parsed = parse_source_url(url)
    if not parsed.path.is_dir():
        raise UserError(f"not a directory: {parsed.path}")
    if sq.get_source(tree.catalog.conn, name) is not None:
        raise UserError(f"a source named {name!r} exists already")
    root = os.stat(parsed.path)
    now = time.time_ns()
    with tree.transaction() as txn:
        source_id = sq.insert_source(txn, name, url, parsed.scheme, read_only)
        mode = stat.S_IFDIR | (stat.S_IMODE(root.st_mode) & (0o555 if read_only else 0o7777))
        new = q.NewNode(Kind.SOURCE, mode, root.st_uid, root.st_gid, 0, root.st_mtime_ns,
                        now, nlink=2, source_id=source_id, remote_path=b"")
        node_id = q.insert_node(txn, SOURCES_ID, name.encode(), new,
                                generation=tree.generation)
    node = tree.node(node_id)
    assert node is not None
    return node


def remove_source(tree: Tree, name: str) -> None:
    row = require_source(tree, name)
    node = q.node_by_remote(tree.catalog.conn, row.id, b"")
    with tree.transaction() as txn:
        if node is not None:
            q.delete_subtree(txn, node.id)
        sq.delete_source(txn, row.id)


def require_source(tree: Tree, name: str) -> SourceRow:
    row = sq.get_source(tree.catalog.conn, name)
    if row is None:
        raise UserError(f"unknown source: {name!r}")
    return row


def list_sources(tree: Tree) -> list[SourceRow]:
    return sq.list_sources(tree.catalog.conn)


class SourceSet:
    """The backends of all sources of a mount, by source id."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._backends: dict[int, Backend] = {}
        self._rows: dict[int, SourceRow] = {}

    def row(self, source_id: int) -> SourceRow | None:
        if source_id not in self._rows:
            row = sq.get_source_by_id(self.tree.catalog.conn, source_id)
            if row is None:
                return None
            self._rows[source_id] = row
        return self._rows[source_id]

    def backend(self, source_id: int) -> Backend | None:
        if source_id not in self._backends:
            row = self.row(source_id)
            if row is None:
                return None
            self._backends[source_id] = backend_for(row)
        return self._backends[source_id]

    def local_roots(self) -> dict[int, Path]:
        """Source id -> directory, for every file:// source (for the watcher)."""
        out = {}
        for row in sq.list_sources(self.tree.catalog.conn):
            if row.scheme == "file":
                out[row.id] = parse_source_url(row.url).path.resolve()
        return out
