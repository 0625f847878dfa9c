"""Files of remote sources (S3, SFTP): what the file-source provider asks of them.

Writes go to a staged local copy (`staged.StagedFiles`). At every flush (each close)
the copy is journaled in the catalog (`uploads`), and the uploader (`uploader.Uploader`)
sends it to the source with retries; a newer journal row of the same file supersedes
older ones. Rows left by a crash are uploaded at the next start. While a file has
staged content, reads come from it and listings do not overwrite its attributes;
reads of what is not staged go through the content cache (`chunks.ChunkReader`).

A file written from its start (new, or opened with O_TRUNC) on a source that takes
pieces streams: whole pieces go out while it is being written (`pieces.PieceSender`),
and the journal row of its close finishes that upload instead of starting one. The
journal alone still says what must reach the source: a stream that broke, or a crash
at any point, ends in a whole upload of the staged copy.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from markfs.backends.base import Backend, stores_pieces
from markfs.cache.content import CHUNK_SIZE, ContentCache
from markfs.cache.staging import StagingArea
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.listing import update_attrs
from markfs.namespace.remote.chunks import ChunkReader
from markfs.namespace.remote.staged import Staged, StagedFiles
from markfs.namespace.remote.uploader import Uploader
from markfs.namespace.tree import Tree
from markfs.namespace.workers import CatalogRunner, IoRunner
from markfs.runtime import owner_token


class RemoteFiles:
    """Reads, staged writes and uploads of remote files: `reader`, `staged` and
    `uploader` are its parts, each the one owner of what it holds."""

    def __init__(self, tree: Tree, cache: ContentCache, staging: StagingArea,
                 io: IoRunner, backend_of: Callable[[int], Backend], io_timeout: float,
                 upload_delay: float = 0.0, catalog: CatalogRunner | None = None) -> None:
        self.tree, self.cache, self.io_timeout = tree, cache, io_timeout
        self._io = io  # Namespace._io: worker thread with deadline, OSError -> FsError
        self._backend_of = backend_of
        self.reader = ChunkReader(cache, io, backend_of, io_timeout)
        self.staged = StagedFiles(tree, cache, staging, io, owner_token())
        self.catalog = catalog or CatalogRunner()  # the catalog's work (`CatalogRunner`)
        self.uploader = Uploader(tree, cache, self.staged, backend_of, io_timeout,
                                 upload_delay, self.catalog)
        self.settling = self.uploader.settling  # attributes given with or after an upload
        self.on_changed: Callable[[int], None] = lambda node_id: None
        self.on_answer: Callable[[int, BaseException | None], None] = lambda s, e: None

    def tell(self, changed: Callable[[int], None], dropped: Callable[[int, bytes], None],
             answered: Callable[[int, BaseException | None], None]) -> None:
        """Who is told when a node changed on its source (the namespace marks it and drops
        what the kernel cached of it), when a name was taken away (the kernel forgets
        it), and what each call to a source came to (its health)."""
        self.on_changed = self.uploader.on_changed = self.uploader.settling.on_changed = changed
        self.staged.on_dropped = dropped
        self.on_answer = self.uploader.on_answer = answered

    # -- reading -------------------------------------------------------------------

    async def read(self, node: Node, offset: int, size: int) -> bytes:
        """Bytes of a file: from its staged copy if it has one, else through the content
        cache. An object that changed on the server since it was listed (ESTALE) is
        looked at again and the new version read."""
        staged = self.staged.get(node.id)
        if staged is not None:
            return await self.staged.read(staged, offset, size)
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
        node = await self.catalog(update_attrs, self.tree, current, entry)
        self.on_changed(node.id)
        return node

    # -- writing -------------------------------------------------------------------

    async def open_writer(self, node: Node, truncate: bool) -> Staged:
        """A staged copy to write into: the pending one, or a fresh one (filled unless
        the file is truncated)."""
        staged, fresh = self.staged.open(node.id)
        try:
            if fresh and not truncate and node.size > 0:
                node = await self._fill_current(staged, node)
            if fresh:
                staged.size = 0 if truncate else node.size
            elif truncate:
                await self._io(os.truncate, staged.path, 0)
                staged.size = 0
        except BaseException:
            self.staged.release_writer(node.id, staged)
            raise
        if staged.size == 0:
            self._restart_stream(staged, node)
        return staged

    def _restart_stream(self, staged: Staged, node: Node) -> None:
        """The copy is empty: what is written now may stream (any earlier stream stops)."""
        self.staged.stop_stream(staged, "the file was truncated")
        if node.source_id is not None and node.remote_path is not None and stores_pieces(
                self._backend_of(node.source_id)):
            staged.stream_to = (node.source_id, node.remote_path)

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

    def discard(self, node_id: int) -> None:
        """The file was deleted: its pending uploads and staged copy go too."""
        files = self.uploader.drop_rows(self.tree.node(node_id), node_id)
        self.staged.discard(node_id, files)
