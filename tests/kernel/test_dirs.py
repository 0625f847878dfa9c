"""Directories, names and links of a local source through the mount."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

# the core of the suite runs on both catalog engines (tests/conftest.py)
pytestmark = pytest.mark.both_engines

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def renameat2(old: Path, new: Path, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new),
                       ctypes.c_uint(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_mkdir_and_rmdir(src: Path, backing: Path) -> None:
    os.mkdir(src / "d", 0o750)
    assert (backing / "d").is_dir()
    assert os.stat(src / "d").st_mode & 0o777 == 0o750
    os.rmdir(src / "d")
    assert not (src / "d").exists() and not (backing / "d").exists()


def test_rmdir_of_a_non_empty_folder_fails(src: Path) -> None:
    os.makedirs(src / "d" / "e")
    with pytest.raises(OSError) as exc:
        os.rmdir(src / "d")
    assert exc.value.errno == errno.ENOTEMPTY


def test_unlink_removes_the_file_from_the_source(src: Path, backing: Path) -> None:
    (src / "f").write_text("x")
    os.unlink(src / "f")
    assert not (backing / "f").exists()
    with pytest.raises(FileNotFoundError):
        os.stat(src / "f")


def test_unlink_of_a_folder_is_refused(src: Path) -> None:
    os.mkdir(src / "d")
    with pytest.raises(OSError) as exc:
        os.unlink(src / "d")
    assert exc.value.errno in (errno.EISDIR, errno.EPERM)


def test_large_directory_lists_every_entry_once(src: Path, backing: Path) -> None:
    for i in range(3000):
        (backing / f"f{i:05d}").write_bytes(b"")
    names = os.listdir(src)
    assert len(names) == 3000 and len(set(names)) == 3000


def test_readdir_survives_concurrent_create_and_delete(src: Path) -> None:
    for i in range(600):
        (src / f"old{i:04d}").write_bytes(b"")
    seen: list[str] = []
    with os.scandir(src) as it:
        for n, entry in enumerate(it):
            seen.append(entry.name)
            if n == 100:  # churn in the middle of the listing
                for i in range(300, 400):
                    os.unlink(src / f"old{i:04d}")
                for i in range(50):
                    (src / f"new{i:04d}").write_bytes(b"")
    assert len(seen) == len(set(seen)), "an entry was returned twice"
    untouched = {f"old{i:04d}" for i in range(600) if not 300 <= i < 400}
    assert untouched <= set(seen), "an entry that existed throughout was skipped"


def test_rename_of_a_file(src: Path, backing: Path) -> None:
    (src / "a").write_text("content")
    ino = os.stat(src / "a").st_ino
    os.rename(src / "a", src / "b")
    assert (src / "b").read_text() == "content" and not (src / "a").exists()
    assert os.stat(src / "b").st_ino == ino
    assert (backing / "b").exists()


def test_rename_replaces_an_existing_file(src: Path) -> None:
    (src / "a").write_text("new")
    (src / "b").write_text("old")
    os.rename(src / "a", src / "b")
    assert (src / "b").read_text() == "new"
    assert sorted(os.listdir(src)) == ["b"]


def test_rename_of_a_folder_moves_its_contents(src: Path, backing: Path) -> None:
    os.makedirs(src / "d1" / "sub")
    (src / "d1" / "sub" / "f").write_text("deep")
    os.mkdir(src / "other")
    os.rename(src / "d1", src / "other" / "d2")
    assert (src / "other" / "d2" / "sub" / "f").read_text() == "deep"
    assert (backing / "other" / "d2" / "sub" / "f").read_text() == "deep"
    (src / "other" / "d2" / "sub" / "g").write_text("after")  # paths below were rebased
    assert (backing / "other" / "d2" / "sub" / "g").read_text() == "after"
    assert not (src / "d1").exists()


def test_rename_of_a_folder_into_itself_is_refused(src: Path) -> None:
    os.makedirs(src / "d" / "e")
    with pytest.raises(OSError) as exc:
        os.rename(src / "d", src / "d" / "e" / "x")
    assert exc.value.errno == errno.EINVAL


def test_rename_noreplace_refuses_an_existing_target(src: Path) -> None:
    (src / "a").write_text("a")
    (src / "b").write_text("b")
    with pytest.raises(FileExistsError):
        renameat2(src / "a", src / "b", RENAME_NOREPLACE)
    assert (src / "b").read_text() == "b"
    renameat2(src / "a", src / "c", RENAME_NOREPLACE)
    assert (src / "c").read_text() == "a"


def test_rename_exchange_swaps_two_names(src: Path) -> None:
    (src / "a").write_text("a")
    os.makedirs(src / "b" / "inner")
    renameat2(src / "a", src / "b", RENAME_EXCHANGE)
    assert (src / "b").read_text() == "a"
    assert (src / "a" / "inner").is_dir()


def test_symlink_and_readlink(src: Path, backing: Path) -> None:
    (src / "target").write_text("t")
    os.symlink("target", src / "link")
    assert os.readlink(src / "link") == "target"
    assert (src / "link").read_text() == "t"
    assert os.readlink(backing / "link") == "target"
    assert os.lstat(src / "link").st_size == len("target")


def test_dangling_symlink_is_listed(src: Path) -> None:
    os.symlink("/nowhere/at/all", src / "dangling")
    assert "dangling" in os.listdir(src)
    assert os.readlink(src / "dangling") == "/nowhere/at/all"


def test_hard_link_shares_inode_and_content(src: Path, backing: Path) -> None:
    (src / "orig").write_text("v1")
    os.link(src / "orig", src / "twin")
    a, b = os.stat(src / "orig"), os.stat(src / "twin")
    assert a.st_ino == b.st_ino and a.st_nlink == b.st_nlink == 2
    (src / "twin").write_text("v2")
    assert (src / "orig").read_text() == "v2"
    assert os.stat(backing / "orig").st_ino == os.stat(backing / "twin").st_ino


def test_unlinking_one_hard_link_keeps_the_other(src: Path) -> None:
    (src / "orig").write_text("kept")
    os.mkdir(src / "d")
    os.link(src / "orig", src / "d" / "twin")
    ino = os.stat(src / "orig").st_ino
    os.unlink(src / "orig")
    st = os.stat(src / "d" / "twin")
    assert st.st_ino == ino and st.st_nlink == 1
    assert (src / "d" / "twin").read_text() == "kept"


def test_hard_link_to_a_folder_is_refused(src: Path) -> None:
    os.mkdir(src / "d")
    with pytest.raises(OSError) as exc:
        os.link(src / "d", src / "d2")
    assert exc.value.errno == errno.EPERM


def test_name_of_256_bytes_is_too_long(src: Path) -> None:
    with pytest.raises(OSError) as exc:
        (src / ("n" * 256)).write_text("x")
    assert exc.value.errno == errno.ENAMETOOLONG
    (src / ("n" * 255)).write_text("x")  # the limit itself is fine
    assert (src / ("n" * 255)).read_text() == "x"


@pytest.mark.parametrize("call", [os.stat, os.lstat, os.listdir, os.unlink, os.rmdir,
                                  lambda p: os.rename(p, p.parent / "short")])
def test_every_operation_on_a_name_of_256_bytes_is_enametoolong_as_on_disk(
        src: Path, backing: Path, call: Callable[[Path], object]) -> None:
    for folder in (src, backing):  # the mount and the disk underneath answer alike
        with pytest.raises(OSError) as exc:
            call(folder / ("n" * 256))
        assert exc.value.errno == errno.ENAMETOOLONG, folder


def test_dotdot_in_a_path_cannot_leave_the_source(src: Path, mount: object) -> None:
    (src / "f").write_text("x")
    assert os.path.samefile(src / ".." / "loc" / "f", src / "f")
    assert sorted(os.listdir(src / ".." / "..")) == sorted(os.listdir(src.parent.parent))


def test_non_utf8_names_round_trip(src: Path, backing: Path) -> None:
    name = b"caf\xe9-\xff.bin"
    with open(os.path.join(os.fsencode(src), name), "wb") as f:
        f.write(b"bytes")
    assert name in os.listdir(os.fsencode(src))
    assert name in os.listdir(os.fsencode(backing))


def test_unicode_names_round_trip(src: Path) -> None:
    for name in ("données.csv", "日本語", "emoji-😀", "with space", "'quote\""):
        (src / name).write_text(name)
    for name in ("données.csv", "日本語", "emoji-😀", "with space", "'quote\""):
        assert (src / name).read_text() == name
