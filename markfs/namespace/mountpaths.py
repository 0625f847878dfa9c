"""Mount paths named outside a mount (`/sources/lake/a.csv`): found in the catalog, and
the catalog's path of a node; a path as a user types it (a real one inside a running
mount of the data directory, absolute or relative to the current folder) made one.

A source folder on the way whose name is not known yet is listed now, from its
source, so a path can be named before anyone opened it through a mount. Only
names are added: a process other than the mounted daemon cannot see the daemon's
files open for writing or waiting for their upload, which a full reconcile could
overwrite or remove.
"""

from __future__ import annotations

import os

from markfs import runtime
from markfs.config import DataDir
from markfs.errors import FsError, UserError
from markfs.model import ROOT_ID, Kind, Node
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.listing import add_unknown
from markfs.namespace.tree import Tree


def typed_path(data_dir: DataDir, text: str) -> str:
    """The mount path of what a user typed: a path inside a running mount of this data
    directory (`./q4.csv` from inside it, `/mnt/data/sources/lake/q4.csv`; the mount's
    `--root` counted) becomes its mount path; anything else is taken as one already."""
    real = os.path.abspath(text)  # (no I/O through the mount: names, not links)
    for record in runtime.active_mounts(data_dir):
        point = record.mountpoint.rstrip("/") or "/"
        if real == point or real.startswith(point.rstrip("/") + "/"):
            inside = real[len(point):].strip("/")
            return "/" + "/".join(p for p in (record.root.strip("/"), inside) if p)
    return text


def resolve(tree: Tree, sources: SourceSet, path: str) -> Node:
    """The node at a mount path; source folders on the way are listed if never listed."""
    node = tree.node(ROOT_ID)
    assert node is not None
    for part in (p for p in path.split("/") if p):
        child = tree.child(node.id, part.encode())
        if child is None and node.kind is Kind.SOURCE and node.is_dir:
            list_now(tree, sources, node)
            child = tree.child(node.id, part.encode())
        if child is None:
            raise UserError(f"no such path in the mount: /{path.strip('/')}")
        node = child
    return node


def list_now(tree: Tree, sources: SourceSet, folder: Node) -> None:
    """Names of a source folder the catalog lacks, added from a listing made now."""
    backend = sources.backend(folder.source_id or 0)
    if backend is None:
        return
    try:
        entries = [e for page in backend.list_pages(folder.remote_path or b"") for e in page]
    except (OSError, FsError) as exc:
        raise UserError(f"cannot list /{mount_path(tree, folder).strip('/')}: {exc}") from None
    add_unknown(tree, folder, entries)  # never drops what a running daemon is writing


def mount_path(tree: Tree, node: Node) -> str:
    if node.id == ROOT_ID:
        return "/"
    parts = [node.name, *(folder.name for folder in tree.lineage(node.parent))]
    return "/" + "/".join(p.decode(errors="replace") for p in reversed(parts))
