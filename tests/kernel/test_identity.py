"""Stable identities: inode numbers, generations and file handles (what NFS export needs)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
from conftest import Mount

# the core of the suite runs on both catalog engines (tests/conftest.py)
pytestmark = pytest.mark.both_engines

_libc = ctypes.CDLL(None, use_errno=True)
MAX_HANDLE_SZ = 128


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


def name_to_handle(path: Path) -> FileHandle:
    handle = FileHandle(handle_bytes=MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(handle),
                               ctypes.byref(mount_id), 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))
    return handle


def open_by_handle(mount_point: Path, handle: FileHandle, flags: int = os.O_RDONLY) -> int:
    mount_fd = os.open(mount_point, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = int(_libc.open_by_handle_at(mount_fd, ctypes.byref(handle), flags))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return fd
    finally:
        os.close(mount_fd)


def drop_kernel_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("2\n")


def snapshot_inodes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = os.lstat(path).st_ino
    return out


def test_inodes_are_identical_after_remount(mount: Mount, src: Path) -> None:
    os.makedirs(src / "a" / "b")
    for i in range(20):
        (src / "a" / f"f{i}").write_text(str(i))
    (src / "a" / "b" / "deep").write_text("d")
    before = snapshot_inodes(mount.path)
    mount.remount()
    assert snapshot_inodes(mount.path) == before


def test_inode_numbers_are_never_reused(src: Path) -> None:
    seen = set()
    for _ in range(20):
        (src / "f").write_text("x")
        ino = os.stat(src / "f").st_ino
        assert ino not in seen
        seen.add(ino)
        os.unlink(src / "f")


def test_file_handle_opens_after_the_kernel_forgot_the_inode(mount: Mount, src: Path) -> None:
    os.makedirs(src / "d")
    (src / "d" / "f").write_text("by handle")
    handle = name_to_handle(src / "d" / "f")
    drop_kernel_caches()
    fd = open_by_handle(mount.path, handle)
    try:
        assert os.read(fd, 100) == b"by handle"
    finally:
        os.close(fd)


def test_directory_handle_reconnects_through_dotdot(mount: Mount, src: Path) -> None:
    os.makedirs(src / "x" / "y" / "z")
    handle = name_to_handle(src / "x" / "y" / "z")
    drop_kernel_caches()
    fd = open_by_handle(mount.path, handle, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # resolving the path makes the kernel walk up with lookup(dir, "..")
        assert os.readlink(f"/proc/self/fd/{fd}") == str(src / "x" / "y" / "z")
        parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        try:
            assert os.listdir(parent) == ["z"]
        finally:
            os.close(parent)
    finally:
        os.close(fd)


def test_file_handle_survives_a_remount(mount: Mount, src: Path) -> None:
    (src / "kept").write_text("same file")
    handle = name_to_handle(src / "kept")
    mount.remount()
    fd = open_by_handle(mount.path, handle)
    try:
        assert os.read(fd, 100) == b"same file"
    finally:
        os.close(fd)


def test_handle_of_a_deleted_file_is_stale(mount: Mount, src: Path) -> None:
    (src / "doomed").write_text("x")
    handle = name_to_handle(src / "doomed")
    os.unlink(src / "doomed")
    drop_kernel_caches()
    try:
        fd = open_by_handle(mount.path, handle)
    except OSError as exc:
        assert exc.errno in (116, 2)  # ESTALE or ENOENT
    else:
        os.close(fd)
        raise AssertionError("a deleted file opened by handle")
