"""Noticing changes made to local sources behind the mount's back (inotify, read on the
trio loop).

Every folder of every local source has an inotify watch; the kernel's events are read
on the loop when the descriptor is readable, a whole buffer at a time, and parsed with
`struct` — a few microseconds an event, in no thread of its own (watchdog, used before,
spent ~70 µs of Python per event in two threads holding the GIL away from the FUSE
loop: 40 % of a tar's time on a local source). Changed paths are gathered for a short
moment (editors and `cp` fire bursts) and each is re-checked once through
`SourceListings.refresh_path`, which updates the catalog and tells the kernel to drop what it
cached. A queue overflow (events lost) or a watch that cannot be added makes every
listing expire by `dir_ttl` again (`SourceListings.watch_lost`).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import trio

from markfs.namespace.files.listings import SourceListings

log = logging.getLogger(__name__)
DEBOUNCE_S = 0.05
READ_SIZE = 64 * 1024

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_EXCL_UNLINK = 0x01000000, 0x02000000, 0x04000000
# changes only: no opens, reads or closes without a write (every read through the mount
# would make two events); a folder only, its last component never followed
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
           | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
           | IN_EXCL_UNLINK)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows
_libc = ctypes.CDLL(None, use_errno=True)


class Inotify:
    """One inotify descriptor (non-blocking, closed on exec)."""

    def __init__(self) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise _os_error("inotify_init1")

    def add(self, path: bytes) -> int:
        """The watch descriptor of the folder at `path` (the same for a folder watched
        already, under whatever name)."""
        wd = int(_libc.inotify_add_watch(self.fd, path, WATCHED))
        if wd < 0:
            raise _os_error(f"watch {path!r}")
        return wd

    def remove(self, wd: int) -> None:
        _libc.inotify_rm_watch(self.fd, wd)  # (gone already: nothing to do)

    def events(self) -> Iterator[tuple[int, int, bytes]]:
        """(wd, mask, name) of every event queued now."""
        while True:
            try:
                buffer = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(buffer):
                wd, mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
                offset += _HEADER.size
                name = buffer[offset:offset + length].rstrip(b"\0")
                offset += length
                yield wd, mask, name

    def close(self) -> None:
        os.close(self.fd)


def _os_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def _folders(root: bytes, top: bytes) -> Iterator[bytes]:
    """`top` (relative to `root`) and every folder below it, symlinks not followed."""
    stack = [top]
    while stack:
        folder = stack.pop()
        yield folder
        try:
            with os.scandir(root + b"/" + folder if folder else root) as entries:
                stack.extend(_join(folder, entry.name) for entry in entries
                             if entry.is_dir(follow_symlinks=False))
        except OSError:
            continue  # gone or replaced meanwhile: its own events say so


def _join(folder: bytes, name: bytes) -> bytes:
    return folder + b"/" + name if folder else name


class LocalWatcher:
    """Watches every local source's folders for the life of a mount."""

    def __init__(self, listings: SourceListings, roots: dict[int, Path]) -> None:
        self.listings = listings
        self.roots = {source_id: os.fsencode(root) for source_id, root in roots.items()}
        self._inotify: Inotify | None = None
        # watch descriptor -> (source id, folder relative to its root): one entry per
        # watched folder, gone with the watch (IN_IGNORED) or the folder's move
        self._folders: dict[int, tuple[int, bytes]] = {}
        self._pending: set[tuple[int, bytes]] = set()
        self._wakeup = trio.Event()

    def _watch(self, inotify: Inotify, source_id: int, top: bytes) -> list[tuple[int, int, bytes]]:
        """Watches on `top` and every folder below it: (wd, source id, folder) each. In a
        worker thread: a large tree takes a while to walk."""
        root = self.roots[source_id]
        return [(inotify.add(root + b"/" + folder if folder else root), source_id, folder)
                for folder in _folders(root, top)]

    async def _watch_in_thread(self, source_id: int, top: bytes) -> None:
        assert self._inotify is not None
        inotify = self._inotify
        try:
            added = await trio.to_thread.run_sync(self._watch, inotify, source_id, top)
        except OSError as exc:  # the watch limit, or the folder went away
            if exc.errno != errno.ENOENT:
                log.warning("not watching %r of source %d: %s", top, source_id, exc)
                self.listings.watch_lost()
            return
        for wd, source, folder in added:
            self._folders[wd] = (source, folder)

    async def run(self) -> None:
        try:
            self._inotify = Inotify()
            for source_id in self.roots:
                added = await trio.to_thread.run_sync(self._watch, self._inotify, source_id,
                                                      b"")
                self._folders.update((wd, (source, folder)) for wd, source, folder in added)
        except OSError as exc:  # e.g. the inotify watch limit: listings still expire by TTL
            log.warning("not watching local sources for outside changes: %s", exc)
            if self._inotify is not None:
                self._inotify.close()
            return
        self.listings.watched(list(self.roots))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, nursery)
                await self._refresh_changed()
        finally:
            self.listings.watch_lost()
            self._inotify.close()

    async def _read(self, nursery: trio.Nursery) -> None:
        assert self._inotify is not None
        while True:
            await trio.lowlevel.wait_readable(self._inotify.fd)
            for wd, mask, name in self._inotify.events():
                self._event(wd, mask, name, nursery)

    def _event(self, wd: int, mask: int, name: bytes, nursery: trio.Nursery) -> None:
        if mask & IN_Q_OVERFLOW:
            log.warning("inotify dropped events: listings expire by dir_ttl again")
            self.listings.watch_lost()
            return
        if mask & IN_IGNORED:
            self._folders.pop(wd, None)
            return
        where = self._folders.get(wd)
        if where is None:
            return
        source_id, folder = where
        path = _join(folder, name) if name else folder
        if path:  # (the root itself: its listing's changes come as its entries' events)
            self._pending.add((source_id, path))
            self._wakeup.set()
        if mask & IN_ISDIR and mask & IN_MOVED_FROM:
            self._forget_below(source_id, path)  # (moved within: IN_MOVED_TO watches again)
        if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
            nursery.start_soon(self._watch_in_thread, source_id, path)

    def _forget_below(self, source_id: int, moved: bytes) -> None:
        """A folder moved away: its watches (and those below it) name a path no more."""
        assert self._inotify is not None
        for wd, (source, folder) in list(self._folders.items()):
            if source == source_id and (folder == moved or folder.startswith(moved + b"/")):
                del self._folders[wd]
                self._inotify.remove(wd)

    async def _refresh_changed(self) -> None:
        while True:
            await self._wakeup.wait()
            await trio.sleep(DEBOUNCE_S)
            self._wakeup = trio.Event()
            batch, self._pending = self._pending, set()
            for source_id, rel in sorted(batch, key=lambda item: item[1].count(b"/")):
                await self._refresh(source_id, rel)

    async def _refresh(self, source_id: int, rel: bytes) -> None:
        try:
            await self.listings.refresh_path(source_id, rel)
        except Exception as exc:  # one bad path must not stop the watcher
            log.warning("could not re-check %r in source %d: %s", rel, source_id, exc)
