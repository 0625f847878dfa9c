"""Each provider of local data, driven in process (no kernel): layout folders, control
files, local files read and written in place (S3, SFTP and table files:
tests/processes/test_providers_remote.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from harness import ROOT, InProcess, errno, errno_of, names, read_all, resolve, write_new

from markfs.namespace.ops import Namespace

# the core of the suite runs on both catalog engines (tests/conftest.py)
pytestmark = pytest.mark.both_engines

# -- layout folders and control files ---------------------------------------------------

def test_the_root_lists_the_fixed_folders(local: InProcess) -> None:
    async def body(ns: Namespace) -> list[bytes]:
        return await names(ns, "/")
    assert local.run(body) == [b"sources", b"tables", b"views", b"tags", b"categories",
                               b".markfs"]


def test_layout_folders_refuse_every_change(local: InProcess) -> None:
    async def body(ns: Namespace) -> list[int]:
        sources = await resolve(ns, "/sources")
        return [await errno_of(ns.mkdir(sources.id, b"x", 0o755, ROOT)),
                await errno_of(ns.create(1, b"f", 0o644, os.O_WRONLY, ROOT)),
                await errno_of(ns.rmdir(1, b"tables")),
                await errno_of(ns.rename(1, b"tags", 1, b"labels", 0)),
                await errno_of(ns.symlink(1, b"l", b"sources", ROOT))]
    assert local.run(body) == [errno.EROFS] * 5


def test_dot_and_dotdot_resolve_in_every_folder(local: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[int, int, int]:
        loc = await resolve(ns, "/sources/loc")
        return ((await ns.lookup(loc.id, b".")).id, (await ns.lookup(loc.id, b"..")).id,
                (await resolve(ns, "/sources")).id)
    here, up, sources = local.run(body)
    assert up == sources and here != up


def test_status_file_size_is_its_last_rendering_and_it_is_read_only(local: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[int, bytes, int, int]:
        status = await resolve(ns, "/.markfs/status.json")
        data = await read_all(ns, status)
        return (status.size, data, ns.node(status.id).size,
                await errno_of(ns.open(status.id, os.O_RDWR)))
    before, data, after, write_errno = local.run(body)
    assert b'"sources"' in data and write_errno == errno.EROFS
    assert after == len(data) and abs(before - after) < 16  # (rendered at start; uptime)


# -- local files, in place -------------------------------------------------------------

def test_a_watched_local_folder_is_not_listed_again_until_the_watcher_loses_events(
        data_dir: Path, backing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from markfs.backends.local import LocalBackend
    listings: list[bytes] = []
    real = LocalBackend.list_pages
    monkeypatch.setattr(LocalBackend, "list_pages",
                        lambda self, path: (listings.append(path), real(self, path))[1])
    (backing / "a").write_bytes(b"a")
    inprocess = InProcess(data_dir, dir_ttl=0.0)  # unwatched: listed at every look

    async def body(ns: Namespace) -> list[int]:
        counts = []
        await names(ns, "/sources/loc")
        ns.source_files.listings.watched([(await resolve(ns, "/sources/loc")).source_id or 0])
        for _ in range(3):  # the first look after the watch began lists once more
            await names(ns, "/sources/loc")
            counts.append(len(listings))
        ns.source_files.listings.watch_lost()
        await names(ns, "/sources/loc")
        return [*counts, len(listings)]
    try:
        assert inprocess.run(body) == [2, 2, 2, 3]
    finally:
        inprocess.close()


def test_a_folders_attributes_after_a_change_in_it_outlive_a_refresh_read_before(
        data_dir: Path, backing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher's refresh of folder d holds the lock of d's parent, a rmdir in d holds
    d's: the refresh's stat of d, read before the rmdir, must not land after it."""
    import threading

    from markfs.backends.local import LocalBackend
    os.makedirs(backing / "d" / "sub")
    read_early, rmdir_done = threading.Event(), threading.Event()
    real = LocalBackend.stat

    def stat_held_back(self: LocalBackend, path: bytes) -> object:
        entry = real(self, path)
        # (the refresh's stat, the first in a worker thread: the rmdir's own stat of d
        # may run in one too, where the catalog's work runs off the loop)
        if (path == b"d" and threading.current_thread() is not threading.main_thread()
                and not read_early.is_set()):
            read_early.set()
            rmdir_done.wait(10)
        return entry
    monkeypatch.setattr(LocalBackend, "stat", stat_held_back)
    inprocess = InProcess(data_dir)

    async def body(ns: Namespace) -> int:
        folder = await resolve(ns, "/sources/loc/d")
        await names(ns, "/sources/loc/d")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ns.source_files.listings.refresh_path, folder.source_id or 0, b"d")
            while not read_early.is_set():
                await trio.sleep(0.01)
            await ns.rmdir(folder.id, b"sub")
            rmdir_done.set()
        return ns.node(folder.id).nlink
    try:
        assert inprocess.run(body) == os.stat(backing / "d").st_nlink == 2
    finally:
        inprocess.close()


