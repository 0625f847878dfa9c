"""Running one mount: open the tree, mount through the kernel, serve until unmounted."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from functools import partial
from pathlib import Path

import pyfuse3
import trio

from markfs.config import DataDir, MountConfig, ScanConfig, load_mount_config, load_scan_config
from markfs.errors import CatalogDamaged, UserError
from markfs.fs.adapter import KernelCacheNotifier, MarkFs
from markfs.namespace.control import MountInfo
from markfs.namespace.ops import Namespace
from markfs.namespace.sources import SourceSet
from markfs.namespace.tree import Tree
from markfs.namespace.watch import LocalWatcher
from markfs.runtime import register, unregister
from markfs.scan.schedule import check_schedule, run_schedule

log = logging.getLogger(__name__)


def fuse_options(allow_other: bool) -> set[str]:
    options = set(pyfuse3.default_options) | {"fsname=markfs", "subtype=markfs"}
    if allow_other:
        options.add("allow_other")
    return options


def set_read_ahead(mountpoint: Path, kb: int) -> None:
    """Raise the kernel's read-ahead of this mount (a root-only file in /sys; without
    it the kernel's default stays). Only after the INIT answer: the kernel lowers it
    to what that answer says. Found through mountinfo, not a stat of the mount point,
    which would ask this very process while it is busy answering."""
    if kb <= 0:
        return
    # (the parent resolved: resolving the mount point itself would stat it)
    target = os.path.join(os.path.realpath(mountpoint.parent), mountpoint.name)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        devices = [fields[2] for fields in map(str.split, f)
                   if _unescape(fields[4]) == target]
    if not devices:
        return
    try:
        Path(f"/sys/class/bdi/{devices[-1]}/read_ahead_kb").write_text(str(kb))
    except OSError as exc:
        log.info("kernel read-ahead left at its default: %s", exc.strerror)


def _unescape(field: str) -> str:
    """A path as mountinfo writes it (space, tab, newline, backslash as octal)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def serve(data_dir: DataDir, mountpoint: Path, root: str, allow_other: bool) -> None:
    """Mount and serve in this process until the mount goes away or a signal arrives."""
    if not mountpoint.is_dir():
        raise UserError(f"mount point is not a directory: {mountpoint}")
    config = load_mount_config(data_dir)
    scan_config = load_scan_config(data_dir)
    check_schedule(scan_config.schedule)
    tree = Tree.open(data_dir, walk=True)
    try:
        problems = tree.catalog.integrity_problems(quick=True)
        if problems:  # refused now, rather than failing requests later
            raise CatalogDamaged(f"the catalog {data_dir.catalog} is damaged ({problems[0]}); "
                                 "run: markfs fsck --repair (it salvages what SQLite can read)")
        root_node = tree.resolve(root)
        if not root_node.is_dir:
            raise UserError(f"--root must name a folder: {root}")
        info = MountInfo(str(mountpoint), "/" + root.strip("/"), time.time())
        namespace = Namespace(tree, SourceSet(tree, config.io_timeout), config, info, data_dir)
        ops = MarkFs(namespace, root_node.id, config)
        try:
            pyfuse3.init(ops, str(mountpoint), fuse_options(allow_other))
        except RuntimeError as exc:
            raise UserError(f"cannot mount on {mountpoint}: {exc}") from None
        ops.after_init = partial(set_read_ahead, mountpoint, config.read_ahead_kb)
        notifier = KernelCacheNotifier(ops._ino)
        namespace.notifier = notifier
        register(data_dir, mountpoint, info.root)
        log.info("mounted %s on %s (root %s)", data_dir.root, mountpoint, info.root)
        try:
            trio.run(_serve, namespace, config, scan_config)
        finally:
            notifier.stop()
            pyfuse3.close(unmount=True)
            unregister(data_dir, mountpoint)
            namespace.close()
            log.info("unmounted %s", mountpoint)
    finally:
        tree.close()


async def _serve(namespace: Namespace, config: MountConfig, scan_config: ScanConfig) -> None:
    namespace.remote.resume()
    drain = trio.CancelScope()  # a signal ends the drain: the journal keeps what is left
    unmounted = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(namespace.remote.reader.run)
        await nursery.start(namespace.remote.run)
        nursery.start_soon(_stop_on_signal, drain, unmounted)
        nursery.start_soon(run_schedule, namespace.data_dir.root, scan_config.schedule,
                           scan_config.refresh)
        nursery.start_soon(namespace.finish_interrupted_renames)
        nursery.start_soon(namespace.connect_sources)
        if config.watch_local:
            roots = namespace.sources.local_roots()
            if roots:
                nursery.start_soon(LocalWatcher(namespace, roots).run)
        await pyfuse3.main(max_tasks=config.max_tasks)
        unmounted.set()
        with drain:
            await _drain_uploads(namespace, config.drain_timeout)
        left = namespace.remote.pending()[0]
        if left:
            log.warning("%d upload(s) still pending: they resume at the next mount", left)
        nursery.cancel_scope.cancel()


async def _drain_uploads(namespace: Namespace, timeout: float) -> None:
    """After unmount: finish this daemon's upload queue, up to `timeout`."""
    with trio.move_on_after(timeout):
        while (pending := namespace.remote.pending())[0]:
            log.info("unmounted; %d upload(s) (%d bytes) still to send", *pending)
            await trio.sleep(1.0)


async def _stop_on_signal(drain: trio.CancelScope, unmounted: trio.Event) -> None:
    """SIGTERM, SIGINT or SIGHUP: unmount now and end any drain (nothing is lost: the
    journal keeps pending uploads for the next start)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("signal %d: unmounting without waiting for uploads", signum)
            drain.cancel()
            if not unmounted.is_set():
                pyfuse3.terminate()
