"""Regular files of a local source through the mount: data and attributes."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
from pathlib import Path

import pytest
from conftest import Mount, run_as, run_markfs

# the core of the suite runs on both catalog engines (tests/conftest.py)
pytestmark = pytest.mark.both_engines


def test_created_file_reads_back_and_lands_in_the_source(src: Path, backing: Path) -> None:
    (src / "a.txt").write_bytes(b"hello world")
    assert (src / "a.txt").read_bytes() == b"hello world"
    assert (backing / "a.txt").read_bytes() == b"hello world"


def test_existing_file_of_the_source_is_readable(src: Path, backing: Path) -> None:
    (backing / "pre.bin").write_bytes(b"\x00\x01" * 1000)
    assert (src / "pre.bin").read_bytes() == b"\x00\x01" * 1000
    assert os.stat(src / "pre.bin").st_size == 2000


def test_large_file_copies_in_and_out_intact(src: Path, tmp_path: Path) -> None:
    data = os.urandom(1 << 20) * 24  # 24 MiB
    outside = tmp_path / "big"
    outside.write_bytes(data)
    with open(outside, "rb") as fin, open(src / "big", "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    assert os.stat(src / "big").st_size == len(data)
    digest = hashlib.sha256()
    with open(src / "big", "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_random_writes_land_at_their_offsets(src: Path) -> None:
    path = src / "sparse"
    with open(path, "wb") as f:
        f.write(b"a" * 100)
    with open(path, "r+b") as f:
        f.seek(50)
        f.write(b"XYZ")
        f.seek(200)
        f.write(b"end")
    data = path.read_bytes()
    assert len(data) == 203
    assert data[:50] == b"a" * 50 and data[50:53] == b"XYZ" and data[100:200] == b"\0" * 100


def test_append_mode_appends(src: Path) -> None:
    path = src / "log"
    path.write_bytes(b"one\n")
    with open(path, "ab") as f:
        f.write(b"two\n")
    assert path.read_bytes() == b"one\ntwo\n"


def test_size_is_visible_while_the_file_is_still_open(src: Path) -> None:
    with open(src / "growing", "wb") as f:
        f.write(b"x" * 5000)
        f.flush()
        assert os.stat(src / "growing").st_size == 5000


@pytest.mark.parametrize("new_size", [0, 3, 10_000])
def test_truncate_sets_the_size(src: Path, new_size: int) -> None:
    path = src / "t"
    path.write_bytes(b"abcdef")
    os.truncate(path, new_size)
    assert os.stat(path).st_size == new_size
    assert path.read_bytes() == (b"abcdef" + b"\0" * new_size)[:new_size]


def test_open_with_o_trunc_empties_the_file(src: Path) -> None:
    (src / "f").write_bytes(b"old content")
    (src / "f").write_bytes(b"new")
    assert (src / "f").read_bytes() == b"new"


def test_chmod_changes_the_mode(src: Path, backing: Path) -> None:
    (src / "m").write_text("x")
    os.chmod(src / "m", 0o640)
    assert stat.S_IMODE(os.stat(src / "m").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(backing / "m").st_mode) == 0o640


def test_chown_as_root_changes_the_owner(src: Path, backing: Path) -> None:
    (src / "o").write_text("x")
    os.chown(src / "o", 1234, 5678)
    st = os.stat(src / "o")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.stat(backing / "o").st_uid == 1234


def test_utime_sets_the_modification_time(src: Path) -> None:
    (src / "u").write_text("x")
    os.utime(src / "u", ns=(1_600_000_000_000_000_000, 1_500_000_000_123_456_789))
    assert os.stat(src / "u").st_mtime_ns == 1_500_000_000_123_456_789


def test_files_created_for_another_user_belong_to_them(mount: Mount, src: Path) -> None:
    mount.remount("--allow-other")
    os.chmod(src, 0o777)
    assert run_as(4321, src, lambda: Path("theirs").write_text("x")) == 0
    st = os.stat(src / "theirs")
    assert (st.st_uid, st.st_gid) == (4321, 4321)


def test_other_users_get_eacces_on_a_private_file(mount: Mount, src: Path) -> None:
    mount.remount("--allow-other")
    (src / "private").write_text("secret")
    os.chmod(src / "private", 0o600)
    assert run_as(4321, src, lambda: open("private").close()) == 13


def test_without_allow_other_other_users_are_kept_out(mount: Mount, src: Path) -> None:
    assert run_as(4321, mount.path.parent, lambda: os.listdir("mnt")) == 13


def test_fsync_succeeds_and_data_is_in_the_source(src: Path, backing: Path) -> None:
    fd = os.open(src / "durable", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"keep me")
        os.fsync(fd)
        assert (backing / "durable").read_bytes() == b"keep me"
    finally:
        os.close(fd)


def test_unlinked_open_file_stays_readable(src: Path) -> None:
    (src / "gone").write_bytes(b"still here")
    with open(src / "gone", "rb") as f:
        os.unlink(src / "gone")
        assert not (src / "gone").exists()
        assert f.read() == b"still here"
        assert os.fstat(f.fileno()).st_size == 10


def test_mknod_makes_a_regular_file(src: Path) -> None:
    os.mknod(src / "node", stat.S_IFREG | 0o644)
    assert stat.S_ISREG(os.stat(src / "node").st_mode)
    assert os.stat(src / "node").st_size == 0


def test_mkfifo_makes_a_fifo_in_the_source_that_carries_bytes(src: Path, backing: Path) -> None:
    os.mkfifo(src / "fifo", 0o640)
    seen, disk = os.stat(src / "fifo"), os.stat(backing / "fifo")
    assert stat.S_ISFIFO(seen.st_mode) and seen.st_mode == disk.st_mode == stat.S_IFIFO | 0o640
    reader = os.open(src / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    try:
        with open(src / "fifo", "wb") as writer:
            writer.write(b"through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)


def test_a_socket_bound_in_the_mount_is_a_socket_in_the_source(
        src: Path, backing: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(src / "sock"))
        assert stat.S_ISSOCK(os.stat(src / "sock").st_mode)
        assert stat.S_ISSOCK(os.stat(backing / "sock").st_mode)


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK], ids=["char", "block"])
def test_a_device_node_made_as_root_has_its_type_and_number(
        src: Path, backing: Path, kind: int) -> None:
    os.mknod(src / "dev", kind | 0o600, os.makedev(1, 3))
    seen, disk = os.stat(src / "dev"), os.stat(backing / "dev")
    assert (seen.st_mode, seen.st_rdev) == (disk.st_mode, disk.st_rdev) == (
        kind | 0o600, os.makedev(1, 3))


def test_a_device_node_made_on_the_disk_shows_its_number(src: Path, backing: Path) -> None:
    os.mknod(backing / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert os.stat(src / "null").st_rdev == os.makedev(1, 3)
    with pytest.raises(PermissionError):  # a FUSE mount is nodev, as mounts of users are
        os.open(src / "null", os.O_RDONLY)


def test_exclusive_create_of_an_existing_name_fails(src: Path) -> None:
    (src / "x").write_text("1")
    with pytest.raises(FileExistsError):
        os.open(src / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY)


def test_read_only_source_refuses_writes(mount: Mount, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "f").write_text("data")
    run_markfs(mount.data_dir, "source", "add", "ro", f"file://{ro}", "--read-only")
    mount.remount()
    path = mount.path / "sources" / "ro"
    assert (path / "f").read_text() == "data"
    for attempt in (lambda: (path / "new").write_text("x"),
                    lambda: (path / "f").write_text("x"),
                    lambda: os.mkdir(path / "d"),
                    lambda: os.unlink(path / "f")):
        with pytest.raises(OSError) as exc:
            attempt()
        assert exc.value.errno in (errno.EROFS, errno.EACCES)
    assert (ro / "f").read_text() == "data"
