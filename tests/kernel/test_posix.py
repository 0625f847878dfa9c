"""POSIX behaviour of a local source, each compared with the same operation on the disk
underneath (issue 13, part 1): a folder's times right after a change in it, folders'
link counts."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def make_file(folder: Path) -> None:
    (folder / "new.txt").write_text("x")


def make_dir(folder: Path) -> None:
    os.mkdir(folder / "sub")


def make_symlink(folder: Path) -> None:
    os.symlink("target", folder / "link")


def make_hard_link(folder: Path) -> None:
    os.link(folder / "old.txt", folder / "twin.txt")


def remove_file(folder: Path) -> None:
    os.unlink(folder / "old.txt")


def remove_dir(folder: Path) -> None:
    os.rmdir(folder / "empty")


def rename_inside(folder: Path) -> None:
    os.rename(folder / "old.txt", folder / "renamed.txt")


CHANGES = [make_file, make_dir, make_symlink, make_hard_link, remove_file, remove_dir,
           rename_inside]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_a_folders_times_are_current_right_after_a_change_in_it(
        src: Path, backing: Path, change: Callable[[Path], None]) -> None:
    folder = src / "d"
    os.mkdir(folder)
    (folder / "old.txt").write_text("old")
    os.mkdir(folder / "empty")
    before = os.stat(folder)  # the kernel holds these attributes now
    os.utime(backing / "d", ns=(1_000_000_000, 1_000_000_000))  # so any change shows
    os.stat(folder)
    time.sleep(0.02)  # a later tick of the kernel's coarse clock than `before`
    change(folder)
    seen, disk = os.stat(folder), os.stat(backing / "d")
    assert (seen.st_mtime_ns, seen.st_ctime_ns) == (disk.st_mtime_ns, disk.st_ctime_ns)
    assert seen.st_mtime_ns > before.st_mtime_ns


def test_a_folders_link_count_is_two_plus_its_subfolders(src: Path, backing: Path) -> None:
    os.makedirs(src / "d" / "a")
    os.mkdir(src / "d" / "b")
    (src / "d" / "f").write_text("not a folder")
    assert os.stat(src / "d").st_nlink == os.stat(backing / "d").st_nlink == 4
    os.rmdir(src / "d" / "a")
    assert os.stat(src / "d").st_nlink == os.stat(backing / "d").st_nlink == 3
    os.rename(src / "d" / "b", src / "b")
    assert os.stat(src / "d").st_nlink == os.stat(backing / "d").st_nlink == 2


ATTRIBUTE_CHANGES: dict[str, Callable[[Path], None]] = {
    "chmod": lambda f: os.chmod(f, 0o600),
    "chown": lambda f: os.chown(f, 1000, 1000),
    "truncate": lambda f: os.truncate(f, 1),
    "link": lambda f: os.link(f, f.parent / "twin"),
    "utime": lambda f: os.utime(f, ns=(5, 5)),
    "setxattr": lambda f: os.setxattr(f, "user.k", b"v"),
    "unlink of another name": lambda f: os.unlink(f.parent / "other-name"),
    "rename": lambda f: os.rename(f, f.parent / "renamed"),
    "removexattr": lambda f: os.removexattr(f, "user.present"),
}


@pytest.mark.parametrize("change", list(ATTRIBUTE_CHANGES))
def test_a_files_ctime_moves_with_each_change_of_it_as_on_disk(
        src: Path, backing: Path, change: str) -> None:
    path = src / "f"
    path.write_text("hello")
    os.setxattr(backing / "f", "user.present", b"1")
    os.link(path, src / "other-name")
    before = os.stat(path).st_ctime_ns
    time.sleep(0.02)  # inode times tick with the kernel's coarse clock (a few ms)
    ATTRIBUTE_CHANGES[change](path)
    name = "renamed" if change == "rename" else "f"
    seen = os.stat(src / name).st_ctime_ns
    assert seen > before and seen == os.stat(backing / name).st_ctime_ns


def test_atime_set_with_utime_is_kept_apart_from_mtime_to_the_nanosecond(
        src: Path, backing: Path) -> None:
    (src / "f").write_text("x")
    os.utime(src / "f", ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    seen, disk = os.stat(src / "f"), os.stat(backing / "f")
    assert (seen.st_atime_ns, seen.st_mtime_ns) == (disk.st_atime_ns, disk.st_mtime_ns) == (
        1_600_000_000_123_456_789, 1_500_000_000_987_654_321)


@pytest.mark.parametrize("touch", [["-a"], ["-m"], []], ids=["atime", "mtime", "both"])
def test_touch_moves_the_times_it_names_and_leaves_the_other(
        src: Path, backing: Path, touch: list[str]) -> None:
    """`touch -a`/`-m` set one time with UTIME_NOW and the other with UTIME_OMIT."""
    (src / "f").write_text("x")
    os.utime(src / "f", ns=(1_000_000_000, 2_000_000_000))
    subprocess.run(["touch", *touch, str(src / "f")], check=True)
    seen, disk = os.stat(src / "f"), os.stat(backing / "f")
    assert (seen.st_atime_ns, seen.st_mtime_ns) == (disk.st_atime_ns, disk.st_mtime_ns)
    assert (seen.st_atime_ns == 1_000_000_000) == (touch == ["-m"])
    assert (seen.st_mtime_ns == 2_000_000_000) == (touch == ["-a"])


def test_a_files_atime_on_the_disk_shows_in_a_listing(src: Path, backing: Path) -> None:
    (backing / "old").write_text("x")
    os.utime(backing / "old", ns=(3_000_000_000, 4_000_000_000))
    os.listdir(src)
    assert os.stat(src / "old").st_atime_ns == 3_000_000_000


def test_a_path_past_path_max_with_the_source_roots_path_counted_still_works(
        src: Path, backing: Path) -> None:
    """The daemon walks from the source root a folder at a time (issue 23): the source
    root's own path does not count against PATH_MAX, as on the disk."""
    name = "d" * 250
    room = 4095 - len(str(backing)) - len("/file")
    folder = os.open(src, os.O_RDONLY)
    try:
        for _ in range(room // (len(name) + 1) + 2):  # walked by descriptors: this
            os.mkdir(name, dir_fd=folder)               # process's own paths stay short
            inner = os.open(name, os.O_RDONLY, dir_fd=folder)
            os.close(folder)
            folder = inner
        written = os.open("file", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=folder)
        os.write(written, b"deep")
        os.close(written)
        assert os.stat("file", dir_fd=folder).st_size == 4
    finally:
        os.close(folder)
