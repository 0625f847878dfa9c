"""Changes made directly in a local source's folder show up in the mount."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Mount

WAIT_S = 5.0


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_new_file_appears(src: Path, backing: Path) -> None:
    os.listdir(src)  # the kernel and catalog know the folder now
    (backing / "outside.txt").write_text("made outside")
    assert eventually(lambda: "outside.txt" in os.listdir(src))
    assert (src / "outside.txt").read_text() == "made outside"


def test_deleted_file_disappears(src: Path, backing: Path) -> None:
    (backing / "f").write_text("x")
    assert (src / "f").read_text() == "x"
    os.unlink(backing / "f")
    assert eventually(lambda: not (src / "f").exists())


def test_changed_content_is_read_fresh(src: Path, backing: Path) -> None:
    (backing / "f").write_text("version one")
    assert (src / "f").read_text() == "version one"
    time.sleep(0.01)
    (backing / "f").write_text("version two, longer")
    assert eventually(lambda: (src / "f").read_text() == "version two, longer")


def test_same_size_rewrite_is_read_fresh(src: Path, backing: Path) -> None:
    (backing / "f").write_text("AAAA")
    assert (src / "f").read_text() == "AAAA"
    time.sleep(0.01)
    (backing / "f").write_text("BBBB")
    assert eventually(lambda: (src / "f").read_text() == "BBBB")


def test_folder_renamed_outside_moves_in_the_mount(src: Path, backing: Path) -> None:
    os.makedirs(backing / "old" / "sub")
    (backing / "old" / "sub" / "f").write_text("deep")
    assert (src / "old" / "sub" / "f").read_text() == "deep"
    os.rename(backing / "old", backing / "new")
    assert eventually(lambda: (src / "new").exists() and not (src / "old").exists())
    assert (src / "new" / "sub" / "f").read_text() == "deep"


def test_file_replaced_by_a_folder_outside(src: Path, backing: Path) -> None:
    (backing / "x").write_text("file")
    assert (src / "x").is_file()
    os.unlink(backing / "x")
    os.mkdir(backing / "x")
    assert eventually(lambda: (src / "x").is_dir())


def test_without_the_watcher_listings_expire_after_dir_ttl(
        mount: Mount, src: Path, backing: Path) -> None:
    (mount.data_dir / "markfs.toml").write_text(
        "[mount]\nwatch_local = false\ndir_ttl = 0.2\nentry_ttl = 0.1\nattr_ttl = 0.1\n")
    mount.remount()
    os.listdir(src)
    (backing / "late.txt").write_text("x")
    time.sleep(0.3)
    assert "late.txt" in os.listdir(src)


def test_changes_inside_a_folder_made_or_moved_outside_are_seen(
        src: Path, backing: Path) -> None:
    """New folders are watched as they appear, moved ones under their new name."""
    os.listdir(src)
    os.makedirs(backing / "new" / "deep")
    assert eventually(lambda: (src / "new" / "deep").is_dir())
    assert os.listdir(src / "new" / "deep") == []
    (backing / "new" / "deep" / "f").write_text("one")
    assert eventually(lambda: (src / "new" / "deep" / "f").exists())
    os.rename(backing / "new", backing / "moved")
    assert eventually(lambda: (src / "moved" / "deep" / "f").exists())
    assert os.listdir(src / "moved" / "deep") == ["f"]
    (backing / "moved" / "deep" / "f").write_text("one two")
    assert eventually(lambda: (src / "moved" / "deep" / "f").read_text() == "one two")
    (backing / "moved" / "deep" / "g").write_text("late")
    assert eventually(lambda: "g" in os.listdir(src / "moved" / "deep"))
