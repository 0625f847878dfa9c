"""Reading remote files through the content cache: chunks fetched by streamed runs.

A read is served chunk by chunk (`CHUNK_SIZE`) from the content cache. A miss
starts a streamed run in the background — one request over up to STREAM_CHUNKS
chunks for a sequential reader, one chunk for a random one — and each chunk is
usable as soon as it arrived: readers take it from memory (`fresh`) while it is
being hashed and written into the cache by another worker, so storing a chunk
never delays the reader nor the download of the next one. A reader waits for its
chunk only while the run makes progress within `io_timeout` (a stall is EIO, not a
wait), and a chunk that just failed fails the kernel's immediate retry alike.
Sequential readers keep the next run on its way (read-ahead). Runs live in this
reader's own task group.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from markfs.backends.base import Backend
from markfs.cache.content import CHUNK_SIZE, ContentCache, chunk_name
from markfs.errors import FsError
from markfs.identity import ContentIdentity
from markfs.metrics import METRICS
from markfs.model import Node
from markfs.namespace.workers import IoRunner

log = logging.getLogger(__name__)
READ_AHEAD_CHUNKS = 2  # start the next streamed run this many chunks ahead
FAILURE_FRESH_S = 1.0  # a chunk that failed this recently fails again without a request
READERS_TRACKED = 4096  # files whose last chunk read is kept (sequential-read detection)
STREAM_CHUNKS = 16  # chunks one streamed request covers for sequential reads (128 MiB)
STREAM_TIMEOUT_S = 3600.0  # a whole run; a stall is caught by socket timeouts (io_timeout)


class OpenChunks:
    """Descriptors of the chunks read last, so that a warm read is an `fstat` and a
    `pread` on the loop instead of a worker-thread hop, index lookups and an open and
    close per request. A descriptor is kept at most MAX_AGE_S: opening again records
    the chunk's use, which eviction goes by."""

    LIMIT = 64
    MAX_AGE_S = 20.0

    def __init__(self) -> None:
        self._fds: OrderedDict[bytes, tuple[int, bytes, float]] = OrderedDict()

    def get(self, name: bytes) -> tuple[int, bytes] | None:
        entry = self._fds.get(name)
        if entry is None:
            return None
        fd, digest, opened = entry
        if time.monotonic() - opened > self.MAX_AGE_S:
            self.drop(name)
            return None
        self._fds.move_to_end(name)
        return fd, digest

    def add(self, name: bytes, fd: int, digest: bytes) -> None:
        self.drop(name)
        self._fds[name] = (fd, digest, time.monotonic())
        while len(self._fds) > self.LIMIT:
            os.close(self._fds.popitem(last=False)[1][0])

    def drop(self, name: bytes) -> None:
        entry = self._fds.pop(name, None)
        if entry is not None:
            os.close(entry[0])

    def close_all(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1][0])


def _close_if_open(opened: tuple[int, bytes] | None) -> None:
    if opened is not None:
        os.close(opened[0])


@dataclass
class _Run:
    """One streamed request for a run of chunks."""

    progress: float = field(default_factory=time.monotonic)  # last bytes (worker thread)


@dataclass
class _Fetch:
    """One chunk on its way into the content cache."""

    run: _Run
    done: trio.Event = field(default_factory=trio.Event)
    error: FsError | None = None  # why it never arrived


