"""Extended attributes set through the mount (kept in the catalog)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import Mount


def test_set_get_list_remove(src: Path) -> None:
    path = src / "f"
    path.write_text("x")
    os.setxattr(path, "user.comment", b"hello")
    os.setxattr(path, "user.owner", b"team-a")
    assert os.getxattr(path, "user.comment") == b"hello"
    assert sorted(os.listxattr(path)) == ["user.comment", "user.owner"]
    os.removexattr(path, "user.comment")
    assert os.listxattr(path) == ["user.owner"]


def test_missing_attribute_is_enodata(src: Path) -> None:
    (src / "f").write_text("x")
    with pytest.raises(OSError) as exc:
        os.getxattr(src / "f", "user.nothing")
    assert exc.value.errno == errno.ENODATA
    with pytest.raises(OSError) as exc2:
        os.removexattr(src / "f", "user.nothing")
    assert exc2.value.errno == errno.ENODATA


def test_only_the_user_namespace_is_writable(src: Path) -> None:
    (src / "f").write_text("x")
    with pytest.raises(OSError) as exc:
        os.setxattr(src / "f", "trusted.x", b"1")
    assert exc.value.errno in (errno.ENOTSUP, errno.EPERM)


def test_attributes_survive_rename_and_remount(mount: Mount, src: Path) -> None:
    (src / "f").write_text("x")
    os.setxattr(src / "f", "user.k", b"\x00binary\xff")
    os.rename(src / "f", src / "g")
    mount.remount()
    assert os.getxattr(src / "g", "user.k") == b"\x00binary\xff"


def test_attributes_go_with_the_file(src: Path) -> None:
    (src / "f").write_text("x")
    os.setxattr(src / "f", "user.k", b"v")
    os.unlink(src / "f")
    (src / "f").write_text("new file")
    assert os.listxattr(src / "f") == []