class ForgetRecord:
    """A kernel notifier that only records what it was told to forget."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []

    def forget_entry(self, parent_id: int, name: bytes) -> None:
        self.entries.append(name)

    def forget_inode(self, node_id: int) -> None:
        """(inodes are not what this records)"""


def test_a_first_listing_tells_the_kernel_to_forget_nothing_later_ones_the_new_names(
        data_dir: Path, backing: Path) -> None:
    """The kernel builds entries from the first listing's READDIRPLUS answer: forgetting
    them then would turn every later `stat` into a LOOKUP (it did: `ls -lR` 2x slower)."""
    for number in range(5):
        (backing / f"f{number}").write_bytes(b"x")
    inprocess, record = InProcess(data_dir, dir_ttl=0.0), ForgetRecord()

    async def body(ns: Namespace) -> tuple[list[bytes], list[bytes]]:
        ns.notifier = record
        await names(ns, "/sources/loc")
        first = list(record.entries)
        (backing / "new").write_bytes(b"y")
        await names(ns, "/sources/loc")  # dir_ttl 0: listed again
        return first, record.entries[len(first):]
    try:
        assert inprocess.run(body) == ([], [b"new"])
    finally:
        inprocess.close()


def test_a_local_file_written_through_the_namespace_lands_in_the_folder(
        local: InProcess, backing: Path) -> None:
    async def body(ns: Namespace) -> bytes:
        node = await write_new(ns, "/sources/loc", "new.txt", b"hello")
        return await read_all(ns, node)
    assert local.run(body) == b"hello" == (backing / "new.txt").read_bytes()


def test_a_local_rename_moves_the_file_and_keeps_its_inode(
        local: InProcess, backing: Path) -> None:
    async def body(ns: Namespace) -> tuple[int, int]:
        loc = await resolve(ns, "/sources/loc")
        before = (await resolve(ns, "/sources/loc/a.txt")).id
        await ns.rename(loc.id, b"a.txt", loc.id, b"b.txt", 0)
        return before, (await resolve(ns, "/sources/loc/b.txt")).id
    before, after = local.run(body)
    assert before == after and (backing / "b.txt").read_bytes() == b"alpha"
    assert not (backing / "a.txt").exists()


def test_truncate_through_setattr_shortens_the_local_file(
        local: InProcess, backing: Path) -> None:
    async def body(ns: Namespace) -> int:
        node = await resolve(ns, "/sources/loc/a.txt")
        return (await ns.setattr(node.id, size=2)).size
    assert local.run(body) == 2 and (backing / "a.txt").read_bytes() == b"al"


def test_a_read_only_source_refuses_writes_and_xattrs(local: InProcess) -> None:
    async def body(ns: Namespace) -> list[int]:
        ro = await resolve(ns, "/sources/ro")
        return [await errno_of(ns.create(ro.id, b"f", 0o644, os.O_WRONLY, ROOT)),
                await errno_of(ns.mkdir(ro.id, b"d", 0o755, ROOT)),
                await errno_of(ns.setattr(ro.id, mode=0o700))]
    assert local.run(body) == [errno.EROFS] * 3


def test_user_xattrs_are_kept_and_other_namespaces_refused(local: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[bytes, list[bytes], int]:
        node = await resolve(ns, "/sources/loc/a.txt")
        await ns.setxattr(node.id, b"user.note", b"checked")
        refused = 0
        try:
            await ns.setxattr(node.id, b"trusted.x", b"1")
        except Exception as exc:  # FsError
            refused = getattr(exc, "code", 0)
        return await ns.getxattr(node.id, b"user.note"), await ns.listxattr(node.id), refused
    value, listed, refused = local.run(body)
    assert value == b"checked" and b"user.note" in listed and refused == errno.ENOTSUP


def test_unlink_of_a_folder_is_eisdir_and_rmdir_of_a_file_enotdir(local: InProcess) -> None:
    async def body(ns: Namespace) -> list[int]:
        loc = await resolve(ns, "/sources/loc")
        return [await errno_of(ns.unlink(loc.id, b"sub")),
                await errno_of(ns.rmdir(loc.id, b"a.txt")),
                await errno_of(ns.unlink(loc.id, b"missing"))]
    assert local.run(body) == [errno.EISDIR, errno.ENOTDIR, errno.ENOENT]


# -- S3 files, cached and staged -------------------------------------------------------


# -- managed table files -----------------------------------------------------------------


