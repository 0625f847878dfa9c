"""Keeping the sources answering for the life of a mount: a call to one that does not
answer fails at once (`backend`), those slow to connect are connected ahead of their
first use, and those that stopped answering are probed until they answer again (then
their waiting uploads go at once)."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import trio

from markfs.backends.base import Backend
from markfs.errors import FsError, SourceShut
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.workers import IoRunner

log = logging.getLogger(__name__)
PROBE_EVERY_S = 2.0  # how often a source that is not ok is asked whether it answers


class SourceUpkeep:
    def __init__(self, sources: SourceSet, io: IoRunner, back: Callable[[], None]) -> None:
        self.sources = sources
        self._io = io
        self._back = back  # a source answers again (its waiting uploads may go)

    def backend(self, source_id: int) -> Backend:
        """The backend for a call to a source; EIO at once while the source is not ok
        (the probe, not each caller, finds out when it answers again)."""
        shut = self.sources.shut(source_id)
        if shut is not None:
            raise SourceShut(errno.EIO, f"source {self.sources.name(source_id)} is "
                             f"{shut.state} ({shut.failure or shut.last_error}): failing at "
                             "once until it answers again", refused=shut.state == "refused")
        backend = self.sources.backend(source_id)
        if backend is None:
            raise FsError(errno.ENOENT, f"source {source_id} is gone")
        return backend

    async def connect_ahead(self) -> None:
        """Connect to the sources slow to connect ahead of their first use, all at once."""
        async with trio.open_nursery() as nursery:
            for backend in self.sources.slow_to_connect():
                nursery.start_soon(self._connect, backend)

    async def _connect(self, backend: Backend) -> None:
        try:
            await self._io(backend.connect_ahead)
        except FsError as exc:  # the first request will say it again, to whoever asked
            log.info("connecting ahead failed: %s", exc.strerror)

    async def probe(self) -> None:
        """For the life of the mount: every `PROBE_EVERY_S`, ask each source that is not
        ok whether it answers again (its whole listing of the root, bounded by
        io_timeout); one that does is ok, and its waiting uploads go at once."""
        async with trio.open_nursery() as nursery:
            probing: set[int] = set()
            while True:
                await trio.sleep(PROBE_EVERY_S)
                for source_id in self.sources.shut_ids():
                    if source_id not in probing:
                        probing.add(source_id)
                        nursery.start_soon(self._probe, source_id, probing)

    async def _probe(self, source_id: int, probing: set[int]) -> None:
        """The first page of the source's root listing: an answer makes it ok; a failure
        says what it is now (unreachable, or refused for good: the bucket or folder
        gone)."""
        try:
            backend = self.sources.backend(source_id)
            if backend is not None:
                await self._io(_first_page, backend)
                self.sources.answered(source_id)
                self._back()
        except FsError as exc:
            self.sources.answered(source_id, exc)
        finally:
            probing.discard(source_id)


def _first_page(backend: Backend) -> None:
    next(iter(backend.list_pages(b"")), None)