class ChunkReader:
    """Reads of remote files' current versions, through the content cache."""

    def __init__(self, cache: ContentCache, io: IoRunner,
                 backend_of: Callable[[int], Backend], io_timeout: float) -> None:
        self.cache = cache
        self.io_timeout = io_timeout
        self._io = io  # Namespace._io: worker thread with deadline, OSError -> FsError
        self._backend_of = backend_of
        self._fetching: dict[bytes, _Fetch] = {}  # chunk name -> its download
        self._open = OpenChunks()
        # chunk -> its last failure, oldest first (they leave once stale)
        self._chunk_failures: OrderedDict[bytes, tuple[float, FsError]] = OrderedDict()
        # node id -> last chunk read (read-ahead), the most recently read files only
        self._last_chunk: OrderedDict[int, int] = OrderedDict()
        self.fresh: dict[bytes, bytes] = {}  # chunks arrived, on their way into the cache
        self._nursery: trio.Nursery | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The task group of streamed runs, for as long as the mount lives."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._open.close_all()

    async def read(self, node: Node, offset: int, size: int) -> bytes:
        if offset >= node.size or size <= 0:
            return b""
        size = min(size, node.size - offset)
        first, last = offset // CHUNK_SIZE, (offset + size - 1) // CHUNK_SIZE
        parts = [await self.chunk_slice(node, index, offset, size) for index in
                 range(first, last + 1)]
        self._maybe_read_ahead(node, first, last)
        return b"".join(parts)

    def _etag(self, node: Node) -> bytes:
        return ContentIdentity(node.etag, node.size, node.mtime_ns).version

    def _name(self, node: Node, index: int) -> bytes:
        source_id, path = node.source_id or 0, node.remote_path or b""
        return chunk_name(source_id, path, self._etag(node), index,
                          self.cache.epoch(source_id, path))

    async def chunk_slice(self, node: Node, index: int, offset: int, size: int) -> bytes:
        """The part of chunk `index` that falls in [offset, offset+size)."""
        base = index * CHUNK_SIZE
        start = max(offset, base) - base
        end = min(offset + size, base + CHUNK_SIZE) - base
        name = self._name(node, index)
        for attempt in range(3):
            fresh = self.fresh.get(name)
            if fresh is not None:
                (METRICS.cache_hits if attempt == 0 else METRICS.cache_misses).inc()
                return fresh[start:end]
            data = await self._read_cached(name, start, end - start)
            if data is not None:
                (METRICS.cache_hits if attempt == 0 else METRICS.cache_misses).inc()
                return data
            run = STREAM_CHUNKS if self._sequential(node.id, index) else 1
            await self._fetch_run(node, index, run)
        raise FsError(errno.EIO, "chunk vanished from the cache while being read")

    async def _read_cached(self, name: bytes, start: int, length: int) -> bytes | None:
        """From a descriptor kept open (checked against a blob changed in place), else
        one opened in a worker thread; None if the chunk is not cached."""
        opened = self._open.get(name)
        if opened is not None and not self.cache.unchanged(opened[1], opened[0]):
            self._open.drop(name)  # reopening verifies it again (and drops it if damaged)
            opened = None
        if opened is None:
            opened = await self._io(self.cache.open_chunk, name, release=_close_if_open)
            if opened is None:
                return None
            self._open.add(name, *opened)
        try:  # a local read of at most one request: short enough for the loop
            return os.pread(opened[0], length, start)
        except OSError as exc:
            raise FsError.from_os(exc) from None

    def _sequential(self, node_id: int, index: int) -> bool:
        previous = self._last_chunk.get(node_id)
        return index == 0 or (previous is not None and index in (previous, previous + 1))

    async def _fetch_run(self, node: Node, first: int, count: int) -> None:
        """Until chunk `first` is cached: its download is started if none is on its way
        (a run of up to `count` chunks), and waited for at most `io_timeout` — a
        stalled stream gives EIO like any backend call that does not answer."""
        name = self._name(node, first)
        failed = self._chunk_failures.get(name)
        if failed is not None and time.monotonic() - failed[0] < FAILURE_FRESH_S:
            raise failed[1]  # the kernel's retry of a read that just failed: fail alike
        fetch = self._fetching.get(name) or self._start_run(node, first, count)
        while not fetch.done.is_set():  # (a stream that makes progress is waited for)
            remaining = fetch.run.progress + self.io_timeout - time.monotonic()
            if remaining <= 0:
                log.warning("chunk %d of %r: no data for %.1fs: answering EIO", first,
                            node.remote_path, self.io_timeout)
                error = FsError(errno.EIO, "backend did not answer in time")
                self._remember_failure(name, error)
                raise error
            with trio.move_on_after(remaining):
                await fetch.done.wait()
        if fetch.error is not None:
            self._remember_failure(name, fetch.error)
            raise fetch.error
        self._chunk_failures.pop(name, None)

    def _remember_failure(self, name: bytes, error: FsError) -> None:
        """Kept while fresh: stale ones leave from the front, so a failure costs the same
        however many came before."""
        now = time.monotonic()
        self._chunk_failures[name] = (now, error)
        self._chunk_failures.move_to_end(name)
        while self._chunk_failures:
            oldest, (at, _error) = next(iter(self._chunk_failures.items()))
            if now - at < FAILURE_FRESH_S:
                break
            del self._chunk_failures[oldest]

    def _start_run(self, node: Node, first: int, count: int) -> _Fetch:
        """Claim chunks first.. (up to `count`, stopping at one already cached or being
        fetched) and download them with one streamed request, in the background; each
        chunk is usable as soon as it arrived."""
        claimed: list[tuple[int, bytes]] = []
        run = _Run()
        final = (node.size - 1) // CHUNK_SIZE
        for index in range(first, min(first + count - 1, final) + 1):
            name = self._name(node, index)
            if name in self._fetching or (claimed and self._have(name)):
                break
            self._fetching[name] = _Fetch(run)
            claimed.append((index, name))
        head = self._fetching[claimed[0][1]]
        assert self._nursery is not None, "the reader's task group runs while mounted"
        self._nursery.start_soon(self._stream_run, node, claimed, run)
        return head

    async def _stream_run(self, node: Node, claimed: list[tuple[int, bytes]],
                          run: _Run) -> None:
        error: FsError | None = None
        try:
            await self._io(self._stream_into_cache, node, claimed, run,
                           trio.lowlevel.current_trio_token(), timeout=STREAM_TIMEOUT_S)
        except FsError as exc:
            error = exc
        except Exception as exc:  # a reader sees it as EIO; the mount goes on
            log.warning("reading %r: %s", node.remote_path, exc)
            error = FsError(errno.EIO, str(exc))
        finally:
            for _index, name in claimed:  # chunks that never arrived
                self._chunk_ready(name, error)

    def _stream_into_cache(self, node: Node, claimed: list[tuple[int, bytes]], run: _Run,
                           token: trio.lowlevel.TrioToken) -> None:
        """In a worker thread: one request for the claimed chunks, cached one by one."""
        backend = self._backend_of(node.source_id or 0)
        offset = claimed[0][0] * CHUNK_SIZE
        names = iter([name for _index, name in claimed])
        name = next(names)
        buffer = bytearray()
        for piece in backend.read_stream(node.remote_path or b"", offset,
                                         len(claimed) * CHUNK_SIZE, node.etag):
            run.progress = time.monotonic()
            buffer += piece
            while len(buffer) >= CHUNK_SIZE:
                chunk = bytes(buffer[:CHUNK_SIZE])
                del buffer[:CHUNK_SIZE]
                trio.from_thread.run_sync(self._arrived, name, chunk, trio_token=token)
                following = next(names, None)
                if following is None:
                    return
                name = following
        if buffer:  # the file's last, short chunk
            trio.from_thread.run_sync(self._arrived, name, bytes(buffer), trio_token=token)

    def _have(self, name: bytes) -> bool:
        return name in self.fresh or self.cache.contains(name)

    def _arrived(self, name: bytes, data: bytes) -> None:
        """A chunk arrived: readers may take it now; it goes into the cache meanwhile."""
        self.fresh[name] = data
        self._chunk_ready(name, None)
        assert self._nursery is not None
        self._nursery.start_soon(self._store, name, data)

    async def _store(self, name: bytes, data: bytes) -> None:
        try:
            # shielded: an unmount waits for it, or the process could end between the
            # blob's file and its index entry (a blob the cache no longer knows of)
            with trio.CancelScope(shield=True):
                await self._io(self.cache.put, name, data)
        except FsError as exc:  # (a reader fetches it again)
            log.warning("could not cache a chunk: %s", exc)
        finally:
            self.fresh.pop(name, None)

    def _chunk_ready(self, name: bytes, error: FsError | None) -> None:
        fetch = self._fetching.pop(name, None)
        if fetch is not None:
            fetch.error = error
            fetch.done.set()

    def _maybe_read_ahead(self, node: Node, first: int, last: int) -> None:
        """Sequential readers: keep the next chunks cached or on their way."""
        sequential = self._sequential(node.id, first)
        self._last_chunk[node.id] = last
        self._last_chunk.move_to_end(node.id)
        if len(self._last_chunk) > READERS_TRACKED:
            self._last_chunk.popitem(last=False)
        if self._nursery is None or not sequential:
            return
        final = (node.size - 1) // CHUNK_SIZE
        for index in range(last + 1, min(last + READ_AHEAD_CHUNKS, final) + 1):
            name = self._name(node, index)
            if name in self._fetching:
                return  # a run is on its way
            if not self._have(name):
                self._start_run(node, index, STREAM_CHUNKS)  # errors: the reader's to see
                return

