"""Extended attributes set through the mount: on the disk for local sources, in the
catalog for remote ones (and for a local file's older ones)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Mount, in_process

from markfs.catalog import xattrs
from markfs.namespace.tree import Tree

# the core of the suite runs on both catalog engines (tests/conftest.py)
pytestmark = pytest.mark.both_engines


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


def test_a_local_files_attributes_are_kept_on_the_disk(src: Path, backing: Path) -> None:
    (src / "f").write_text("x")
    os.setxattr(src / "f", "user.through-mount", b"1")
    os.setxattr(backing / "f", "user.on-disk", b"2")
    assert os.getxattr(backing / "f", "user.through-mount") == b"1"
    assert os.getxattr(src / "f", "user.on-disk") == b"2"
    assert sorted(os.listxattr(src / "f")) == ["user.on-disk", "user.through-mount"]
    os.removexattr(src / "f", "user.on-disk")
    assert os.listxattr(backing / "f") == ["user.through-mount"]


def test_a_symlink_refuses_user_attributes_as_on_the_disk(src: Path, backing: Path) -> None:
    os.symlink("target", src / "link")
    for where in (src, backing):
        with pytest.raises(OSError) as exc:
            os.setxattr(where / "link", "user.k", b"v", follow_symlinks=False)
        assert exc.value.errno == errno.EPERM


def test_attributes_a_local_file_had_in_the_catalog_are_still_read_and_removed(
        mount: Mount, src: Path, data_dir: Path) -> None:
    (src / "f").write_text("x")
    mount.stop()

    def keep_in_catalog(tree: Tree) -> None:
        node = tree.resolve("sources/loc/f")
        with tree.transaction() as txn:
            xattrs.set_xattr(txn, node.id, b"user.old", b"from the catalog")
    in_process(keep_in_catalog, data_dir)
    mount.start()
    assert os.getxattr(src / "f", "user.old") == b"from the catalog"
    assert os.listxattr(src / "f") == ["user.old"]
    os.removexattr(src / "f", "user.old")
    assert os.listxattr(src / "f") == []


def getxattr_requests(mount: Mount) -> int:
    for line in (mount.path / ".markfs" / "metrics").read_text().splitlines():
        if line.startswith('markfs_fuse_request_seconds_count{op="getxattr"}'):
            return int(float(line.split()[-1]))
    return 0


@pytest.mark.parametrize("xattrs", [True, False])
def test_a_mount_without_xattrs_costs_ls_no_request_per_entry(
        tmp_path: Path, data_dir: Path, backing: Path, xattrs: bool) -> None:
    """`[mount] xattrs = false` (issue 25, part 6): every xattr call is ENOSYS, which the
    kernel remembers — `ls -l` asks no GETXATTR per entry (with them: two, for
    security.selinux and system.posix_acl_access); tags stay with the CLI."""
    for number in range(50):
        (backing / f"f{number}").write_text("x")
    (data_dir / "markfs.toml").write_text(f"[mount]\nxattrs = {str(xattrs).lower()}\n")
    point = tmp_path / "mnt"
    point.mkdir()
    for mount in Mount(data_dir, point).start().checked():
        folder = mount.path / "sources" / "loc"
        os.listdir(folder)
        before = getxattr_requests(mount)
        subprocess.run(["ls", "-l", str(folder)], stdout=subprocess.DEVNULL, check=True)
        asked = getxattr_requests(mount) - before
        if xattrs:
            assert asked >= 50
            os.setxattr(folder / "f0", "user.k", b"v")
            assert os.getxattr(folder / "f0", "user.k") == b"v"
        else:
            assert asked <= 1  # (the first, answered ENOSYS)
            with pytest.raises(OSError) as refused:
                os.setxattr(folder / "f0", "user.k", b"v")
            assert refused.value.errno == errno.EOPNOTSUPP
            with pytest.raises(OSError) as unlisted:
                os.listxattr(folder / "f0")
            assert unlisted.value.errno == errno.EOPNOTSUPP
