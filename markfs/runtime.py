"""The registry of running mounts of a data directory (one small JSON file per mount),
and the owner tokens that tell whether the daemon behind a journal row still runs."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from markfs.config import DataDir

_HOST = ""  # this data directory's identity, when its catalog is shared (`on_host`)


def on_host(host_id: str) -> None:
    """This process works on a catalog other hosts share: its tokens name its host (the
    data directory's identity), and a token of another host is never judged here."""
    global _HOST
    _HOST = host_id


def owner_token(pid: int | None = None) -> str:
    """"pid:start time" of a process: unlike a pid alone, never the token of another;
    "@host" after it on a shared catalog."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}" + (f"@{_HOST}" if _HOST else "")


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "gone"
    # the command name (field 2) may hold spaces: fields after its ')' are fixed
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def owner_alive(token: str | None, in_session: Collection[str] | None = None) -> bool:
    """Is the daemon of this token running? A zombie (exited, not reaped by its parent:
    no init in a container) is not: its rows are for a live daemon to adopt. Another
    host's daemon is never judged from here: it is alive while its session is in the
    shared catalog (`in_session`: the owners of those sessions; a lapsed session is
    removed only after a grace period, sessions.py), or always if not given."""
    if not token or ":" not in token:
        return False
    host = token.partition("@")[2]
    if host and host != _HOST:
        return in_session is None or token in in_session
    pid, _, _start = token.partition(":")
    return pid.isdigit() and owner_token(int(pid)) == token and not _zombie(int(pid))


@dataclass(frozen=True)
class MountRecord:
    pid: int
    mountpoint: str
    root: str
    started: float
    owner: str = ""  # the daemon's owner token: its journal rows carry it
    follows_changes: bool = False  # takes `changefeed`'s signal (older daemons: not)

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _zombie(self.pid)  # exited, not yet reaped by its parent: gone


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _record_path(data_dir: DataDir, mountpoint: Path) -> Path:
    digest = hashlib.sha1(os.fsencode(mountpoint)).hexdigest()[:16]
    return data_dir.run / f"mount-{digest}.json"


def register(data_dir: DataDir, mountpoint: Path, root: str) -> MountRecord:
    record = MountRecord(os.getpid(), str(mountpoint), root, time.time(), owner_token(),
                         follows_changes=True)
    data_dir.run.mkdir(parents=True, exist_ok=True)
    path = _record_path(data_dir, mountpoint)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)
    return record


def unregister(data_dir: DataDir, mountpoint: Path) -> None:
    path = _record_path(data_dir, mountpoint)
    try:
        record = MountRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return
    if record.pid == os.getpid():
        path.unlink(missing_ok=True)


def find(data_dir: DataDir, mountpoint: Path) -> MountRecord | None:
    try:
        return MountRecord(**json.loads(_record_path(data_dir, mountpoint).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def active_mounts(data_dir: DataDir) -> list[MountRecord]:
    records = []
    for path in sorted(data_dir.run.glob("mount-*.json")) if data_dir.run.exists() else []:
        try:
            record = MountRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if record.alive():
            records.append(record)
        else:
            path.unlink(missing_ok=True)
    return records


def is_mountpoint(path: Path) -> bool:
    """True when `path` is the mount point of some mount (by /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            point = fields[4].decode("unicode_escape") if b"\\" in fields[4] else fields[4].decode()
            if point == target:
                return True
    return False
