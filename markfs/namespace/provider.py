"""The provider interface: what one kind of node answers, and the read-only defaults.

`Namespace` finds a node's provider by its kind and asks it. Operations on a name
(lookup, list_folder, create, mkdir, symlink, link, remove, rename) go to the provider of
the folder holding the name; operations on a node (attrs, open, setattr, xattrs)
to the node's own provider. A member of a view is its source's node, so what is
done to it through a view is done by the source's provider.

`Provider`'s defaults describe a read-only node with nothing below it: every
change is EROFS (stated here once), xattrs are those stored in the catalog.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from markfs.config import MountConfig
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.coordination import ChangeMarks, DirectoryLocks, KernelNotifications
from markfs.namespace.handles import FileHandle, HandleTable
from markfs.namespace.tree import Tree
from markfs.namespace.workers import CatalogRunner, IoRunner


@dataclass(frozen=True)
class Caller:
    """Who asked: new files and folders belong to them; gathered folders show them only
    what they could reach (`reach`)."""

    uid: int
    gid: int
    pid: int = 0  # the calling thread (its supplementary groups are in /proc); 0: unknown


@dataclass(frozen=True)
class AttrChanges:
    """What a setattr asks to change (None: leave as it is)."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None

    @property
    def nothing(self) -> bool:
        """chown(f, -1, -1) asks for this: nothing changes but the ctime (as on a disk)."""
        return all(value is None for value in (self.mode, self.uid, self.gid, self.size,
                                               self.atime_ns, self.mtime_ns))


@dataclass
class Services:
    """What the namespace lends every provider."""

    tree: Tree
    config: MountConfig
    io: IoRunner  # worker threads with a deadline; OSError becomes FsError
    handles: HandleTable
    locks: DirectoryLocks
    marks: ChangeMarks
    kernel: KernelNotifications
    catalog: CatalogRunner  # catalog work: off the loop on a server's catalog, inline else


# (cookie, name, node) with cookies increasing: what a folder lists after a cookie
Listing = list[tuple[int, bytes, Node]]


class Provider:
    """A read-only node with nothing below it; subclasses override what they serve."""

    def __init__(self, services: Services) -> None:
        self.s = services

    # -- names in a folder of this kind ------------------------------------------

    async def lookup(self, parent: Node, name: bytes) -> Node | None:
        return None

    async def list_folder(self, directory: Node, after: int, limit: int) -> Listing:
        """Children after cookie `after` (0: from the start, which may refresh them)."""
        return []

    async def create(self, parent: Node, name: bytes, mode: int, flags: int,
                     caller: Caller) -> FileHandle:
        raise FsError(errno.EROFS)

    async def mkdir(self, parent: Node, name: bytes, mode: int, caller: Caller) -> Node:
        raise FsError(errno.EROFS)

    async def mknod(self, parent: Node, name: bytes, mode: int, rdev: int,
                    caller: Caller) -> Node:
        """A FIFO, a socket or a device node (`rdev`: its number)."""
        raise FsError(errno.EROFS)

    async def symlink(self, parent: Node, name: bytes, target: bytes, caller: Caller) -> Node:
        raise FsError(errno.EROFS)

    async def link(self, node: Node, parent: Node, name: bytes) -> Node:
        raise FsError(errno.EROFS)

    async def remove(self, parent: Node, name: bytes, want_dir: bool) -> None:
        raise FsError(errno.EROFS)

    async def rename(self, old_parent: Node, old_name: bytes, new_parent: Node,
                     new_name: bytes, flags: int) -> None:
        raise FsError(errno.EROFS)

    # -- the node itself ---------------------------------------------------------------

    def attrs(self, node: Node) -> Node:
        return node

    def writable(self, node: Node) -> bool:
        return False

    def kernel_keeps(self, node: Node) -> float | None:
        """Seconds the kernel may keep this node's name and attributes because every
        change markfs learns of before then is pushed to it; None: the mount's
        `entry_ttl`/`attr_ttl` (tables, gathered folders, control files: computed, or
        changing all the time)."""
        return None

    def kernel_keeps_absent(self, folder: Node) -> float | None:
        """The same for "no such name" in `folder` (a folder of this kind)."""
        return None

    async def open(self, node: Node, flags: int) -> FileHandle:
        raise FsError(errno.EROFS)

    async def setattr(self, node: Node, changes: AttrChanges,
                      handle: FileHandle | None) -> Node:
        raise FsError(errno.EROFS)

    def getxattr(self, node: Node, name: bytes) -> bytes:
        value = self.s.tree.catalog.xattrs.get_xattr(node.id, name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def listxattr(self, node: Node) -> list[bytes]:
        return self.s.tree.catalog.xattrs.list_xattrs(node.id)

    def setxattr(self, node: Node, name: bytes, value: bytes) -> None:
        raise FsError(errno.EROFS)

    def removexattr(self, node: Node, name: bytes) -> None:
        raise FsError(errno.EROFS)


class CatalogFolders(Provider):
    """Folders whose children are exactly their rows in the catalog's node tree."""

    async def lookup(self, parent: Node, name: bytes) -> Node | None:
        return self.s.tree.child(parent.id, name)

    async def list_folder(self, directory: Node, after: int, limit: int) -> Listing:
        return await self.s.catalog.read(self.s.tree.children, directory.id, after, limit)
