"""The disk and its twin in a mount, for tests that compare the two (issue 13): a
scenario's steps run in a plain folder of the disk and in the same folder's twin inside
a local source of a mount with --allow-other, as the same users with the same umasks.
After every step, both sides' outcome (ok or its errno) and what the step left behind —
every entry's type, mode, owners, link count, size, device number, link target, and
whether its mtime and ctime moved — must be equal."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import Mount, add_source_now, in_process
from users import User, outcome

Step = tuple[User, Callable[[], object]]

# The kernel stamps inode times from its coarse clock (one tick is 1-4 ms): a step
# that comes later than this after the previous one gets a time that differs.
TICK_S = 0.012


@dataclass(frozen=True)
class Entry:
    """What a step may leave behind on one entry, as lstat shows it."""

    mode: str
    uid: int
    gid: int
    nlink: int
    size: int | None  # a folder's size is the file system's business
    rdev: int
    target: str | None
    mtime_ns: int
    ctime_ns: int
    ino: int  # compared as an identity: the name it was first seen under

    def moved_since(self, before: Entry | None) -> tuple[bool, bool]:
        if before is None:
            return (True, True)
        return (self.mtime_ns != before.mtime_ns, self.ctime_ns != before.ctime_ns)

    def shape(self) -> tuple[object, ...]:
        return (self.mode, self.uid, self.gid, self.nlink, self.size, self.rdev, self.target)


def entry(path: Path) -> Entry:
    st = os.lstat(path)
    link = stat.S_ISLNK(st.st_mode)
    return Entry(oct(st.st_mode), st.st_uid, st.st_gid, st.st_nlink,
                 None if stat.S_ISDIR(st.st_mode) else st.st_size, st.st_rdev,
                 os.readlink(path) if link else None, st.st_mtime_ns, st.st_ctime_ns,
                 st.st_ino)


def entries(folder: Path) -> dict[str, Entry]:
    """The folder itself (as ".") and everything under it."""
    found = {".": entry(folder)}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = entry(path)
    return found


Snapshot = dict[str, tuple[tuple[object, ...], str, tuple[bool, bool]]]


class Identities:
    """Inode numbers differ between the disk and the mount; what must agree is which
    names are one inode, and that an inode keeps its number (through a rename, a link):
    each number is named after the first name it was seen under (and how many inodes
    that name had before it: a file replaced by a copy is a new one), while it exists."""

    def __init__(self) -> None:
        self.first_name: dict[int, str] = {}
        self.inodes_named: dict[str, int] = {}

    def label(self, now: dict[str, Entry]) -> dict[str, str]:
        present = {e.ino for e in now.values()}
        self.first_name = {ino: n for ino, n in self.first_name.items() if ino in present}
        for name, e in now.items():
            if e.ino not in self.first_name:
                count = self.inodes_named[name] = self.inodes_named.get(name, 0) + 1
                self.first_name[e.ino] = f"{name}#{count}"
        return {name: self.first_name[e.ino] for name, e in now.items()}


def snapshot(now: dict[str, Entry], before: dict[str, Entry],
             labels: dict[str, str]) -> Snapshot:
    return {name: (e.shape(), labels[name], e.moved_since(before.get(name)))
            for name, e in now.items()}


def play(folder: Path, steps: list[Step], times: bool) -> list[tuple[str, Snapshot]]:
    """Each step's outcome and the snapshot after it."""
    played = []
    seen = entries(folder)
    identities = Identities()
    identities.label(seen)
    for user, step in steps:
        if times:
            time.sleep(TICK_S)
        result = outcome(user, folder, step)
        now = entries(folder)
        shot = snapshot(now, seen, identities.label(now))
        if not times:
            shot = {name: (shape, ino, (False, False)) for name, (shape, ino, _) in shot.items()}
        played.append((result, shot))
        seen = now
    return played


@dataclass
class Twins:
    """The disk's folder and its twin in the mount; a scenario runs in both."""

    disk: Path
    mounted: Path

    def run(self, name: str, steps: list[Step], times: bool = True) -> None:
        """Play `steps` on both sides; `times` compares which times each step moved."""
        played = []
        for place in (self.disk, self.mounted):
            folder = place / name
            os.mkdir(folder)
            os.chmod(folder, 0o777)
            played.append(play(folder, steps, times))
        on_disk, in_mount = played
        for number, (disk_step, mount_step) in enumerate(zip(on_disk, in_mount, strict=True)):
            assert mount_step[0] == disk_step[0], (
                f"step {number}: outcomes differ: mount {mount_step[0]}, disk {disk_step[0]}")
            assert mount_step[1] == disk_step[1], (
                f"step {number}: what was left behind differs (mount vs disk):\n"
                + differences(mount_step[1], disk_step[1]))


def differences(mounted: Snapshot, disk: Snapshot) -> str:
    """One line per entry that differs: (shape, identity, (mtime moved, ctime moved))."""
    names = sorted(set(mounted) | set(disk))
    return "\n".join(f"  {name}: mount {mounted.get(name)}\n  {' ' * len(name)}  disk  "
                     f"{disk.get(name)}" for name in names
                     if mounted.get(name) != disk.get(name))


def twin_mount(base: Path) -> Iterator[Twins]:
    """A fixture's body: one mount with --allow-other and a plain folder beside it."""
    data_dir, backing, point, disk = (base / n for n in ("data", "backing", "mnt", "disk"))
    in_process(lambda tree: None, data_dir)
    for folder in (backing, point, disk):
        folder.mkdir()
        os.chmod(folder, 0o755)
    add_source_now(data_dir, "loc", f"file://{backing}")
    mount = Mount(data_dir, point).start("--allow-other")
    try:
        yield Twins(disk, point / "sources" / "loc")
    finally:
        mount.stop()
    mount.assert_log_clean()
