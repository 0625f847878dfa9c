"""Staged copies: the local files that hold what was written to remote files, from the
first write until their upload has landed. `StagedFiles` is their one owner while the
mount runs — it makes them, writes and reads them, and drops one once nothing needs it
(no writer, no journal row naming it), in one place (`drop_if_idle`).

A copy written from its start may stream: `stream_to` names where, and the uploader
gives it a `PieceSender` (`start_stream`) that sends whole pieces while it is written.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from markfs.cache.content import ContentCache
from markfs.cache.staging import StagingArea
from markfs.catalog import nodes
from markfs.errors import FsError
from markfs.namespace.remote.pieces import PieceSender
from markfs.namespace.tree import Tree
from markfs.namespace.workers import IoRunner

log = logging.getLogger(__name__)
ROOM_FOR_WRITES = 64 * 1024 * 1024  # freed from the content cache when staging is full


@dataclass
class Staged:
    """The local copy of one file with content not yet (or just) sent to its source."""

    path: Path
    writers: int = 0
    size: int = 0
    journaled: set[int] = field(default_factory=set)  # journal rows naming this file
    fd: int = -1  # open while writers have it, so writes do not reopen the file
    # (source id, path) while the copy was written from its start: it may stream
    stream_to: tuple[int, bytes] | None = None
    sender: PieceSender | None = None  # its upload in pieces while being written
    # (atime, mtime) set on the file since its last write: given to the storage after
    # the upload, which itself leaves the upload's own time
    times: tuple[int | None, int | None] | None = None
    attr_changes: int = 0  # chmod/utime calls so far: an upload settles until none came
    # False for a file made through the mount until its first upload starts: the server
    # has nothing of it, so a rename or delete of it needs no call to the server
    on_server: bool = True

    def descriptor(self) -> int:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class StagedFiles:
    """Node id -> its staged copy, for every file with content only staged here."""

    def __init__(self, tree: Tree, cache: ContentCache, staging: StagingArea, io: IoRunner,
                 owner: str) -> None:
        self.tree, self.cache, self.staging, self.owner = tree, cache, staging, owner
        self._io = io  # Namespace._io: worker thread with deadline, OSError -> FsError
        self._copies: dict[int, Staged] = {}  # an entry leaves in drop_if_idle or discard
        # gives a copy being written from its start its stream (set by the uploader)
        self.start_stream: Callable[[Staged], None] = lambda staged: None
        # told when a name was taken away (the kernel must forget it)
        self.on_dropped: Callable[[int, bytes], None] = lambda parent, name: None

    def get(self, node_id: int) -> Staged | None:
        return self._copies.get(node_id)

    def has(self, node_id: int) -> bool:
        return node_id in self._copies

    def items(self) -> list[tuple[int, Staged]]:
        return list(self._copies.items())

    def open(self, node_id: int) -> tuple[Staged, bool]:
        """The node's copy with one more writer, and whether it was made just now (empty,
        to be filled). The writer counts before any wait: an upload finishing meanwhile
        must not take the copy away (it did: ENOENT on an O_TRUNC open)."""
        staged = self._copies.get(node_id)
        fresh = staged is None
        if staged is None:
            staged = self._copies[node_id] = Staged(self.staging.new_session(node_id))
        staged.writers += 1
        return staged, fresh

    def adopt(self, node_id: int, path: str, size: int, upload_id: int) -> None:
        """A journal row of a daemon that is gone names this copy (a file written here
        since keeps its own copy)."""
        staged = self._copies.get(node_id)
        if staged is None:
            staged = self._copies[node_id] = Staged(Path(path), size=size)
        staged.journaled.add(upload_id)

    # -- reading and writing ---------------------------------------------------------

    async def read(self, staged: Staged, offset: int, size: int) -> bytes:
        """The read holds a descriptor of its own, taken on the loop in the same step that
        chose the staged copy: an upload finishing meanwhile (which removes the copy) or
        the last writer closing its descriptor cannot pull the file from under it."""
        fd = (os.dup(staged.fd) if staged.fd >= 0
              else os.open(staged.path, os.O_RDONLY | os.O_CLOEXEC))
        # the descriptor's one owner: the worker closes it, or (a worker never started,
        # or abandoned past its deadline) whoever drops the last reference
        file = os.fdopen(fd, "rb", buffering=0)

        def pread() -> bytes:
            with file:
                return os.pread(file.fileno(), size, offset)
        return await self._io(pread)

    async def write(self, staged: Staged, offset: int, data: bytes) -> int:
        staged.times = None  # a write makes the file's mtime its own again
        try:
            written = await self._write(staged, offset, data)
        except FsError as exc:
            if exc.code != errno.ENOSPC:
                raise
            # the disk is full: cached copies of what is on the sources give way first
            freed = await self._io(self.cache.make_room, ROOM_FOR_WRITES)
            if not freed:
                raise
            log.warning("the data directory's disk is full: %d bytes of cached files "
                        "dropped for a file being written", freed)
            written = await self._io(os.pwrite, staged.descriptor(), data, offset)
        staged.size = max(staged.size, offset + written)
        if staged.sender is None and staged.stream_to is not None:
            self.start_stream(staged)
        if staged.sender is not None:
            staged.sender.offer(offset, offset + written)
        return written

    async def _write(self, staged: Staged, offset: int, data: bytes) -> int:
        if len(data) <= self.staging.small_write:  # (no thread hop: see StagingArea)
            try:
                return os.pwrite(staged.descriptor(), data, offset)
            except OSError as exc:
                raise FsError.from_os(exc) from None
        return await self._io(os.pwrite, staged.descriptor(), data, offset)

    async def truncate(self, staged: Staged, size: int) -> None:
        await self._io(os.truncate, staged.path, size)
        staged.size = size
        if staged.sender is not None:
            staged.sender.truncated(size)

    # -- streams -----------------------------------------------------------------------

    def stop_stream(self, staged: Staged, why: str) -> PieceSender | None:
        """No more streaming into this copy: it goes whole at its next upload."""
        sender, staged.sender, staged.stream_to = staged.sender, None, None
        if sender is not None:
            sender.abandon(why)
        return sender

    # -- what the mount asks of them -----------------------------------------------------

    def never_sent(self, node_id: int) -> bool:
        """A file made through the mount whose upload has not begun (not even streaming):
        the server has nothing at its path. Only while its uploads are paused does
        this stay true until the caller is done."""
        staged = self._copies.get(node_id)
        return staged is not None and not staged.on_server and (
            staged.sender is None or not staged.sender.started)

    def made_here(self, staged: Staged) -> None:
        """`staged` is the first content of a new file: nothing of it is on the server."""
        staged.on_server = False

    def below(self, dir_id: int) -> bool:
        """Does a folder hold a file whose content is only staged here so far?"""
        return any(node.parent == dir_id for node_id in self._copies
                   for node in self.tree.lineage(node_id))

    # -- letting go --------------------------------------------------------------------

    def release_writer(self, node_id: int, staged: Staged) -> None:
        staged.writers -= 1
        if staged.writers <= 0:
            staged.close()
        if self._copies.get(node_id) is staged and self.drop_if_idle(
                node_id, "the file is closed"):  # (not if the file was deleted meanwhile)
            self._drop_if_never_stored(node_id)

    def drop_if_idle(self, node_id: int, why: str, keep_file: bool = False) -> bool:
        """Forget the node's copy once no writer has it and no journal row names it (the
        one place a copy leaves while its file lives); its file goes too, unless a parked
        row still names it (`keep_file`: `markfs fsck --repair` drops it with the row)."""
        staged = self._copies.get(node_id)
        if staged is None or staged.writers > 0 or staged.journaled:
            return False
        del self._copies[node_id]
        self.stop_stream(staged, why)
        staged.close()
        if not keep_file:
            self.staging.remove(staged.path)
        return True

    def row_done(self, node_id: int, upload_id: int, row_staging: str, why: str,
                 keep_file: bool = False) -> None:
        """A journal row of the node is done (uploaded, superseded or parked): the copy it
        named goes unless another row or a writer still needs it."""
        staged = self._copies.get(node_id)
        if staged is None:
            if not keep_file:
                self.staging.remove(row_staging)
            return
        staged.journaled.discard(upload_id)
        if not self.drop_if_idle(node_id, why, keep_file) and not keep_file and (
                row_staging != str(staged.path)):
            self.staging.remove(row_staging)  # (an older copy of the file's)

    def discard(self, node_id: int, row_files: list[str]) -> None:
        """The file was deleted: its copy goes, and the files its dropped rows named
        (the open copy stays for its writers, whose handles still write to it)."""
        staged = self._copies.pop(node_id, None)
        if staged is not None:
            self.stop_stream(staged, "the file was deleted")
            if staged.writers <= 0:
                staged.close()
        in_use = str(staged.path) if staged is not None and staged.writers > 0 else None
        for path in {*row_files, *([str(staged.path)] if staged else [])}:
            if path != in_use:
                self.staging.remove(path)

    def _drop_if_never_stored(self, node_id: int) -> None:
        """A file made through the mount whose content never became an upload (its flush
        failed: a full disk) is on no storage and never will be: not shown either."""
        node = self.tree.node(node_id)
        if node is None or node.etag is not None or node.is_dir:
            return
        if self.tree.catalog.uploads.for_node(node_id, self.owner):
            return
        try:
            with self.tree.transaction() as txn:
                nodes.remove_name(txn, node.parent, node.name)
        except OSError as exc:  # (the disk still full: the next listing drops it)
            log.warning("could not drop %r, never stored: %s", node.remote_path, exc)
            return
        log.warning("%r was never stored (its content could not be kept): removed",
                    node.remote_path)
        self.on_dropped(node.parent, node.name)
