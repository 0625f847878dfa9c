"""Uploads in pieces: a staged file sent to a `PieceStore` (S3 multipart, SFTP
temporary file) a piece at a time, several in flight — while the file is still being
written (a stream), or whole after close.

Invariants:
- A piece is sent only once every byte in it is final for this upload: pieces are
  handed out in order up to `ready` (the end of the contiguous prefix of completed
  writes), and a write or truncate below `sent_end` (what has been handed out) breaks
  the stream: it is aborted and the file goes whole at the next upload.
- The token of a begun upload is in `piece_uploads` before the first piece leaves, and
  leaves it only after the server confirmed the finish or the abort (`PieceLedger`); a
  daemon's rows that no live sender owns are aborted by the sweep.
- Nothing here decides what the file's content is: the upload journal does. A stream
  is only ever finished for a journal row of the same staged copy and path.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from markfs.backends.base import Entry, PieceStore, UploadControl, stores_pieces
from markfs.errors import FsError
from markfs.namespace.tree import Tree
from markfs.namespace.workers import CatalogRunner, IoRunner
from markfs.runtime import owner_alive

log = logging.getLogger(__name__)


class PieceLedger:
    """The `piece_uploads` rows of this daemon, and the sweep of those nobody sends."""

    def __init__(self, tree: Tree, owner: str, io: IoRunner,
                 backend_of: Callable[[int], object]) -> None:
        self.tree, self.owner, self._io, self._backend_of = tree, owner, io, backend_of
        self.live: set[int] = set()  # rows whose sender is running in this daemon
        self.catalog = CatalogRunner()  # (the uploader's: off the loop on a server's catalog)

    def begun(self, source_id: int, path: bytes, token: str) -> int:
        with self.tree.transaction() as txn:
            row_id = self.tree.catalog.piece_uploads.begun(txn, source_id, path, token, self.owner)
        self.live.add(row_id)
        return row_id

    def ended(self, row_id: int) -> None:
        with self.tree.transaction() as txn:
            self.tree.catalog.piece_uploads.ended(txn, row_id)
        self.live.discard(row_id)

    def let_go(self, row_id: int) -> None:
        """The sender gave up without a confirmed abort: the sweep aborts it later."""
        self.live.discard(row_id)

    async def abort(self, row_id: int, source_id: int, path: bytes, token: str) -> bool:
        backend = self._backend_of(source_id)
        if not stores_pieces(backend):
            return False  # (the source is gone, or no longer takes pieces)
        try:
            await self._io(backend.abort_pieces, path, token)
        except FsError as exc:
            log.warning("could not abort the upload of %r yet: %s", path, exc)
            self.let_go(row_id)
            return False
        self.ended(row_id)
        return True

    async def sweep(self) -> int:
        """Abort uploads in pieces that no sender owns: a crashed daemon's, this
        daemon's that failed to abort when they broke, and on a shared catalog those of
        another host whose session was removed (lapsed past its grace: that host was
        cut off or died mid-upload). Returns how many were aborted."""
        aborted = 0
        rows = await self.catalog.read(self.tree.unfinished_piece_uploads)
        in_session = await self.catalog.read(self._owners_in_session) if rows else None
        for row in rows:
            mine = row.owner == self.owner
            if (mine and row.id in self.live) or (
                    not mine and owner_alive(row.owner, in_session)):
                continue
            aborted += await self.abort(row.id, row.source_id, row.remote_path, row.token)
        if aborted:
            log.info("aborted %d upload(s) in pieces left unfinished", aborted)
        return aborted


    def _owners_in_session(self) -> set[str] | None:
        """The daemons with a session in a shared catalog (None: not shared)."""
        catalog = self.tree.catalog
        return {s.owner for s in catalog.sessions()} if catalog.engine.shared else None


class PieceSender:
    """One upload in pieces of one staged file to one path of one source.

    `offer(start, end)` tells it bytes were written; once a whole piece is ready it
    starts its task (`run`, in the nursery given) that sends every whole piece of the
    written prefix; `finish(size)` sends the rest and makes it the file; `abandon`
    stops it and aborts what was sent. (A file that never reaches a piece never
    starts a task.)
    """

    def __init__(self, backend: PieceStore, source_id: int, path: bytes, staged: Path,
                 io: IoRunner, ledger: PieceLedger, nursery: trio.Nursery) -> None:
        self.backend, self.source_id, self.path, self.staged = backend, source_id, path, staged
        self._io, self._ledger, self._nursery = io, ledger, nursery
        self._started = False
        self.control = UploadControl()
        self.ready = 0  # bytes [0, ready) are written and final unless `broken`
        self.sent_end = 0  # bytes [0, sent_end) are handed to pieces
        self.broken = False
        self._final: int | None = None  # the size to finish at, once finishing
        self._token: str | None = None
        self._row: int | None = None
        self._receipts: dict[int, str] = {}
        self._error: BaseException | None = None
        self._wake = trio.Event()
        self._done = trio.Event()  # no piece is in flight any more
        self._aborted = trio.Event()  # run ended: anything abandoned is aborted (or swept)
        self._slots = trio.Semaphore(max(1, backend.pieces_in_flight))

    def offer(self, start: int, end: int) -> None:
        """Bytes [start, end) were just written."""
        if start < self.sent_end:
            self.abandon("a write into what was sent")
        elif start <= self.ready < end:
            self.ready = end
            if self.ready - self.sent_end >= self.backend.piece_size:
                self._start()
                self._wake.set()

    @property
    def started(self) -> bool:
        """Whether a piece may have been sent (before: the server has nothing of it)."""
        return self._started

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._nursery.start_soon(self.run)

    def truncated(self, size: int) -> None:
        if size < self.sent_end:
            self.abandon("truncated below what was sent")
        self.ready = min(self.ready, size)

    def abandon(self, why: str) -> None:
        if self._started and not self.broken:
            log.info("upload in pieces of %r stopped (%s): the file goes whole", self.path, why)
        self.broken = True
        self.control.cancel.set()
        self._wake.set()

    async def run(self) -> None:
        """Send pieces as they become ready, until all are sent or it is abandoned;
        abort what was sent if abandoned or failed. (Cancelled — the daemon stops —
        the row stays for the next start's sweep.)"""
        try:
            async with trio.open_nursery() as nursery:
                while not self.broken and not self._all_handed_out():
                    length = self._next_length()
                    if length == 0:
                        self._wake = trio.Event()
                        await self._wake.wait()
                        continue
                    await self._slots.acquire()
                    if self.broken:
                        self._slots.release()
                        break
                    if self._token is None:
                        await self._begin()
                    number = self.sent_end // self.backend.piece_size + 1
                    nursery.start_soon(self._send, number, self.sent_end, length)
                    self.sent_end += length
        except Exception as exc:  # any failure ends this upload: it goes whole later
            self._error = _first(exc)
            self.broken = True
            self.control.cancel.set()
        finally:
            self._done.set()
        if self.broken and self._row is not None:
            await self._ledger.abort(self._row, self.source_id, self.path, self._token or "")
        self._aborted.set()

    def _all_handed_out(self) -> bool:
        return self._final is not None and self.sent_end >= self._final

    def _next_length(self) -> int:
        piece = self.backend.piece_size
        if self._final is not None:
            return min(piece, self._final - self.sent_end)
        return piece if self.ready - self.sent_end >= piece else 0

    async def _begin(self) -> None:
        self._token = await self._io(self.backend.begin_pieces, self.path)
        self._row = self._ledger.begun(self.source_id, self.path, self._token)

    async def _send(self, number: int, offset: int, length: int) -> None:
        try:
            data = await self._io(_read_piece, self.staged, offset, length)
            if len(data) != length:
                raise FsError(errno.EIO, "the staged copy is shorter than its upload")
            assert self._token is not None
            self._receipts[number] = await self._io(
                self.backend.send_piece, self.path, self._token, number, data, self.control)
        finally:
            self._slots.release()

    async def finish(self, size: int) -> Entry:
        """Send what is left of the first `size` bytes and make them the file; FsError
        (ECANCELED if abandoned) if that cannot be, after which nothing is left."""
        if size < self.sent_end:
            self.abandon("the file is shorter than what was sent")
        self._final = size
        self._start()
        self._wake.set()
        await self._done.wait()
        if self.broken:
            await self._aborted.wait()
            code = getattr(self._error, "code", errno.EIO) if self._error else errno.ECANCELED
            raise FsError(code, f"upload of {self.path!r} stopped: {self._error or 'cancelled'}")
        assert self._token is not None and self._row is not None
        receipts = [self._receipts[n] for n in sorted(self._receipts)]
        try:
            entry = await self._io(self.backend.finish_pieces, self.path, self._token, receipts)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._ledger.abort(self._row, self.source_id, self.path, self._token)
            raise
        self._ledger.ended(self._row)
        return entry


    async def stopped(self) -> None:
        """Until `run` has ended and what was abandoned is aborted."""
        if self._started:
            await self._aborted.wait()


def _first(exc: BaseException) -> BaseException:
    """The first real failure inside (trio groups the failures of parallel pieces)."""
    while inner := getattr(exc, "exceptions", None):
        exc = inner[0]
    return exc


def _read_piece(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        return os.pread(f.fileno(), length, offset)
