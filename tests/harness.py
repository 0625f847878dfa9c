"""The namespace driven without a kernel: providers answer calls made in this process.

Like S3QL's `t3_fs_api`: the same calls the FUSE adapter makes, on catalog node
ids and bytes names, under trio, with the uploader and the chunk reader running.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import trio
from conftest import add_source_now

from markfs.backends.base import Backend
from markfs.backends.memory import MemoryBackend
from markfs.catalog import nodes
from markfs.catalog.sources import SourceRow
from markfs.config import DataDir, MountConfig
from markfs.errors import FsError
from markfs.model import Kind, Node
from markfs.namespace.control import MountInfo
from markfs.namespace.files.sources import SourceSet, backend_for
from markfs.namespace.ops import Caller, Namespace
from markfs.namespace.tree import ROOT_ID, Tree

T = TypeVar("T")
ROOT = Caller(uid=os.getuid(), gid=os.getgid())


def add_memory_source(data_dir: Path, name: str = "m", **options: int) -> MemoryBackend:
    """A source `name` whose store is a `MemoryBackend` (give it to `InProcess` as
    `stores={name: ...}`): recorded as an S3 source, whose answers it gives."""
    add_source_now(data_dir, name, f"s3://memory-{name.lower()}/")
    return MemoryBackend(**options)


class InProcess:
    """A namespace over a data directory, as a mount would have it; `stores`: the
    backends of sources by name, in place of those their URLs name."""

    def __init__(self, data_dir: Path, stores: dict[str, Backend] | None = None,
                 **config: float) -> None:
        self.tree = Tree.open(DataDir(data_dir))
        settings = MountConfig(watch_local=False, **{"io_timeout": 10.0, **config})  # type: ignore[arg-type]
        given = stores or {}

        def open_backend(row: SourceRow, timeout: float) -> Backend:
            return given[row.name] if row.name in given else backend_for(row, timeout)
        sources = SourceSet(self.tree, settings.io_timeout, open_backend)
        self.ns = Namespace(self.tree, sources, settings,
                            MountInfo("(in process)", "/", time.time()), DataDir(data_dir))

    def close(self) -> None:
        self.ns.close()
        self.tree.close()

    def run(self, test: Callable[[Namespace], Awaitable[T]]) -> T:
        """Run one async test body with the namespace's background tasks alive (the
        daemon's own: `Namespace.run`)."""
        async def main() -> T:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.ns.run)
                try:
                    return await test(self.ns)
                finally:
                    nursery.cancel_scope.cancel()
        return trio.run(main)


async def resolve(ns: Namespace, path: str) -> Node:
    """The node at a mount path, looked up name by name as the kernel would."""
    node = ns.node(1)
    for part in (p for p in path.split("/") if p):
        node = await ns.lookup(node.id, part.encode())
    return node


async def names(ns: Namespace, path: str) -> list[bytes]:
    directory = await resolve(ns, path)
    return [name for _cookie, name, _node in await ns.readdir(directory.id, 0, 10_000)]


async def read_all(ns: Namespace, node: Node) -> bytes:
    fh, _direct = await ns.open(node.id, os.O_RDONLY)
    try:
        return await ns.read(fh, 0, node.size + 1)
    finally:
        await ns.release(fh)


async def write_new(ns: Namespace, folder: str, name: str, data: bytes) -> Node:
    parent = await resolve(ns, folder)
    fh, node = await ns.create(parent.id, name.encode(), 0o644, os.O_WRONLY | os.O_CREAT, ROOT)
    await ns.write(fh, 0, data)
    await ns.release(fh)
    return ns.node(node.id)


async def errno_of(call: Awaitable[object]) -> int:
    """The errno a call fails with (0 if it succeeds)."""
    try:
        await call
    except FsError as exc:
        return exc.code
    return 0


def local_source_tree(data_dir: Path, tmp_path: Path) -> Iterator[Tree]:
    """A fixture's body: the tree of a data directory with a local source `loc` (a folder
    of the test's own), opened in the test's process, closed after."""
    (tmp_path / "files").mkdir()
    add_source_now(data_dir, "loc", f"file://{tmp_path / 'files'}")
    opened = Tree.open(DataDir(data_dir))
    yield opened
    opened.close()


def answered_while_held(hold: Callable[[threading.Event, threading.Event], object],
                        step: Callable[[], object], within: float = 10.0) -> bool:
    """Whether `step` (in a thread) ends within `within` seconds while another thread
    holds something: `hold(inside, release)` sets `inside` once it holds, then waits for
    `release` (set once `step` ended or the time is up)."""
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold, args=(inside, release))
    holder.start()
    inside.wait(30)
    stepping = threading.Thread(target=step)
    stepping.start()
    stepping.join(within)
    answered = not stepping.is_alive()
    release.set()
    holder.join(30)
    stepping.join(30)
    return answered


def second_host(data_dir: Path, tmp_path: Path) -> Tree:
    """Another host's data directory on the catalog of `data_dir` (PostgreSQL), opened."""
    other = tmp_path / "host-b"
    other.mkdir(mode=0o700)
    (other / "catalog.url").write_text((data_dir / "catalog.url").read_text())
    return Tree.open(DataDir(other), create=True)


def folder(tree: Tree, name: bytes) -> int:
    """A new folder at the root (a transaction holding the whole catalog)."""
    return make(tree, ROOT_ID, name, folders=())


def make(tree: Tree, parent: int, name: bytes, folders: tuple[int, ...] | None = None) -> int:
    """A new folder in `parent`, and the parent's times, holding `parent` only (or
    `folders`: () the whole catalog)."""
    now = time.time_ns()
    with tree.transaction((parent,) if folders is None else folders) as txn:
        made = nodes.insert_node(txn, parent, name, nodes.NewNode(
            Kind.LAYOUT, stat.S_IFDIR | 0o755, 0, 0, 0, now, now, nlink=2),
            generation=tree.generation)
        nodes.update_node(txn, parent, mtime_ns=now, ctime_ns=now)
    return made


__all__ = ["ROOT", "InProcess", "add_memory_source", "answered_while_held", "errno",
           "errno_of", "folder", "local_source_tree", "make", "names", "read_all",
           "resolve", "second_host", "write_new"]
