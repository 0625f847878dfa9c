"""What a command changed in the catalog, told to the running mounts of its data dir.

The kernel caches names and attributes of a mount for `entry_ttl`/`attr_ttl`, and a
daemon caches what gathered folders hold: a `markfs refresh`, `tag add` or `view pin`
would show only after those. So a command that committed changes writes them to
`DATA_DIR/run/changes/<time_ns>-<pid>.json` — the names added or gone, the nodes
changed — signals each running daemon (SIGUSR1), and returns once every daemon has
dropped what it and the kernel held of them and said so (`ack-<pid>`, the newest
change file it has applied), or after `ACK_WAIT_S` (a daemon that is busy or gone then
shows the change within the TTLs, as before).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from markfs import runtime
from markfs.config import DataDir

ACK_WAIT_S = 5.0
KEEP_S = 120.0  # change files older than this are removed by the next command
SIGNAL = signal.SIGUSR1


@dataclass
class CatalogChange:
    """What the kernel or a daemon may hold that a command changed."""

    names: list[tuple[int, bytes]] = field(default_factory=list)  # (folder id, name)
    nodes: list[int] = field(default_factory=list)  # attributes or content changed
    gathered: bool = False  # views, tags or categories may hold other members now

    def to_json(self) -> str:
        return json.dumps({"names": [[p, n.hex()] for p, n in self.names],
                           "nodes": self.nodes, "gathered": self.gathered})

    @classmethod
    def from_json(cls, text: str) -> CatalogChange:
        raw = json.loads(text)
        return cls([(int(p), bytes.fromhex(n)) for p, n in raw["names"]],
                   [int(n) for n in raw["nodes"]], bool(raw["gathered"]))


def _folder(data_dir: DataDir) -> Path:
    return data_dir.run / "changes"


def publish(data_dir: DataDir, change: CatalogChange) -> list[str]:
    """Tell every running mount of `data_dir` (but this process) and wait for each to
    confirm; the mount points that did not within `ACK_WAIT_S`."""
    # (only daemons that follow changes get the signal: to another, SIGUSR1 is fatal)
    mounts = [m for m in runtime.active_mounts(data_dir)
              if m.follows_changes and m.pid != os.getpid()]
    if not mounts:
        return []
    folder = _folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _prune(folder)
    name = f"{time.time_ns():020d}-{os.getpid()}.json"
    temp = folder / f".{name}"
    temp.write_text(change.to_json())
    temp.replace(folder / name)
    for mount in mounts:
        with contextlib.suppress(ProcessLookupError):
            os.kill(mount.pid, SIGNAL)
    deadline = time.monotonic() + ACK_WAIT_S
    waiting = list(mounts)
    while waiting and time.monotonic() < deadline:
        waiting = [m for m in waiting if m.alive() and _acked(folder, m.pid) < name]
        if waiting:
            time.sleep(0.005)
    return [m.mountpoint for m in waiting]


def _acked(folder: Path, pid: int) -> str:
    try:
        return (folder / f"ack-{pid}").read_text()
    except OSError:
        return ""


def _prune(folder: Path) -> None:
    cutoff = time.time_ns() - int(KEEP_S * 1e9)
    for path in folder.glob("*.json"):
        if path.name[:20].isdigit() and int(path.name[:20]) < cutoff:
            path.unlink(missing_ok=True)


class Follower:
    """A daemon's side: the change files it has not applied yet, and its word that it
    has (`applied`)."""

    def __init__(self, data_dir: DataDir) -> None:
        self.folder = _folder(data_dir)
        self.last = f"{time.time_ns():020d}"  # what came before this daemon is in its view

    def pending(self) -> list[tuple[str, CatalogChange]]:
        if not self.folder.exists():
            return []
        found = []
        for path in sorted(self.folder.glob("[0-9]*.json")):
            if path.name > self.last:
                try:
                    found.append((path.name, CatalogChange.from_json(path.read_text())))
                except (OSError, ValueError, KeyError):
                    continue  # pruned meanwhile, or not ours to read
        return found

    def applied(self, name: str) -> None:
        self.last = name
        temp = self.folder / f".ack-{os.getpid()}"
        temp.write_text(name)
        temp.replace(self.folder / f"ack-{os.getpid()}")

    def close(self) -> None:
        (self.folder / f"ack-{os.getpid()}").unlink(missing_ok=True)
