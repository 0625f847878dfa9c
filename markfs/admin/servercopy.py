"""Copies of a file inside the sources that move no bytes through markfs (`markfs cp`).

The kernel cannot hand markfs a `cp` inside the mount as one request (pyfuse3 has no
copy_file_range), so the command names the two mount paths instead. The storage copies
the file itself: S3 with CopyObject (boto3's managed copy: UploadPartCopy parts above
its multipart threshold), also between buckets of one endpoint; SFTP with OpenSSH's
`copy-data` extension; a local folder with copy_file_range. Each writes a hidden
temporary name and renames it into place where the storage can (S3's copy is atomic
by itself), and the new file enters the catalog at once, so a running mount shows it.

An existing destination is refused, never replaced: a mount may hold its old bytes in
the kernel's page cache or be uploading it, which this process cannot see.
"""

from __future__ import annotations

import errno
import posixpath
import stat
from dataclasses import dataclass

from markfs.backends.base import copies_on_server
from markfs.errors import UserError
from markfs.model import Kind, Node
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.listing import child_path, refresh_one, valid_name
from markfs.namespace.mountpaths import mount_path, resolve
from markfs.namespace.tree import Tree


@dataclass(frozen=True)
class Copied:
    path: str  # the new file's mount path
    size: int


def copy_on_server(tree: Tree, sources: SourceSet, src: str, dst: str) -> Copied:
    """Copy the file at mount path `src` to `dst` (a new name, or a folder to copy into)."""
    node = resolve(tree, sources, src)
    if node.kind is not Kind.SOURCE or not stat.S_ISREG(node.mode):
        raise UserError(f"not a file of a source: {src}")
    parent, name = _destination(tree, sources, dst, node.name)
    row = sources.row(parent.source_id or 0)
    if row is not None and row.read_only:
        raise UserError(f"source {row.name!r} is read-only")
    here, there = sources.backend(node.source_id or 0), sources.backend(parent.source_id or 0)
    if not copies_on_server(there) or not copies_on_server(here):
        raise UserError(f"{mount_path(tree, parent)} cannot copy on its server: use cp")
    try:
        entry = there.copy_file(here, node.remote_path or b"", child_path(parent, name))
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise UserError(f"{src} and {dst} are not on one server: use cp") from None
        raise UserError(f"copy to {mount_path(tree, parent)}: {exc.strerror}") from None
    refresh_one(tree, parent, entry, name)
    return Copied(posixpath.join(mount_path(tree, parent), name.decode(errors="replace")),
                  entry.size)


def _destination(tree: Tree, sources: SourceSet, dst: str, src_name: bytes) -> tuple[Node, bytes]:
    """The folder and the new name `dst` stands for (a folder means: keep the name)."""
    try:
        target: Node | None = resolve(tree, sources, dst)
    except UserError:
        target = None
    if target is not None and target.is_dir:
        parent, name = target, src_name
        if tree.child(parent.id, name) is not None:
            raise UserError(f"{dst.rstrip('/')}/{name.decode(errors='replace')} exists: "
                            "markfs cp never replaces a file (remove it first)")
    elif target is not None:
        raise UserError(f"{dst} exists: markfs cp never replaces a file (remove it first)")
    else:
        folder, _, last = dst.rstrip("/").rpartition("/")
        parent, name = resolve(tree, sources, folder or "/"), last.encode()
    if parent.kind is not Kind.SOURCE or not parent.is_dir:
        raise UserError(f"not a folder of a source: {mount_path(tree, parent)}")
    if not valid_name(name):
        raise UserError(f"not a valid file name: {name!r}")
    return parent, name
