"""The uploader: sends what the journal (`uploads`) says must reach each remote source.

At every flush (each close) a staged copy is journaled; `run` reads the journal and
uploads each file's newest row (a newer row supersedes older ones) after `upload_delay`,
with back-off retries, several files at once. Rows left by a crash, or by a daemon that
shared this data directory and died, are adopted and sent. A row that can never succeed
is parked for `markfs status`. Renames and deletes pause a node's uploads
(`uploads_paused`), so no upload lands at a path they changed.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from markfs.backends.base import (
    Backend,
    Entry,
    UploadControl,
)
from markfs.cache.content import ContentCache
from markfs.catalog import nodes
from markfs.catalog.journals.uploads import Upload
from markfs.catalog.txn import Txn
from markfs.errors import FsError
from markfs.metrics import METRICS
from markfs.model import Node
from markfs.namespace.remote.sending import Sending
from markfs.namespace.remote.settling import Settling
from markfs.namespace.remote.staged import Staged, StagedFiles
from markfs.namespace.tree import Tree
from markfs.namespace.workers import CatalogRunner, catalog_outage
from markfs.runtime import owner_alive

log = logging.getLogger(__name__)
UPLOAD_WORKERS = 8  # files uploading at once
RETRY_MAX_S = 60.0
AFTER_PAUSE_S = 0.02  # renames and deletes within this share the uploader's next look
ADOPT_EVERY_S = 5.0  # how often a daemon looks for rows of daemons that are gone


class Uploader:
    """This daemon's journal rows, sent (its `owner` token is on each)."""

    def __init__(self, tree: Tree, cache: ContentCache, staged: StagedFiles,
                 backend_of: Callable[[int], Backend], io_timeout: float,
                 upload_delay: float, catalog: CatalogRunner) -> None:
        self.tree, self.cache, self.staged, self.owner = tree, cache, staged, staged.owner
        self.rows = tree.catalog.uploads  # the journal
        self.io_timeout = io_timeout
        self.upload_delay_ns = int(upload_delay * 1e9)
        self.sending = Sending(tree, staged, backend_of)
        # the journal's reads and writes: off the loop where the catalog is a server's
        self.catalog = self.sending.pieces.catalog = catalog
        self.settling = Settling(tree, staged, self.sending.upload_io, backend_of, io_timeout)
        self._wakeup = trio.Event()
        self._uploaded = trio.Condition()
        self._busy: set[int] = set()  # node ids with an upload in flight
        # busy nodes journaled or cancelled meanwhile: their worker reads their rows again
        # before it ends (else it ends after one upload, without a journal read)
        self._look_again: set[int] = set()
        self._workers = trio.Semaphore(UPLOAD_WORKERS)
        self._controls: dict[int, UploadControl] = {}  # node id -> its upload in flight
        self._paused: dict[int | None, int] = {}  # node id (None: all) -> pausers
        # nodes whose upload may not wait out `upload_delay` (an fsync waits for it); one
        # leaves when its upload ends
        self._urgent: set[int] = set()
        self._hurry = False  # unmounted: nothing waits out the delay any more
        self._next_look = 0.0  # trio time the uploader reads the journal again at the latest
        self._sleeping: trio.CancelScope | None = None  # its wait until then
        self._retry = trio.Event()  # set: back-offs end now
        # told when an upload changed a node's attributes (the kernel drops its copy)
        self.on_changed: Callable[[int], None] = lambda node_id: None
        # told what each upload attempt came to (source id, its error or None): health
        self.on_answer: Callable[[int, BaseException | None], None] = lambda s, e: None

    def drop_rows(self, node: Node | None, node_id: int) -> list[str]:
        """The file was deleted: its pending rows go; the staged files they named."""
        if node is not None and node.remote_path is not None:
            self.cache.bump_epoch(node.source_id or 0, node.remote_path)
        with self.tree.transaction() as txn:
            return self.rows.drop_for_node(txn, node_id)

    def enqueue(self, node: Node, staged: Staged) -> int:
        """Record that the staged copy is the file's content now: it will be uploaded
        (in a transaction of the caller's, or its own; in any thread; then `journaled`)."""
        assert node.source_id is not None and node.remote_path is not None
        with self.tree.transaction() as txn:
            return self.rows.enqueue(txn, node.id, node.source_id, node.remote_path,
                                     str(staged.path), staged.size, self.owner)

    def journaled(self, node: Node, staged: Staged, upload_id: int) -> None:
        """`enqueue`'s row is in: the uploader takes it (on the loop)."""
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

    def hurry(self) -> None:
        """Every waiting upload goes now, and later ones at once (unmount)."""
        self._hurry = True
        self._wakeup.set()

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
            streams = [sender for n, staged in self.staged.items() if node_id in (None, n)
                       and (sender := self.staged.stop_stream(staged, "the file moved"))]
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
            self.rows.retarget_tree(txn, node.source_id, old_path, new_path)
        else:
            self.rows.retarget(txn, node.id, new_path)
            for path in (old_path, new_path):  # neither name may serve the other's chunks
                self.cache.bump_epoch(node.source_id or 0, path)

    async def latest_upload(self, node_id: int) -> int | None:
        """The journal row of the file's newest content still to send, if any."""
        rows = await self.catalog.read(self.rows.for_node, node_id, self.owner)
        return rows[-1].id if rows else None

    async def wait_uploaded(self, upload_id: int, timeout: float) -> None:
        """Until the journal row is gone (uploaded or superseded): fsync's guarantee."""
        waited = await self.catalog.read(self.rows.get, upload_id)
        if waited is not None:
            self._urgent.add(waited.node_id)  # (not after the upload delay)
            self._wakeup.set()
        self.retry_now()  # fsync tries at once, not after the back-off
        with trio.move_on_after(timeout):
            async with self._uploaded:
                while (row := await self.catalog.read(self.rows.get, upload_id)) is not None:
                    if row.parked_ns is not None:
                        raise FsError(errno.EIO, f"upload parked: {row.last_error}")
                    await self._uploaded.wait()
                return
        row = await self.catalog.read(self.rows.get, upload_id)
        detail = f": {row.last_error}" if row and row.last_error else ""
        raise FsError(errno.EIO, f"upload not finished in time{detail}")

    def resume(self) -> int:
        """At start: adopt the journal rows of daemons that are gone, and drop staged
        files that no row names and no running daemon owns."""
        adopted = self.adopt_orphans()
        removed = self.staged.staging.sweep({row.staging for row in self.rows.every_row()})
        if adopted or removed:
            log.info("resuming %d upload(s); removed %d unjournaled staged file(s)",
                     adopted, removed)
        return adopted

    def _gone_owners(self) -> list[str | None]:
        """The owners of journal rows whose daemon is gone."""
        return [o for o in self.rows.owners() if o != self.owner and not owner_alive(o)]

    def adopt_orphans(self) -> int:
        """Rows whose daemon is gone become this daemon's (their staged files with them)."""
        gone = self._gone_owners()
        if not gone:
            return 0
        with self.tree.transaction() as txn:
            ids = {i for previous in gone for i in self.rows.adopt(txn, self.owner, previous)}
        for row in self.rows.pending(self.owner):
            if row.id in ids:
                self.staged.adopt(row.node_id, row.staging, row.size, row.id)
        self._wakeup.set()
        return len(ids)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.sending.nursery = nursery
            task_status.started()
            adopted_at = time.monotonic()
            nursery.start_soon(self.sending.pieces.sweep)  # what a crashed daemon left half-sent
            while True:
                # (both before the look: what is journaled during it is looked at next)
                self._wakeup = trio.Event()
                self._next_look = trio.current_time() + 1.0  # retries come due over time
                now_ns = time.time_ns()
                for row in await self._pending_rows():
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
                    with catalog_outage("adopting a gone daemon's uploads (again in 1 s)"):
                        if await self.catalog.read(self._gone_owners):
                            self.adopt_orphans()  # a daemon that shared this data dir died
                        nursery.start_soon(self.sending.pieces.sweep)
                    adopted_at = time.monotonic()

    async def _pending_rows(self) -> list[Upload]:
        """This daemon's journal rows to send; none while the catalog does not answer (a
        shared catalog's server restarting: the next look, within a second, reads them)."""
        with catalog_outage("reading the upload journal (again within 1 s)"):
            return await self.catalog.read(self.rows.pending, self.owner)
        return []

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
                rows = await self.catalog(self.rows.for_node, node_id, self.owner)
                if not rows:
                    return
                latest, superseded = rows[-1], rows[:-1]
                for row in superseded:
                    await self._finish(row, None)
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
        if self.tree.catalog.fenced():
            # this host's session in a shared catalog may have lapsed: another host may
            # have written the file since, and an old copy must not land over it. Sent
            # once the session is renewed (the next look at the journal, within 1 s).
            return False
        control = UploadControl()
        self._controls[row.node_id] = control
        staged = self.staged.get(row.node_id)
        if staged is not None:
            staged.on_server = True  # (from now on it may be, whatever becomes of this try)
        started = time.monotonic()
        digest = self.sending.digest_alongside(row)
        try:
            sent = await self.sending.send(row, control, self._controls)
            digested = await digest.result()
            entry = await self.settling.settled(row, sent)
        except FsError as exc:
            if exc.code == errno.ECANCELED:
                log.info("upload of %r cancelled: the file changed or moved", row.remote_path)
                self._look_again.add(row.node_id)
                return True
            if await self._staged_copy_gone(row):
                return True
            if exc.refused:  # no retry helps: parked now, listed by `markfs status`
                self.on_answer(row.source_id, exc)
                await self._park(row, f"the source refuses it: {exc.strerror}")
                return True
            return await self._failed(row, exc)
        except Exception as exc:  # any failure: journaled, retried later
            return await self._staged_copy_gone(row) or await self._failed(row, exc)
        finally:
            self._controls.pop(row.node_id, None)
        log.debug("uploaded %r (%d bytes) in %.2fs", row.remote_path, row.size,
                 time.monotonic() - started)
        METRICS.uploads.inc()
        self.on_answer(row.source_id, None)
        await self._finish(row, entry, digested)
        if self.settling.folders_waiting():
            await self.settling.set_folder_times()
        self.retry_now()  # the backend answers again: other retries need not wait
        return True

    async def _staged_copy_gone(self, row: Upload) -> bool:
        """After a failed try: was it because the staged copy is gone? (Then no retry can
        send this content: parked. Asked only after a failure — a stat on the loop for
        every upload cost more than the failures it finds.)"""
        if os.path.exists(row.staging):
            return False
        await self._park(row, "the staged copy is gone: this content cannot be sent")
        return True

    async def _failed(self, row: Upload, exc: Exception) -> bool:
        METRICS.upload_retries.inc()
        self.on_answer(row.source_id, exc)
        await self.catalog(self.tree.write, self.rows.failed, row.id, str(exc))
        log.warning("upload of %r failed (attempt %d): %s", row.remote_path,
                    row.attempts + 1, exc)
        self._wakeup.set()
        return False

    async def _park(self, row: Upload, reason: str) -> None:
        """A row that can never succeed: reported once, kept for `markfs status`."""
        log.warning("upload of %r parked: %s", row.remote_path, reason)
        METRICS.upload_failures.inc()
        await self.catalog(self.tree.write, self.rows.park, row.id, reason)
        self.staged.row_done(row.node_id, row.id, row.staging, "the upload is parked",
                             keep_file=True)

    async def _finish(self, row: Upload, entry: Entry | None, digest: str | None = None) -> None:
        """The row is done (uploaded as `entry`, or superseded); `digest` is recorded as
        the uploaded content's unless the file was written since (`_record_done`)."""
        if entry is not None:  # chunks cached before this write must never be served again
            self.cache.bump_epoch(row.source_id, row.remote_path)
        staged = self.staged.get(row.node_id)
        if await self.catalog(self._record_done, row, entry, digest, staged) and (
                staged is None or staged.writers <= 0):
            self.on_changed(row.node_id)  # the kernel keeps attributes for long: told now
        self.staged.row_done(row.node_id, row.id, row.staging, "the file is uploaded")

    def _record_done(self, row: Upload, entry: Entry | None, digest: str | None,
                     staged: Staged | None) -> bool:
        """`_finish` in the catalog: whether the source shows the file differently."""
        before = self.tree.node(row.node_id)  # (its folder: the one this holds)
        with self.tree.transaction(() if before is None else (before.parent,)) as txn:
            # (newer rows read inside: none can slip in — a row is journaled holding the
            # whole catalog, which waits for this transaction's folder)
            newer = [r for r in self.rows.for_node(row.node_id, self.owner) if r.id > row.id]
            self.rows.done(txn, row.id)
            node = self.tree.node(row.node_id)
            if entry is None or node is None or newer:
                return False
            kept = {} if entry.meta_kept is None else {"meta_kept": entry.meta_kept}
            nodes.update_node(txn, node.id, size=entry.size, mtime_ns=entry.mtime_ns,
                              ctime_ns=entry.ctime_ns, etag=entry.etag, **kept)
            unchanged = staged is None or staged.writers <= 0  # else a write may follow
            if digest is not None and unchanged and entry.size == row.size > 0:
                self.tree.catalog.content_hashes.record(
                    txn, row.source_id, row.remote_path, entry.identity, entry.size, digest)
            return (node.size, node.mtime_ns, node.ctime_ns) != (
                entry.size, entry.mtime_ns, entry.ctime_ns)

    def pending(self) -> tuple[int, int]:
        """(number, bytes) of this daemon's uploads still to send."""
        return self.tree.pending_uploads(self.owner)

