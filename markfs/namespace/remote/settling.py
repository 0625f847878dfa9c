"""What an upload's bytes do not carry: modes, owners and times set on a file while it
was staged (kept in the catalog, given to the storage with the upload or right after it
lands), and the times of folders whose files were still uploading when they were set.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from dataclasses import replace

from markfs.backends.base import (
    KEPT_GID,
    KEPT_MODE,
    KEPT_UID,
    Backend,
    Entry,
    FileAttrs,
    keeps_metadata,
)
from markfs.catalog import nodes
from markfs.catalog.journals.uploads import Upload
from markfs.errors import FsError
from markfs.model import Node
from markfs.namespace.remote.staged import StagedFiles
from markfs.namespace.tree import Tree
from markfs.namespace.workers import IoRunner

log = logging.getLogger(__name__)
UPLOAD_TIMEOUT_S = 3600.0  # a whole upload; a stall is caught by socket timeouts

Times = tuple[int | None, int | None]  # (atime, mtime) in ns; None: left as it is


class Settling:
    """The attributes of files and folders whose uploads are staged or under way."""

    def __init__(self, tree: Tree, staged: StagedFiles, upload_io: IoRunner,
                 backend_of: Callable[[int], Backend], io_timeout: float) -> None:
        self.tree, self.staged, self.io_timeout = tree, staged, io_timeout
        self._upload_io = upload_io
        self._backend_of = backend_of
        # folder id -> times to set again once the uploads below it have landed (an
        # entry leaves when they are set, or with its folder)
        self._folder_times: dict[int, Times] = {}
        self._setting_times: set[int] = set()  # folders whose times are being set now
        # told when a folder's times changed on its source (the kernel drops its copy)
        self.on_changed: Callable[[int], None] = lambda node_id: None

    def staged_attrs(self, node: Node, mode: int | None, times: Times | None,
                     owner: tuple[int | None, int | None] | None = None) -> None:
        """chmod/utime (and, where the storage keeps owners as metadata, chown) of a file
        whose content is not on its storage yet: kept in the catalog now, given to the
        storage with the upload or when it lands (`settled`)."""
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

    async def settled(self, row: Upload, entry: Entry) -> Entry:
        """`_settle` until no chmod/utime came while it ran (rsync sets mode and times
        right after close, while the upload runs): the uploader's finish follows with no
        wait in between, so none is lost."""
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
        if node is None or not backend.scheme.keeps_modes:
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

    # -- folders -----------------------------------------------------------------------

    def folder_times_later(self, folder_id: int, times: Times) -> None:
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

    def _store_folder_times(self, folder_id: int, times: Times) -> None:
        changes = {k: v for k, v in (("atime_ns", times[0]), ("mtime_ns", times[1]))
                   if v is not None}
        with self.tree.transaction() as txn:
            nodes.update_node(txn, folder_id, **changes)

    def folders_waiting(self) -> bool:
        return bool(self._folder_times)

    async def set_folder_times(self) -> None:
        """Folders whose uploads below have all landed get their times again (the entry
        stays, and keeps the catalog's times, until the server has them)."""
        for folder_id, times in list(self._folder_times.items()):
            if self.staged.below(folder_id) or folder_id in self._setting_times:
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


def has_times(entry: Entry, times: Times) -> bool:
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


def folder_keeps(entry: Entry, attrs: FileAttrs, known: Node | None = None) -> Entry:
    """A folder's entry with the attributes set on it that its storage did not keep
    (SeaweedFS keeps no metadata on folder markers): the catalog keeps them then, over
    what it kept before (`known`), for the mounts of this data directory."""
    if holds(entry, attrs):
        return entry
    if known is not None:
        entry = replace(entry, mode=known.mode, uid=known.uid, gid=known.gid,
                        mtime_ns=known.mtime_ns, meta_kept=known.meta_kept)
    asked = ((KEPT_MODE if attrs.mode is not None else 0)
             | (KEPT_UID if attrs.uid is not None else 0)
             | (KEPT_GID if attrs.gid is not None else 0))
    return replace(
        entry, mode=entry.mode if attrs.mode is None else stat.S_IFDIR | stat.S_IMODE(attrs.mode),
        uid=entry.uid if attrs.uid is None else attrs.uid,
        gid=entry.gid if attrs.gid is None else attrs.gid,
        mtime_ns=entry.mtime_ns if attrs.mtime_ns is None else attrs.mtime_ns,
        meta_kept=(entry.meta_kept or 0) | asked)
