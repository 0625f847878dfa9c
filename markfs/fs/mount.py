"""Running one mount: open the tree, mount through the kernel, serve until unmounted."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import signal
import sys
import time
from functools import partial
from pathlib import Path

import pyfuse3
import trio

from markfs import changefeed
from markfs.config import (
    BackupConfig,
    DataDir,
    MountConfig,
    OwnerOverride,
    ScanConfig,
    load_backup_config,
    load_metrics_config,
    load_mount_config,
    load_scan_config,
)
from markfs.errors import CatalogDamaged, FsError, UserError
from markfs.fs.adapter import KernelCacheNotifier, MarkFs
from markfs.fs.notify import ServiceNotifier
from markfs.metrics import METRICS
from markfs.namespace.control import MountInfo
from markfs.namespace.files.health import health_file
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.files.watch import LocalWatcher
from markfs.namespace.hosts.member import CatalogMember, join
from markfs.namespace.ops import Namespace
from markfs.namespace.tree import Tree
from markfs.namespace.workers import catalog_outage
from markfs.runtime import register, unregister
from markfs.scan.schedule import check_schedule, run_schedule

log = logging.getLogger(__name__)
METRICS_EVERY_S = 1.0  # how often gauges read from the catalog are brought up to date


def fuse_options(allow_other: bool, read_only: bool = False) -> set[str]:
    options = set(pyfuse3.default_options) | {"fsname=markfs", "subtype=markfs"}
    if allow_other:
        options.add("allow_other")
    if read_only:
        options.add("ro")  # the kernel refuses writes with EROFS before they reach us
    return options


def daemon_logging(data_dir: DataDir, config: MountConfig, to_stderr: bool) -> Path:
    """The daemon's log: DATA_DIR/logs/markfs.log, rotated by size; and stderr too when
    someone reads it (a terminal, a test, or systemd's journal for a unit's daemon).
    A daemon `markfs mount` started in the background logs to the file only."""
    data_dir.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir.logs / "markfs.log"
    rotating = logging.handlers.RotatingFileHandler(
        path, maxBytes=config.log_max_bytes, backupCount=config.log_keep, encoding="utf-8")
    handlers: list[logging.Handler] = [rotating]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return path


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


def serve(data_dir: DataDir, mountpoint: Path, root: str, allow_other: bool,
          read_only: bool = False, owner: OwnerOverride | None = None) -> None:
    """Mount and serve in this process until the mount goes away or a signal arrives."""
    if not mountpoint.is_dir():
        raise UserError(f"mount point is not a directory: {mountpoint}")
    config = (owner or OwnerOverride()).applied(load_mount_config(data_dir))
    scan_config = load_scan_config(data_dir)
    check_schedule(scan_config.schedule)
    backup_config = load_backup_config(data_dir)
    check_schedule(backup_config.schedule, "backup.schedule")
    metrics_listen = load_metrics_config(data_dir).listen
    tree = Tree.open(data_dir, walk=True)
    try:
        tree.ensure_layout()  # control files added since this catalog was made
        problems = tree.catalog.integrity_problems(quick=True)
        if problems:  # refused now, rather than failing requests later
            raise CatalogDamaged(f"the catalog {data_dir.catalog} is damaged ({problems[0]}); "
                                 "run: markfs fsck --repair (it salvages what SQLite can read)")
        root_node = tree.resolve(root)
        if not root_node.is_dir:
            raise UserError(f"--root must name a folder: {root}")
        info = MountInfo(str(mountpoint), "/" + root.strip("/"), time.time())
        sources = SourceSet(tree, config.io_timeout)
        sources.health.path = health_file(data_dir.run)  # for `markfs status`
        namespace = Namespace(tree, sources, config, info, data_dir)
        member = join(namespace, data_dir, config, str(mountpoint))
        if metrics_listen:
            METRICS.serve(metrics_listen)  # before mounting: an address in use fails the mount
        ops = MarkFs(namespace, root_node.id, config)
        try:
            pyfuse3.init(ops, str(mountpoint), fuse_options(allow_other, read_only))
        except RuntimeError as exc:
            raise UserError(f"cannot mount on {mountpoint}: {exc}") from None
        ops.after_init = partial(set_read_ahead, mountpoint, config.read_ahead_kb)
        notifier = KernelCacheNotifier(ops._ino)
        namespace.notifier = notifier
        # a command's change signal before the loop listens for it must not end us
        signal.signal(changefeed.SIGNAL, signal.SIG_IGN)
        register(data_dir, mountpoint, info.root)
        log.info("mounted %s on %s (root %s)", data_dir.root, mountpoint, info.root)
        try:
            trio.run(_serve, namespace, config, scan_config, backup_config, member)
        finally:
            if member is not None:
                member.session.end()
            notifier.stop()
            pyfuse3.close(unmount=True)
            unregister(data_dir, mountpoint)
            sources.health.remove()
            namespace.close()
            log.info("unmounted %s", mountpoint)
    finally:
        tree.close()


async def _serve(namespace: Namespace, config: MountConfig, scan_config: ScanConfig,
                 backup_config: BackupConfig, member: CatalogMember | None) -> None:
    drain = trio.CancelScope()  # a signal ends the drain: the journal keeps what is left
    unmounted = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(namespace.run)
        nursery.start_soon(_stop_on_signal, drain, unmounted)
        nursery.start_soon(_follow_changes, namespace)
        scans = [["scan"], ["refresh"]] if scan_config.refresh else [["scan"]]
        nursery.start_soon(run_schedule, namespace.data_dir.root, scan_config.schedule, scans)
        if member is not None:  # (a shared catalog's backups are its server's: pg_dump)
            nursery.start_soon(member.run)
        else:
            nursery.start_soon(run_schedule, namespace.data_dir.root, backup_config.schedule,
                               [["backup"]])
        nursery.start_soon(_refresh_gauges, namespace)
        if config.watch_local:
            roots = namespace.sources.local_roots()
            if roots:
                nursery.start_soon(LocalWatcher(namespace.source_files.listings, roots).run)
        notifier = ServiceNotifier()
        if notifier.enabled:
            nursery.start_soon(_ready_when_answering, notifier, namespace.info.mountpoint)
        await pyfuse3.main(max_tasks=config.max_tasks)
        unmounted.set()
        with drain, catalog_outage("unmounted; the uploads not drained"):
            await _drain_uploads(namespace, config.drain_timeout, notifier)
        with catalog_outage("unmounted; the uploads left not counted"):
            left = (await namespace.s.catalog(namespace.remote.uploader.pending))[0]
            if left:
                log.warning("%d upload(s) still pending: they resume at the next mount", left)
        nursery.cancel_scope.cancel()


async def _refresh_gauges(namespace: Namespace) -> None:
    """The metrics that are answers of the catalog, set from this loop (the HTTP
    server's thread must not use the catalog connection)."""
    while True:
        try:
            await namespace.s.catalog.read(namespace.refresh_metrics)
        except FsError as exc:  # (a shared catalog's server restarting: the next round)
            log.warning("metrics not refreshed: %s", exc.strerror)
        await trio.sleep(METRICS_EVERY_S)


async def _ready_when_answering(notifier: ServiceNotifier, mountpoint: str) -> None:
    """READY=1 for systemd once a request through the kernel got its answer (asked
    from a worker thread: this loop is the one answering it)."""
    await trio.to_thread.run_sync(os.listdir, mountpoint)
    notifier.ready(f"serving {mountpoint}")


async def _drain_uploads(namespace: Namespace, timeout: float,
                         notifier: ServiceNotifier) -> None:
    """After unmount: finish this daemon's upload queue, up to `timeout`."""
    uploader, catalog = namespace.remote.uploader, namespace.s.catalog
    uploader.hurry()
    notifier.stopping(f"unmounted; sending {(await catalog(uploader.pending))[0]} "
                      "pending upload(s)")
    with trio.move_on_after(timeout):
        while (pending := await catalog(uploader.pending))[0]:
            log.info("unmounted; %d upload(s) (%d bytes) still to send", *pending)
            notifier.status(f"unmounted; sending {pending[0]} pending upload(s)")
            await trio.sleep(1.0)
        # (folders whose last upload landed during the last second)
        await namespace.remote.settling.set_folder_times()


async def _follow_changes(namespace: Namespace) -> None:
    """A command changed the catalog and says so (`changefeed`): drop what this daemon and
    the kernel hold of it, wait until the kernel has been told, then confirm."""
    follower = changefeed.Follower(namespace.data_dir)
    try:
        with trio.open_signal_receiver(changefeed.SIGNAL) as signals:
            async for _ in signals:
                pending = follower.pending()
                for _name, change in pending:
                    namespace.changed_elsewhere(change.names, change.nodes, change.gathered)
                if pending:
                    await namespace.kernel_told()
                    follower.applied(pending[-1][0])
    finally:
        follower.close()


async def _stop_on_signal(drain: trio.CancelScope, unmounted: trio.Event) -> None:
    """SIGTERM, SIGINT or SIGHUP: unmount now and end any drain (nothing is lost: the
    journal keeps pending uploads for the next start)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("signal %d: unmounting without waiting for uploads", signum)
            drain.cancel()
            if not unmounted.is_set():
                pyfuse3.terminate()
