"""How one journal row's bytes reach its storage: one call (`Backend.upload`, with the
attributes the storage keeps), or in pieces (`pieces.PieceSender`: finishing the stream
of a copy written from its start, or a whole large copy), with the copy's digest taken
alongside for `content_hashes`. The uploader decides what to send and when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import trio

from markfs.backends.base import (
    Backend,
    Entry,
    PieceStore,
    UploadControl,
    keeps_metadata,
    stores_pieces,
)
from markfs.catalog.journals.uploads import Upload
from markfs.errors import FsError
from markfs.namespace.remote.digests import file_digest
from markfs.namespace.remote.pieces import PieceLedger, PieceSender
from markfs.namespace.remote.settling import UPLOAD_TIMEOUT_S, kept_attrs
from markfs.namespace.remote.staged import Staged, StagedFiles
from markfs.namespace.tree import Tree
from markfs.namespace.workers import WorkerPool

UPLOAD_THREADS = 16  # threads of uploads (pieces of several files), apart from the kernel's


@dataclass
class StagedDigest:
    """The digest of a staged copy being taken in a worker thread."""

    digest: str | None = None
    done: trio.Event = field(default_factory=trio.Event)

    async def result(self) -> str | None:
        await self.done.wait()
        return self.digest


class Sending:
    """The worker threads of uploads, and the task group their streams run in."""

    def __init__(self, tree: Tree, staged: StagedFiles,
                 backend_of: Callable[[int], Backend]) -> None:
        self.tree, self.staged = tree, staged
        self._backend_of = backend_of
        self.upload_io = WorkerPool(UPLOAD_THREADS, UPLOAD_TIMEOUT_S).run
        self.pieces = PieceLedger(tree, staged.owner, self.upload_io, backend_of)
        self.nursery: trio.Nursery | None = None  # the uploader's, once it runs
        staged.start_stream = self.start_stream

    def start_stream(self, staged: Staged) -> None:
        """A copy written from its start streams its whole pieces while being written."""
        if self.nursery is None or staged.stream_to is None:
            return  # (not running yet: the copy goes whole at its upload)
        backend = self._backend_of(staged.stream_to[0])
        assert stores_pieces(backend)
        staged.sender = PieceSender(backend, *staged.stream_to, staged.path,
                                    self.upload_io, self.pieces, self.nursery)

    def digest_alongside(self, row: Upload) -> StagedDigest:
        """The staged copy's digest, taken in a worker while it is sent (its bytes are
        in the page cache either way), for `content_hashes`."""
        taken = StagedDigest()
        if row.size == 0:  # (no digest is recorded for an empty file: no thread for it)
            taken.done.set()
            return taken

        async def take() -> None:
            try:
                taken.digest = await self.upload_io(file_digest, row.staging,
                                                     timeout=UPLOAD_TIMEOUT_S)
            except FsError:
                pass  # the copy went away: the upload itself will say why
            finally:
                taken.done.set()
        assert self.nursery is not None
        self.nursery.start_soon(take)
        return taken

    async def send(self, row: Upload, control: UploadControl,
                   controls: dict[int, UploadControl]) -> Entry:
        """The row's staged copy onto its storage: in one call, or in pieces (`controls`
        then holds the pieces' control, so a cancel reaches them)."""
        backend = self._backend_of(row.source_id)
        if stores_pieces(backend) and row.size > backend.piece_size:
            return await self._send_in_pieces(row, backend, controls)
        staged = self.staged.get(row.node_id)
        if staged is not None and staged.path == Path(row.staging):
            self.staged.stop_stream(staged, "the file is small now")
        node = self.tree.node(row.node_id)
        attrs = None if node is None else kept_attrs(node, backend)
        times = staged.times if staged is not None else None
        if attrs is not None and times is not None and backend.scheme.keeps_modes and (
                not keeps_metadata(backend)):  # (SFTP sets them before its rename)
            attrs = replace(attrs, atime_ns=times[0], mtime_ns=times[1])
        return await self.upload_io(backend.upload, row.remote_path, row.staging, control,
                                     attrs, timeout=UPLOAD_TIMEOUT_S)

    async def _send_in_pieces(self, row: Upload, backend: PieceStore,
                              controls: dict[int, UploadControl]) -> Entry:
        """Finish the stream of this staged copy if it has one for this path, else send
        the copy whole in pieces."""
        staged = self.staged.get(row.node_id)
        sender = None
        if staged is not None and staged.path == Path(row.staging):
            sender, staged.sender, staged.stream_to = staged.sender, None, None
        if sender is None or sender.broken or sender.path != row.remote_path:
            if sender is not None:
                sender.abandon("it was sent to another path")
            assert self.nursery is not None
            sender = PieceSender(backend, row.source_id, row.remote_path, Path(row.staging),
                                 self.upload_io, self.pieces, self.nursery)
            sender.offer(0, row.size)
        controls[row.node_id] = sender.control  # cancels reach its pieces
        return await sender.finish(row.size)
