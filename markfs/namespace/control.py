"""The mount as a whole: status.json (the generated file under /.markfs), what statfs
answers, and the gauges that are answers of the catalog and the caches.

Everyone may read it (it is how a user sees why a folder fails), so it holds nothing
of a source's server: no URL, query string or path, and of an error only the source
and the kind of failure (the error's own words go to the log and `markfs status`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from markfs import __version__
from markfs.cache.content import ContentCache
from markfs.metrics import METRICS
from markfs.namespace import inventory
from markfs.namespace.files.health import SourceState
from markfs.namespace.files.sources import list_sources
from markfs.namespace.tree import Tree


@dataclass(frozen=True)
class FsStats:
    block_size: int
    blocks: int
    blocks_free: int
    blocks_avail: int
    files: int
    files_free: int
    name_max: int = 255


def filesystem_stats(data_dir: Path, nodes: int) -> FsStats:
    """statfs: the data directory's disk (where staged and cached files go); files: the
    catalog's nodes plus the inodes the disk has free."""
    st = os.statvfs(data_dir)
    return FsStats(block_size=st.f_frsize, blocks=st.f_blocks, blocks_free=st.f_bfree,
                   blocks_avail=st.f_bavail, files=nodes + st.f_ffree, files_free=st.f_ffree)


def refresh_gauges(tree: Tree, uploads: tuple[int, int], cache: ContentCache) -> None:
    """The gauges that are answers of the catalog and the caches, brought up to date."""
    METRICS.uploads_pending.set(uploads[0])
    METRICS.uploads_pending_bytes.set(uploads[1])
    METRICS.cache_bytes.set(cache.used_bytes())
    for state, jobs in inventory.jobs_by_state(tree).items():
        METRICS.scan_jobs.labels(state).set(jobs)
    METRICS.stale_tables.set(len(inventory.stale_tables(tree)))


@dataclass(frozen=True)
class MountInfo:
    mountpoint: str
    root: str
    started: float


def render_status(tree: Tree, info: MountInfo, open_files: int,
                  uploads: tuple[int, int], health: dict[str, SourceState]) -> bytes:
    doc = {
        "version": __version__,
        "pid": os.getpid(),
        "mountpoint": info.mountpoint,
        "root": info.root,
        "started": info.started,
        "uptime_s": round(time.time() - info.started, 3),
        "sources": [
            {"name": s.name, "scheme": s.scheme, "read_only": s.read_only,
             **_health_of(s.name, health.get(s.name))}
            for s in list_sources(tree)
        ],
        "nodes": tree.count_nodes(),
        "open_files": open_files,
        "uploads_pending": uploads[0],
        "uploads_pending_bytes": uploads[1],
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def _health_of(name: str, state: SourceState | None) -> dict[str, object]:
    """A source's state as the mount last saw it ("ok" before any call failed)."""
    if state is None:
        return {"state": "ok", "since": None, "last_error": None}
    failure = f"{name}: {state.failure}" if state.failure else None
    return {"state": state.state, "since": state.since, "last_error": failure}
