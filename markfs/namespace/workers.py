"""Worker threads for blocking calls, each under a deadline.

The trio loop must never wait on a backend: every blocking call runs in a worker
thread (at most `threads` at once). A call that has not returned by its
deadline is abandoned and the request fails with EIO, so a dead backend never
leaves a shell hanging; what it returns later (an open file, say) is released,
so it pins nothing. The one exception is work that cannot wait on anything but
this machine's kernel: a method its object lists in `inline_calls` (the metadata
calls of a local source on a local-disk filesystem, `backends/local.py`) runs on
the loop — a hop would cost ten times the call.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Generic, Protocol, TypeVar

import trio

from markfs.catalog.db import Catalog
from markfs.catalog.engines.pgpools import READERS, WRITERS
from markfs.errors import CatalogConflict, FsError
from markfs.metrics import METRICS

log = logging.getLogger(__name__)
T = TypeVar("T")
# a write transaction the server ended for another (a deadlock, a serialization failure)
# is run again this many times in all, after 5, 10, 20, 40 ms (± half): then EIO
CONFLICT_TRIES = 5
CONFLICT_BACKOFF_S = 0.005


class IoRunner(Protocol):
    """Runs a blocking call in a worker thread under a deadline (`WorkerPool.run`)."""

    async def __call__(self, fn: Callable[..., T], *args: object,
                       timeout: float | None = None,
                       release: Callable[[T], object] | None = None) -> T: ...


class WorkerPool:
    def __init__(self, threads: int, default_timeout: float) -> None:
        self._limiter = trio.CapacityLimiter(threads)
        self.default_timeout = default_timeout

    async def run(self, fn: Callable[..., T], *args: object, timeout: float | None = None,
                  release: Callable[[T], object] | None = None) -> T:
        """Run a blocking backend call in a worker thread; OSError becomes FsError.

        A call that has not returned after the timeout is abandoned (its thread
        finishes on its own) and the request fails with EIO: a dead backend must
        never leave a shell hanging. `release` disposes of what an abandoned call
        returns late (an open file must not leak and pin the backend).
        """
        if _inline(fn):  # microsecond work of a local disk: no hop (see INLINE_CALLS)
            try:
                return fn(*args)
            except FsError:
                raise
            except OSError as exc:
                raise FsError.from_os(exc) from None
        limit = timeout or self.default_timeout
        METRICS.thread_hops.labels(getattr(fn, "__name__", "call")).inc()
        call = _Abandonable(partial(fn, *args), release)
        with trio.move_on_after(limit):
            try:
                return await trio.to_thread.run_sync(
                    call.run, limiter=self._limiter, abandon_on_cancel=True)
            except FsError:
                raise
            except OSError as exc:
                raise FsError.from_os(exc) from None
        call.abandon()
        log.warning("%s timed out after %.1fs: answering EIO",
                    getattr(fn, "__name__", fn), limit)
        raise FsError(errno.EIO, "backend did not answer in time")


class CatalogRunner:
    """Runs the namespace's catalog work off the trio loop when its catalog is a server's.

    There every statement is a network round trip that may stall (a server paused, a
    network cut without a reset): the work runs in a worker thread under the deadline
    of every backend call — work that may write (a whole write transaction) up to
    `WRITERS` at once: one holding some folders on a connection of the writer pool,
    one holding the whole catalog on the catalog's own connection, one at a time;
    work that only reads (`read`: a readdir's
    page, xattrs, statfs, status.json, the journal's rows) up to `READERS` at once on
    the catalog's read pool, never behind a write. Past the deadline the request fails
    with EIO and the work finishes on its own; the next waits for it, so every caller
    gets EIO in bounded time, and requests that need no catalog (the mirror, the kernel,
    a local disk) are answered meanwhile. On SQLite the work runs inline: µs on a local
    file, where a hop would cost ten times the work. Work taken while this host is
    fenced (its session in a shared catalog may have lapsed) writes nothing, even if
    the session is renewed before the work reaches the catalog (`Catalog.refusing`).
    """

    def __init__(self, catalog: Catalog | None = None, timeout: float = 0.0) -> None:
        self.catalog = catalog
        self.off_loop = catalog is not None and catalog.engine.shared
        self.timeout = timeout
        # (the catalog's connection and its writer pool's: a transaction that holds the
        # whole catalog waits in its thread for the one before it, as on SQLite)
        self._writes = trio.CapacityLimiter(WRITERS)
        self._reads = trio.CapacityLimiter(READERS)  # (its read pool's)

    async def __call__(self, fn: Callable[..., T], *args: object) -> T:
        """Work that may write: one call at a time."""
        work = partial(fn, *args)
        if self.catalog is not None and self.catalog.fenced():
            # taken while this host is fenced: its writes fail even if the session is
            # renewed before they reach the catalog (the session's thread may win)
            work = partial(self.catalog.refusing, work)
        return await self._run(work, self._writes, fn, "write")

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """Work that only reads: on a server's catalog through its read pool, beside the
        writes (never behind one, of this host or another's: `Catalog.reading`)."""
        work = partial(fn, *args)
        if self.off_loop and self.catalog is not None:
            work = partial(_reading, self.catalog, work)
        return await self._run(work, self._reads, fn, "read")

    async def _run(self, work: Callable[[], T], limiter: trio.CapacityLimiter,
                   fn: Callable[..., object], kind: str) -> T:
        if not self.off_loop:
            return work()
        METRICS.thread_hops.labels("catalog").inc()
        with trio.move_on_after(self.timeout):
            return await _again_on_conflict(work, limiter, fn)
        METRICS.catalog_timeouts.labels(kind).inc()
        log.warning("%s: the catalog's server did not answer in %.1fs: answering EIO",
                    getattr(fn, "__name__", fn), self.timeout)
        raise FsError(errno.EIO, "the catalog's server did not answer in time")


@contextmanager
def catalog_outage(doing: str) -> Iterator[None]:
    """A catalog that does not answer (EIO: its server restarting or stalled) stops what
    `doing` names (a round of a daemon's loop, which looks again within a second; the
    drain at unmount, whose rows the journal keeps), not the daemon."""
    try:
        yield
    except FsError as exc:
        if exc.code != errno.EIO:
            raise
        log.warning("%s: %s", doing, exc.strerror)


async def _again_on_conflict(work: Callable[[], T], limiter: trio.CapacityLimiter,
                             fn: Callable[..., object]) -> T:
    """`work` in a worker thread; run again, after a back-off, while the catalog's server
    ends its transaction to let another go on (`CatalogConflict`: nothing of it
    committed — the runner's work is catalog work, whole transactions, so running it
    again is what a retry is), up to `CONFLICT_TRIES` times (then EIO)."""
    for attempt in range(CONFLICT_TRIES):
        try:
            return await trio.to_thread.run_sync(work, limiter=limiter, abandon_on_cancel=True)
        except CatalogConflict as exc:
            if attempt + 1 == CONFLICT_TRIES:
                raise
            METRICS.catalog_retries.inc()
            log.info("%s: %s; again", getattr(fn, "__name__", fn), exc.strerror)
            await trio.sleep(CONFLICT_BACKOFF_S * 2 ** attempt * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _reading(catalog: Catalog, work: Callable[[], T]) -> T:
    with catalog.reading():
        return work()


def _inline(fn: Callable[..., object]) -> bool:
    """Is `fn` a method its object says to run on the loop (`inline_calls`: a backend on
    a local disk, whose metadata calls take microseconds)?"""
    owner = getattr(fn, "__self__", None)
    return owner is not None and getattr(fn, "__name__", "") in getattr(
        owner, "inline_calls", ())


class _Abandonable(Generic[T]):
    """A call whose result, should it arrive after its caller gave up, is released."""

    def __init__(self, fn: Callable[[], T], release: Callable[[T], object] | None) -> None:
        self._fn, self._release = fn, release
        self._lock = threading.Lock()
        self._abandoned = False
        self._results: list[T] = []

    def run(self) -> T:
        result = self._fn()
        with self._lock:
            if not self._abandoned:
                self._results.append(result)
                return result
        self._dispose(result)
        return result

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            late, self._results = self._results, []
        for result in late:  # finished, but trio dropped the result when it cancelled
            self._dispose(result)

    def _dispose(self, result: T) -> None:
        if self._release is not None:
            try:
                self._release(result)
            except OSError as exc:
                log.warning("could not release an abandoned result: %s", exc)
