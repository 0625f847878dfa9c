"""Noticing changes made to local sources behind the mount's back (inotify via watchdog).

Watchdog's observer thread hands each changed path to the trio loop with
`run_sync_soon`; a trio task gathers them for a short moment (editors and `cp`
fire bursts) and re-checks each path once through `Namespace.refresh_path`,
which updates the catalog and tells the kernel to drop what it cached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import trio
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from markfs.namespace.ops import Namespace

log = logging.getLogger(__name__)
DEBOUNCE_S = 0.05
# What a change is (every kind but opens and closes without a write: the kernel is not
# asked for those at all, where each would cost watchdog's threads ~70 µs of Python
# holding the GIL — every file the mount reads opens one)
CHANGES = [DirAttribEvent, DirCreatedEvent, DirDeletedEvent, DirModifiedEvent, DirMovedEvent,
           EventsLostEvent, FileAttribEvent, FileClosedEvent, FileCreatedEvent,
           FileDeletedEvent, FileModifiedEvent, FileMovedEvent]


class _StopRaceFilter(logging.Filter):
    """watchdog logs an ERROR when its inotify thread is stopped mid-read; nothing is lost."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRaceFilter())


class _OverflowAlarm(logging.Filter):
    """watchdog's only sign that inotify dropped events is this warning (its emitter
    hides the callback): every watcher is told, so listings expire by TTL again."""

    def __init__(self) -> None:
        super().__init__()
        self.watchers: set[LocalWatcher] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if "queue overflowed" in record.getMessage():
            for watcher in list(self.watchers):
                watcher.lost_events()
        return True


_OVERFLOW = _OverflowAlarm()
for _name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
    logging.getLogger(_name).addFilter(_OVERFLOW)


class _Forwarder(FileSystemEventHandler):  # type: ignore[misc]
    def __init__(self, watcher: LocalWatcher, source_id: int, root: bytes) -> None:
        self.watcher, self.source_id, self.root = watcher, source_id, root

    def _relative(self, path: str | bytes) -> bytes | None:
        full = os.fsencode(path)
        if full == self.root:
            return b""
        if not full.startswith(self.root + b"/"):
            return None
        return full[len(self.root) + 1 :]

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, EventsLostEvent):
            self.watcher.lost_events()
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            rel = self._relative(path) if path else None
            if rel:
                self.watcher.post(self.source_id, rel)


class LocalWatcher:
    """Watches every local source's directory for the life of a mount."""

    def __init__(self, namespace: Namespace, roots: dict[int, Path]) -> None:
        self.namespace = namespace
        self.roots = roots
        self._pending: set[tuple[int, bytes]] = set()
        # posted by the observer thread, taken by the loop: (source id, path) in order
        self._incoming: list[tuple[int, bytes]] = []
        self._incoming_lock = threading.Lock()
        self._wakeup = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._observer = Observer()

    def post(self, source_id: int, rel: bytes) -> None:
        """Called on the observer thread. The loop is woken once per burst, not per
        event (a `cp -r` or `tar -x` makes a dozen events per file)."""
        with self._incoming_lock:
            wake = not self._incoming
            self._incoming.append((source_id, rel))
        if wake:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._take_incoming)

    def lost_events(self) -> None:
        """Called on the observer thread."""
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self.namespace.watch_lost)

    def _take_incoming(self) -> None:
        with self._incoming_lock:
            incoming, self._incoming = self._incoming, []
        self._pending.update(incoming)
        self._wakeup.set()

    def _start(self) -> None:
        """Set up inotify watches (walks every local tree: done in a worker thread)."""
        for source_id, root in self.roots.items():
            handler = _Forwarder(self, source_id, os.fsencode(root))
            self._observer.schedule(handler, str(root), recursive=True, event_filter=CHANGES)
        self._observer.daemon = True
        self._observer.start()

    async def run(self) -> None:
        try:
            await trio.to_thread.run_sync(self._start)
        except OSError as exc:  # e.g. the inotify watch limit: listings still expire by TTL
            log.warning("not watching local sources for outside changes: %s", exc)
            return
        _OVERFLOW.watchers.add(self)
        self.namespace.watching(list(self.roots))
        try:
            while True:
                await self._wakeup.wait()
                await trio.sleep(DEBOUNCE_S)
                self._wakeup = trio.Event()
                batch, self._pending = self._pending, set()
                for source_id, rel in sorted(batch, key=lambda item: item[1].count(b"/")):
                    await self._refresh(source_id, rel)
        finally:
            _OVERFLOW.watchers.discard(self)
            self.namespace.watch_lost()
            self._observer.stop()

    async def _refresh(self, source_id: int, rel: bytes) -> None:
        try:
            await self.namespace.refresh_path(source_id, rel)
        except Exception as exc:  # one bad path must not stop the watcher
            log.warning("could not re-check %r in source %d: %s", rel, source_id, exc)
