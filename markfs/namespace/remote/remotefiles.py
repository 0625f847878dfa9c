"""Files of remote sources (S3, SFTP): staged writes and the upload journal with its
background uploader; reads of what is not staged go to `chunks.ChunkReader`.

Writes go to a staged local copy. At every flush (each close) the copy is
journaled in the catalog (`uploads`), and the uploader sends it to the source
with retries; a newer journal row of the same file supersedes older ones. Rows
left by a crash are uploaded at the next start. While a file has staged
content, reads come from it and listings do not overwrite its attributes.

A file written from its start (new, or opened with O_TRUNC) on a source that takes
pieces streams: whole pieces go out while it is being written (`pieces.PieceSender`),
and the journal row of its close finishes that upload instead of starting one. The
journal alone still says what must reach the source: a stream that broke, or a crash
at any point, ends in a whole upload of the staged copy.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import trio

from markfs.backends.base import (
    KEPT_GID,
    KEPT_MODE,
    KEPT_UID,
    Backend,
    Entry,
    FileAttrs,
    PieceStore,
    UploadControl,
    keeps_metadata,
    stores_pieces,
)
from markfs.cache.content import CHUNK_SIZE, ContentCache
from markfs.cache.staging import StagingArea
from markfs.catalog import hashes, nodes
from markfs.catalog import uploads as upload_rows
from markfs.catalog.db import Txn
from markfs.catalog.uploads import Upload
from markfs.errors import FsError
from markfs.metrics import METRICS
from markfs.model import Node
from markfs.namespace.listing import update_attrs
from markfs.namespace.remote.chunks import ChunkReader
from markfs.namespace.remote.digests import file_digest
from markfs.namespace.remote.pieces import PieceLedger, PieceSender
from markfs.namespace.tree import Tree
from markfs.namespace.workers import IoRunner, WorkerPool
from markfs.runtime import owner_alive, owner_token

log = logging.getLogger(__name__)
UPLOAD_WORKERS = 8  # files uploading at once
UPLOAD_THREADS = 16  # threads of uploads (pieces of several files), apart from the kernel's
UPLOAD_TIMEOUT_S = 3600.0  # a whole upload; a stall is caught by socket timeouts
RETRY_MAX_S = 60.0
AFTER_PAUSE_S = 0.02  # renames and deletes within this share the uploader's next look
ADOPT_EVERY_S = 5.0  # how often a daemon looks for rows of daemons that are gone
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


@dataclass
class StagedDigest:
    """The digest of a staged copy being taken in a worker thread."""

    digest: str | None = None
    done: trio.Event = field(default_factory=trio.Event)

    async def result(self) -> str | None:
        await self.done.wait()
        return self.digest


class RemoteFiles:
    def __init__(self, tree: Tree, cache: ContentCache, staging: StagingArea,
                 io: IoRunner, backend_of: Callable[[int], Backend], io_timeout: float,
                 upload_delay: float = 0.0) -> None:
        self.io_timeout = io_timeout
        self.upload_delay_ns = int(upload_delay * 1e9)
        self.tree = tree
        self.cache = cache
        self.staging = staging
        self._io = io  # Namespace._io: worker thread with deadline, OSError -> FsError
        self._upload_io = WorkerPool(UPLOAD_THREADS, UPLOAD_TIMEOUT_S).run
        self._backend_of = backend_of
        self.staged: dict[int, Staged] = {}  # node id -> staged copy
        self.reader = ChunkReader(cache, io, backend_of, io_timeout)
        self._wakeup = trio.Event()
        self._uploaded = trio.Condition()
        self._busy: set[int] = set()  # node ids with an upload in flight
        # busy nodes journaled or cancelled meanwhile: their worker reads their rows again
        # before it ends (else it ends after one upload, without a journal read)
        self._look_again: set[int] = set()
        self._workers = trio.Semaphore(UPLOAD_WORKERS)
        self.owner = owner_token()  # this daemon's journal rows carry it
        self.pieces = PieceLedger(tree, self.owner, self._upload_io, backend_of)
        self._nursery: trio.Nursery | None = None  # the uploader's: streams run in it
        self._controls: dict[int, UploadControl] = {}  # node id -> its upload in flight
        # folder id -> times to set again once the uploads below it have landed (an
        # entry leaves when they are set)
        self._folder_times: dict[int, tuple[int | None, int | None]] = {}
        self._setting_times: set[int] = set()  # folders whose times are being set now
        self._paused: dict[int | None, int] = {}  # node id (None: all) -> pausers
        # nodes whose upload may not wait out `upload_delay` (an fsync waits for it); one
        # leaves when its upload ends
        self._urgent: set[int] = set()
        self._hurry = False  # unmounted: nothing waits out the delay any more
        self._next_look = 0.0  # trio time the uploader reads the journal again at the latest
        self._sleeping: trio.CancelScope | None = None  # its wait until then
        self._retry = trio.Event()  # set: back-offs end now
        # told when a read found a node changed on its source (the namespace marks it and
        # drops what the kernel cached of it)
        self.on_changed: Callable[[int], None] = lambda node_id: None
        # told when a name was taken away (the kernel must forget it)
        self.on_dropped: Callable[[int, bytes], None] = lambda parent, name: None
        # told what each upload attempt came to (source id, its error or None): health
        self.on_answer: Callable[[int, BaseException | None], None] = lambda s, e: None

    # -- reading -------------------------------------------------------------------

    async def read(self, node: Node, offset: int, size: int) -> bytes:
        """Bytes of a file: from its staged copy if it has one, else through the content
        cache. An object that changed on the server since it was listed (ESTALE) is
        looked at again and the new version read."""
        staged = self.staged.get(node.id)
        if staged is not None:
            return await self.read_staged(staged, offset, size)
        try:
            try:
                return await self.reader.read(node, offset, size)
            except FsError as exc:
                if exc.code != errno.ESTALE:
                    raise
            return await self.reader.read(await self._restat(node), offset, size)
        except FsError as exc:
            if node.source_id is not None:  # a source that does not answer: its health
                self.on_answer(node.source_id, exc)
            raise

    async def _restat(self, node: Node) -> Node:
        assert node.source_id is not None and node.remote_path is not None
        self.on_changed(node.id)
        entry = await self._io(self._backend_of(node.source_id).stat, node.remote_path)
        current = self.tree.node(node.id)
        if current is None:
            return node
        node = update_attrs(self.tree, current, entry)
        self.on_changed(node.id)
        return node

    async def read_staged(self, staged: Staged, offset: int, size: int) -> bytes:
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

    # -- writing -------------------------------------------------------------------

    async def open_writer(self, node: Node, truncate: bool) -> Staged:
        """A staged copy to write into: the pending one, or a fresh one (filled unless
        the file is truncated)."""
        staged = self.staged.get(node.id)
        fresh = staged is None
        if staged is None:
            staged = Staged(self.staging.new_session(node.id))
            self.staged[node.id] = staged
        staged.writers += 1  # before any wait: an upload finishing meanwhile must not
        try:                 # take the copy away (it did: ENOENT on an O_TRUNC open)
            if fresh and not truncate and node.size > 0:
                node = await self._fill_current(staged, node)
            if fresh:
                staged.size = 0 if truncate else node.size
            elif truncate:
                await self._io(os.truncate, staged.path, 0)
                staged.size = 0
        except BaseException:
            self.release_writer(node.id, staged)
            raise
        if staged.size == 0:
            self._restart_stream(staged, node)
        return staged

    def _restart_stream(self, staged: Staged, node: Node) -> None:
        """The copy is empty: what is written now may stream (any earlier stream stops)."""
        self._stop_stream(staged, "the file was truncated")
        if node.source_id is not None and node.remote_path is not None and stores_pieces(
                self._backend_of(node.source_id)):
            staged.stream_to = (node.source_id, node.remote_path)

    def _stop_stream(self, staged: Staged, why: str) -> PieceSender | None:
        """No more streaming into this copy: it goes whole at its next upload."""
        sender, staged.sender, staged.stream_to = staged.sender, None, None
        if sender is not None:
            sender.abandon(why)
        return sender

    async def _fill_current(self, staged: Staged, node: Node) -> Node:
        """Fill the staged copy with the file as it is on the server now (looked at again
        if it changed since it was listed); the node as filled."""
        try:
            await self._fill(staged, node)
            return node
        except FsError as exc:
            if exc.code != errno.ESTALE:
                raise
        node = await self._restat(node)
        await self._fill(staged, node)
        return node

    async def _fill(self, staged: Staged, node: Node) -> None:
        """Copy the file's current content into its staged copy, chunk by chunk."""
        with open(staged.path, "r+b") as f:
            for index in range((node.size + CHUNK_SIZE - 1) // CHUNK_SIZE):
                offset = index * CHUNK_SIZE
                data = await self.reader.chunk_slice(node, index, offset,
                                               min(CHUNK_SIZE, node.size - offset))
                await self._io(os.pwrite, f.fileno(), data, offset)

    async def write(self, staged: Staged, offset: int, data: bytes) -> int:
        staged.times = None  # a write makes the file's mtime its own again
        try:
            written = await self._write_staged(staged, offset, data)
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
        if staged.sender is None and staged.stream_to is not None and self._nursery:
            backend = self._backend_of(staged.stream_to[0])
            assert stores_pieces(backend)
            staged.sender = PieceSender(backend, *staged.stream_to, staged.path,
                                        self._upload_io, self.pieces, self._nursery)
        if staged.sender is not None:
            staged.sender.offer(offset, offset + written)
        return written

    async def _write_staged(self, staged: Staged, offset: int, data: bytes) -> int:
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

    def journal(self, node: Node, staged: Staged) -> int:
        """Record that the staged copy is the file's content now: it will be uploaded."""
        assert node.source_id is not None and node.remote_path is not None
        with self.tree.transaction() as txn:
            upload_id = upload_rows.enqueue(txn, node.id, node.source_id, node.remote_path,
                                   str(staged.path), staged.size, self.owner)
        staged.journaled.add(upload_id)
        if node.id in self._busy:
            self._look_again.add(node.id)
        control = self._controls.get(node.id)
        if control is not None:  # an upload of older content: it starts over with this one
            control.cancel.set()
        if self.upload_delay_ns and not self._hurry:
            self._look_within(self.upload_delay_ns / 1e9)
        else:
            self._wakeup.set()
        return upload_id

    def release_writer(self, node_id: int, staged: Staged) -> None:
        staged.writers -= 1
        if staged.writers <= 0:
            staged.close()
        if self.staged.get(node_id) is staged:  # (not if the file was deleted meanwhile)
            self._forget_if_idle(node_id)

    def _forget_if_idle(self, node_id: int) -> None:
        staged = self.staged.get(node_id)
        if staged is not None and staged.writers <= 0 and not staged.journaled:
            self._stop_stream(self.staged.pop(node_id), "the file is closed")
            self.staging.remove(staged.path)
            self._drop_if_never_stored(node_id)

    def _drop_if_never_stored(self, node_id: int) -> None:
        """A file made through the mount whose content never became an upload (its flush
        failed: a full disk) is on no storage and never will be: not shown either."""
        node = self.tree.node(node_id)
        if node is None or node.etag is not None or node.is_dir:
            return
        if upload_rows.for_node(self.tree.catalog.conn, node_id, self.owner):
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

    def has_staged(self, node_id: int) -> bool:
        return node_id in self.staged

    def never_sent(self, node_id: int) -> bool:
        """A file made through the mount whose upload has not begun (not even streaming):
        the server has nothing at its path. Only while its uploads are paused does
        this stay true until the caller is done."""
        staged = self.staged.get(node_id)
        return staged is not None and not staged.on_server and (
            staged.sender is None or not staged.sender.started)

    def made_here(self, staged: Staged) -> None:
        """`staged` is the first content of a new file: nothing of it is on the server."""
        staged.on_server = False

    def hurry(self) -> None:
        """Every waiting upload goes now, and later ones at once (unmount)."""
        self._hurry = True
        self._wakeup.set()

    def staged_below(self, dir_id: int) -> bool:
        """Does a folder hold a file whose content is only staged here so far?"""
        for node_id in self.staged:
            node = self.tree.node(node_id)
            while node is not None and node.id != node.parent:
                if node.parent == dir_id:
                    return True
                node = self.tree.node(node.parent)
        return False

    @asynccontextmanager
    async def uploads_paused(self, node_id: int | None) -> AsyncIterator[None]:
        """No upload of the node (None: of any node) runs inside this block: one in flight
        is cancelled and waited for, at most `io_timeout` (then EIO: the journal keeps
        it). Renames and deletes use it, so no upload lands at a path they changed."""
        self._paused[node_id] = self._paused.get(node_id, 0) + 1
        try:
            targets = {n for n in self._busy if node_id is None or n == node_id}
            for target in targets:
                control = self._controls.get(target)
                if control is not None:
                    control.cancel.set()
            streams = [sender for n, staged in self.staged.items()
                       if node_id in (None, n)
                       and (sender := self._stop_stream(staged, "the file moved")) is not None]
            self.retry_now()  # back-offs wake, see the pause and end
            with trio.move_on_after(self.io_timeout):
                async with self._uploaded:
                    while targets & self._busy:
                        await self._uploaded.wait()
                for sender in streams:  # (SFTP: its temporary file is gone before a rename)
                    await sender.stopped()
            if targets & self._busy:
                raise FsError(errno.EIO, "an upload in flight did not stop in time")
            yield
        finally:
            self._paused[node_id] -= 1
            if not self._paused[node_id]:
                del self._paused[node_id]
            self._look_within(AFTER_PAUSE_S)

    def _is_paused(self, node_id: int) -> bool:
        return node_id in self._paused or None in self._paused

    def retry_now(self) -> None:
        """Uploads waiting out a back-off try again at once (fsync; a backend is back)."""
        self._retry.set()
        self._retry = trio.Event()

    def retarget(self, txn: Txn, node: Node, old_path: bytes, new_path: bytes) -> None:
        """A rename moved the node: its pending uploads (or those below it) follow."""
        if node.is_dir and node.source_id is not None:
            upload_rows.retarget_tree(txn, node.source_id, old_path, new_path)
        else:
            upload_rows.retarget(txn, node.id, new_path)
            for path in (old_path, new_path):  # neither name may serve the other's chunks
                self.cache.bump_epoch(node.source_id or 0, path)

    def latest_upload(self, node_id: int) -> int | None:
        """The journal row of the file's newest content still to send, if any."""
        rows = upload_rows.for_node(self.tree.catalog.conn, node_id, self.owner)
        return rows[-1].id if rows else None

    async def wait_uploaded(self, upload_id: int, timeout: float) -> None:
        """Until the journal row is gone (uploaded or superseded): fsync's guarantee."""
        waited = upload_rows.get(self.tree.catalog.conn, upload_id)
        if waited is not None:
            self._urgent.add(waited.node_id)  # (not after the upload delay)
            self._wakeup.set()
        self.retry_now()  # fsync tries at once, not after the back-off
        with trio.move_on_after(timeout):
            async with self._uploaded:
                while (row := upload_rows.get(self.tree.catalog.conn, upload_id)) is not None:
                    if row.parked_ns is not None:
                        raise FsError(errno.EIO, f"upload parked: {row.last_error}")
                    await self._uploaded.wait()
                return
        row = upload_rows.get(self.tree.catalog.conn, upload_id)
        detail = f": {row.last_error}" if row and row.last_error else ""
        raise FsError(errno.EIO, f"upload not finished in time{detail}")

    def discard(self, node_id: int) -> None:
        """The file was deleted: its pending uploads and staged copy go too."""
        node = self.tree.node(node_id)
        if node is not None and node.remote_path is not None:
            self.cache.bump_epoch(node.source_id or 0, node.remote_path)
        with self.tree.transaction() as txn:
            files = upload_rows.drop_for_node(txn, node_id)
        staged = self.staged.pop(node_id, None)
        if staged is not None:
            self._stop_stream(staged, "the file was deleted")
        if staged is not None and staged.writers <= 0:
            staged.close()
        for path in {*files, *([str(staged.path)] if staged else [])}:
            if staged is None or staged.writers == 0 or path != str(staged.path):
                self.staging.remove(path)

    # -- the uploader --------------------------------------------------------------

    def resume(self) -> int:
        """At start: adopt the journal rows of daemons that are gone, and drop staged
        files that no row names and no running daemon owns."""
        adopted = self.adopt_orphans()
        removed = self.staging.sweep({row.staging for row in upload_rows.every_row(
            self.tree.catalog.conn)})
        if adopted or removed:
            log.info("resuming %d upload(s); removed %d unjournaled staged file(s)",
                     adopted, removed)
        return adopted

    def adopt_orphans(self) -> int:
        """Rows whose daemon is gone become this daemon's (their staged files with them)."""
        gone = [o for o in upload_rows.owners(self.tree.catalog.conn)
                if o != self.owner and not owner_alive(o)]
        if not gone:
            return 0
        with self.tree.transaction() as txn:
            ids = {i for previous in gone for i in upload_rows.adopt(txn, self.owner, previous)}
        for row in upload_rows.pending(self.tree.catalog.conn, self.owner):
            if row.id in ids:
                staged = self.staged.get(row.node_id)
                if staged is None:  # (a file written here since keeps its own copy)
                    staged = self.staged[row.node_id] = Staged(Path(row.staging), size=row.size)
                staged.journaled.add(row.id)
        self._wakeup.set()
        return len(ids)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            adopted_at = time.monotonic()
            nursery.start_soon(self.pieces.sweep)  # what a crashed daemon left half-sent
            while True:
                # (both before the look: what is journaled during it is looked at next)
                self._wakeup = trio.Event()
                self._next_look = trio.current_time() + 1.0  # retries come due over time
                now_ns = time.time_ns()
                for row in upload_rows.pending(self.tree.catalog.conn, self.owner):
                    if row.node_id in self._busy or self._is_paused(row.node_id):
                        continue
                    held = self._held_for(row, now_ns)
                    if held > 0:
                        self._look_within(held)
                        continue
                    self._busy.add(row.node_id)
                    await self._workers.acquire()
                    nursery.start_soon(self._upload_node, row.node_id)
                with trio.CancelScope(deadline=self._next_look) as self._sleeping:
                    await self._wakeup.wait()
                self._sleeping = None
                if time.monotonic() - adopted_at > ADOPT_EVERY_S:
                    self.adopt_orphans()  # a daemon that shared this data directory died
                    nursery.start_soon(self.pieces.sweep)
                    adopted_at = time.monotonic()

    def _look_within(self, seconds: float) -> None:
        """The uploader reads the journal again within `seconds`: a burst of closes and
        renames costs it one look, not one each (a look reads every pending row)."""
        self._next_look = min(self._next_look, trio.current_time() + seconds)
        if self._sleeping is not None:
            self._sleeping.deadline = self._next_look

    def _held_for(self, row: Upload, now_ns: int) -> float:
        """Seconds a row still waits after its close (`upload_delay`: what follows a
        close at once — rsync's and git's rename, tar's chmod and utime, a temporary
        file's delete — then changes only the catalog and the upload to come, not the
        server); 0 for retries, fsync'd files and after unmount."""
        if self._hurry or row.attempts or row.node_id in self._urgent:
            return 0.0
        return max(0, row.queued_ns + self.upload_delay_ns - now_ns) / 1e9

    async def _upload_node(self, node_id: int) -> None:
        try:
            while not self._is_paused(node_id):
                self._look_again.discard(node_id)
                rows = upload_rows.for_node(self.tree.catalog.conn, node_id, self.owner)
                if not rows:
                    return
                latest, superseded = rows[-1], rows[:-1]
                for row in superseded:
                    self._finish(row, None)
                if not await self._upload_one(latest) or node_id not in self._look_again:
                    return
        finally:
            self._look_again.discard(node_id)
            self._busy.discard(node_id)
            self._urgent.discard(node_id)
            self._workers.release()
            async with self._uploaded:
                self._uploaded.notify_all()

    async def _upload_one(self, row: Upload) -> bool:
        """One attempt at one row (after its back-off); True if the row is done, or the
        attempt was cancelled and the node's rows are to be looked at again."""
        delay = min(2.0 ** row.attempts, RETRY_MAX_S) if row.attempts else 0.0
        with trio.move_on_after(delay):
            await self._retry.wait()
        if self._is_paused(row.node_id):
            return True
        control = UploadControl()
        self._controls[row.node_id] = control
        staged = self.staged.get(row.node_id)
        if staged is not None:
            staged.on_server = True  # (from now on it may be, whatever becomes of this try)
        started = time.monotonic()
        digest = self._digest_alongside(row)
        try:
            sent = await self._send(row, control)
            digested = await digest.result()
            entry = await self._settled(row, sent)
        except FsError as exc:
            if exc.code == errno.ECANCELED:
                log.info("upload of %r cancelled: the file changed or moved", row.remote_path)
                self._look_again.add(row.node_id)
                return True
            if self._staged_copy_gone(row):
                return True
            if exc.refused:  # no retry helps: parked now, listed by `markfs status`
                self.on_answer(row.source_id, exc)
                self._park(row, f"the source refuses it: {exc.strerror}")
                return True
            return self._failed(row, exc)
        except Exception as exc:  # any failure: journaled, retried later
            return self._staged_copy_gone(row) or self._failed(row, exc)
        finally:
            self._controls.pop(row.node_id, None)
        log.debug("uploaded %r (%d bytes) in %.2fs", row.remote_path, row.size,
                 time.monotonic() - started)
        METRICS.uploads.inc()
        self.on_answer(row.source_id, None)
        self._finish(row, entry, digested)
        if self._folder_times:
            await self.set_folder_times()
        self.retry_now()  # the backend answers again: other retries need not wait
        return True

    def _staged_copy_gone(self, row: Upload) -> bool:
        """After a failed try: was it because the staged copy is gone? (Then no retry can
        send this content: parked. Asked only after a failure — a stat on the loop for
        every upload cost more than the failures it finds.)"""
        if os.path.exists(row.staging):
            return False
        self._park(row, "the staged copy is gone: this content cannot be sent")
        return True

    def _digest_alongside(self, row: Upload) -> StagedDigest:
        """The staged copy's digest, taken in a worker while it is sent (its bytes are
        in the page cache either way), for `content_hashes`."""
        taken = StagedDigest()
        if row.size == 0:  # (no digest is recorded for an empty file: no thread for it)
            taken.done.set()
            return taken

        async def take() -> None:
            try:
                taken.digest = await self._upload_io(file_digest, row.staging,
                                                     timeout=UPLOAD_TIMEOUT_S)
            except FsError:
                pass  # the copy went away: the upload itself will say why
            finally:
                taken.done.set()
        assert self._nursery is not None
        self._nursery.start_soon(take)
        return taken

    async def _send(self, row: Upload, control: UploadControl) -> Entry:
        backend = self._backend_of(row.source_id)
        if stores_pieces(backend) and row.size > backend.piece_size:
            return await self._send_in_pieces(row, backend)
        staged = self.staged.get(row.node_id)
        if staged is not None and staged.path == Path(row.staging):
            self._stop_stream(staged, "the file is small now")
        node = self.tree.node(row.node_id)
        attrs = None if node is None else kept_attrs(node, backend)
        times = staged.times if staged is not None else None
        if attrs is not None and times is not None and backend.keeps_modes and (
                not keeps_metadata(backend)):  # (SFTP sets them before its rename)
            attrs = replace(attrs, atime_ns=times[0], mtime_ns=times[1])
        return await self._upload_io(backend.upload, row.remote_path, row.staging, control,
                                     attrs, timeout=UPLOAD_TIMEOUT_S)

    async def _settled(self, row: Upload, entry: Entry) -> Entry:
        """`_settle` until no chmod/utime came while it ran (rsync sets mode and times
        right after close, while the upload runs): `_finish` follows with no wait in
        between, so none is lost."""
        while True:
            staged = self.staged.get(row.node_id)
            seen = staged.attr_changes if staged is not None else 0
            entry = await self._settle(row, entry)
            staged = self.staged.get(row.node_id)
            if (staged.attr_changes if staged is not None else 0) == seen:
                return entry

    async def _settle(self, row: Upload, entry: Entry) -> Entry:
        """Give the uploaded file what its bytes did not carry: the permission bits of
        its node (SFTP made it 0600, or with the server's umask) and times set while it
        was staged; on S3 the metadata its node has now, where the upload's differs (set
        since, or a multipart upload's, which began before the last write)."""
        backend = self._backend_of(row.source_id)
        node = self.tree.node(row.node_id)
        if node is not None and keeps_metadata(backend):
            wanted = kept_attrs(node, backend)
            if holds(entry, wanted):
                return entry
            return await self._upload_io(backend.set_attrs, row.remote_path, wanted,
                                         timeout=UPLOAD_TIMEOUT_S)
        if node is None or not backend.keeps_modes:
            return entry
        staged = self.staged.get(row.node_id)
        times = staged.times if staged is not None else None
        if stat.S_IMODE(entry.mode) == stat.S_IMODE(node.mode) and (
                times is None or has_times(entry, times)):
            return entry
        if stat.S_IMODE(entry.mode) != stat.S_IMODE(node.mode):
            await self._upload_io(backend.chmod, row.remote_path, node.mode,
                                  timeout=UPLOAD_TIMEOUT_S)
        if times is not None:
            await self._upload_io(backend.utime, row.remote_path, *times,
                                  timeout=UPLOAD_TIMEOUT_S)
        return await self._upload_io(backend.stat, row.remote_path, timeout=UPLOAD_TIMEOUT_S)

    def folder_times_later(self, folder_id: int, times: tuple[int | None, int | None]) -> None:
        """Times set on a folder that still has uploads to come below it (cp -a and rsync
        set a folder's times after filling it): each upload landing there would move its
        mtime on the server, so they are set again once the last one has landed."""
        self._folder_times[folder_id] = times

    def keep_folder_times(self, folder: Node) -> Node:
        """A folder as a restat of it found it, with the times to be set again on the
        server (if any) kept in the catalog meanwhile."""
        times = self._folder_times.get(folder.id)
        if times is None:
            return folder
        self._store_folder_times(folder.id, times)
        return self.tree.node(folder.id) or folder

    def _store_folder_times(self, folder_id: int,
                            times: tuple[int | None, int | None]) -> None:
        changes = {k: v for k, v in (("atime_ns", times[0]), ("mtime_ns", times[1]))
                   if v is not None}
        with self.tree.transaction() as txn:
            nodes.update_node(txn, folder_id, **changes)

    async def set_folder_times(self) -> None:
        """Folders whose uploads below have all landed get their times again (the entry
        stays, and keeps the catalog's times, until the server has them)."""
        for folder_id, times in list(self._folder_times.items()):
            if self.staged_below(folder_id) or folder_id in self._setting_times:
                continue
            folder = self.tree.node(folder_id)
            if folder is None or folder.source_id is None or folder.remote_path is None:
                del self._folder_times[folder_id]
                continue
            self._setting_times.add(folder_id)
            try:
                await self._upload_io(self._backend_of(folder.source_id).utime,
                                      folder.remote_path, *times, timeout=self.io_timeout)
            except FsError as exc:
                log.warning("times of folder %r not set again: %s", folder.remote_path,
                            exc.strerror)
            finally:
                self._setting_times.discard(folder_id)
            if self._folder_times.get(folder_id) == times:
                del self._folder_times[folder_id]
            self._store_folder_times(folder_id, times)  # (a restat may have read a passing
            self.on_changed(folder_id)                  # time in between)

    def staged_attrs(self, node: Node, mode: int | None,
                     times: tuple[int | None, int | None] | None,
                     owner: tuple[int | None, int | None] | None = None) -> None:
        """chmod/utime (and, where the storage keeps owners as metadata, chown) of a file
        whose content is not on its storage yet: kept in the catalog now, given to the
        storage with the upload or when it lands (`_settle`)."""
        staged = self.staged.get(node.id)
        changes: dict[str, int] = {}
        if mode is not None:
            changes["mode"] = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
        if owner is not None:
            kept = (node.meta_kept or 0) | (KEPT_MODE if mode is not None else 0)
            for column, value, bit in (("uid", owner[0], KEPT_UID), ("gid", owner[1], KEPT_GID)):
                if value is not None:
                    changes[column], kept = value, kept | bit
            changes["meta_kept"] = kept
        if times is not None and staged is not None:
            staged.times = times
            if times[1] is not None:
                changes["mtime_ns"] = times[1]
        if changes:
            with self.tree.transaction() as txn:
                nodes.update_node(txn, node.id, **changes)
        if staged is not None:
            staged.attr_changes += 1

    async def _send_in_pieces(self, row: Upload, backend: PieceStore) -> Entry:
        """Finish the stream of this staged copy if it has one for this path, else send
        the copy whole in pieces."""
        staged = self.staged.get(row.node_id)
        sender = None
        if staged is not None and staged.path == Path(row.staging):
            sender, staged.sender, staged.stream_to = staged.sender, None, None
        if sender is None or sender.broken or sender.path != row.remote_path:
            if sender is not None:
                sender.abandon("it was sent to another path")
            assert self._nursery is not None
            sender = PieceSender(backend, row.source_id, row.remote_path, Path(row.staging),
                                 self._upload_io, self.pieces, self._nursery)
            sender.offer(0, row.size)
        self._controls[row.node_id] = sender.control  # cancels reach its pieces
        return await sender.finish(row.size)

    def _failed(self, row: Upload, exc: Exception) -> bool:
        METRICS.upload_retries.inc()
        self.on_answer(row.source_id, exc)
        with self.tree.transaction() as txn:
            upload_rows.failed(txn, row.id, str(exc))
        log.warning("upload of %r failed (attempt %d): %s", row.remote_path,
                    row.attempts + 1, exc)
        self._wakeup.set()
        return False

    def _park(self, row: Upload, reason: str) -> None:
        """A row that can never succeed: reported once, kept for `markfs status`."""
        log.warning("upload of %r parked: %s", row.remote_path, reason)
        METRICS.upload_failures.inc()
        with self.tree.transaction() as txn:
            upload_rows.park(txn, row.id, reason)
        staged = self.staged.get(row.node_id)
        if staged is not None:
            staged.journaled.discard(row.id)
            if not staged.journaled and staged.writers <= 0:
                self._stop_stream(self.staged.pop(row.node_id), "the upload is parked")

    def _finish(self, row: Upload, entry: Entry | None, digest: str | None = None) -> None:
        """The row is done (uploaded with `entry` as the result, or superseded); `digest`
        is recorded as that of the uploaded content unless the file was written since."""
        staged = self.staged.get(row.node_id)
        newer = [r for r in upload_rows.for_node(self.tree.catalog.conn, row.node_id, self.owner)
                 if r.id > row.id]
        if entry is not None:  # chunks cached before this write must never be served again
            self.cache.bump_epoch(row.source_id, row.remote_path)
        seen_differently = False
        with self.tree.transaction() as txn:
            upload_rows.done(txn, row.id)
            node = self.tree.node(row.node_id)
            if entry is not None and node is not None and not newer:
                kept = {} if entry.meta_kept is None else {"meta_kept": entry.meta_kept}
                nodes.update_node(txn, node.id, size=entry.size, mtime_ns=entry.mtime_ns,
                              ctime_ns=entry.ctime_ns, etag=entry.etag, **kept)
                seen_differently = (node.size, node.mtime_ns, node.ctime_ns) != (
                    entry.size, entry.mtime_ns, entry.ctime_ns)
                unchanged = staged is None or staged.writers <= 0  # else a write may follow
                if digest is not None and unchanged and entry.size == row.size > 0:
                    hashes.record(txn, row.source_id, row.remote_path, entry.identity,
                                  entry.size, digest)
        if seen_differently and (staged is None or staged.writers <= 0):
            self.on_changed(row.node_id)  # the kernel keeps attributes for long: told now
        if staged is None:
            self.staging.remove(row.staging)
            return
        staged.journaled.discard(row.id)
        if not staged.journaled and staged.writers <= 0:
            self._stop_stream(self.staged.pop(row.node_id), "the file is uploaded")
            self.staging.remove(staged.path)
        elif row.staging != str(staged.path):
            self.staging.remove(row.staging)

    def pending(self) -> tuple[int, int]:
        """(number, bytes) of this daemon's uploads still to send."""
        return self.tree.pending_uploads(self.owner)


def kept_attrs(node: Node, backend: Backend) -> FileAttrs:
    """What the storage is to keep of a file besides its bytes: its mode (on S3, where
    the node has one of its own: made through the mount, set, or read from the object),
    and on S3 also its owner where the node has one of its own, and its mtime."""
    if not keeps_metadata(backend):
        return FileAttrs(mode=node.mode)
    kept = node.meta_kept or 0
    return FileAttrs(mode=node.mode if kept & KEPT_MODE else None,
                     uid=node.uid if kept & KEPT_UID else None,
                     gid=node.gid if kept & KEPT_GID else None, mtime_ns=node.mtime_ns)


def has_times(entry: Entry, times: tuple[int | None, int | None]) -> bool:
    """Does the storage's entry carry both times set (to the second: SFTP's precision)?"""
    atime, mtime = times
    return (atime is not None and mtime is not None and entry.atime_ns is not None
            and entry.atime_ns // 10**9 == atime // 10**9
            and entry.mtime_ns // 10**9 == mtime // 10**9)


def holds(entry: Entry, attrs: FileAttrs) -> bool:
    """Does the storage's entry have every attribute `attrs` names?"""
    return ((attrs.mode is None or stat.S_IMODE(entry.mode) == stat.S_IMODE(attrs.mode))
            and attrs.uid in (None, entry.uid) and attrs.gid in (None, entry.gid)
            and attrs.mtime_ns in (None, entry.mtime_ns))
