"""The fixed layout of the mount and its read-only control files."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from conftest import Mount


def test_root_shows_the_layout_folders(mount: Mount) -> None:
    assert sorted(os.listdir(mount.path)) == [
        ".markfs", "categories", "sources", "tables", "tags", "views"]


def test_sources_folder_lists_each_source(mount: Mount) -> None:
    assert os.listdir(mount.path / "sources") == ["loc"]


def test_readdir_includes_dot_entries(mount: Mount) -> None:
    names = [e.name for e in os.scandir(mount.path)]  # scandir hides . and ..
    assert ".markfs" in names
    fd = os.open(mount.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        raw = os.listdir(fd)
    finally:
        os.close(fd)
    assert set(raw) == set(names)


def test_status_json_is_valid_and_its_size_is_exact(mount: Mount) -> None:
    path = mount.path / ".markfs" / "status.json"
    data = path.read_bytes()
    doc = json.loads(data)
    assert doc["mountpoint"] == str(mount.path)
    assert [s["name"] for s in doc["sources"]] == ["loc"]
    assert doc["uploads_pending"] == 0
    assert abs(os.stat(path).st_size - len(data)) < 16  # uptime digits may differ


@pytest.mark.parametrize("rel", ["sources/new", "tables/x", "views/v", "newdir"])
def test_mkdir_in_layout_folders_is_refused_read_only(mount: Mount, rel: str) -> None:
    with pytest.raises(OSError) as exc:
        os.mkdir(mount.path / rel)
    assert exc.value.errno == errno.EROFS


def test_control_files_are_read_only(mount: Mount) -> None:
    with pytest.raises(OSError) as exc:
        open(mount.path / ".markfs" / "status.json", "w").close()
    assert exc.value.errno in (errno.EROFS, errno.EACCES)
    with pytest.raises(OSError) as exc2:
        (mount.path / ".markfs" / "other").write_text("x")
    assert exc2.value.errno in (errno.EROFS, errno.EACCES)


def test_statfs_reports_sizes_and_name_limit(mount: Mount) -> None:
    st = os.statvfs(mount.path)
    assert st.f_blocks > 0 and st.f_bsize > 0
    assert st.f_namemax == 255
    assert st.f_files > 0


def test_root_subtree_mount_shows_only_that_folder(mount: Mount, tmp_path: Path,
                                                   backing: Path) -> None:
    (backing / "inside.txt").write_text("hi")
    sub_point = tmp_path / "sub"
    sub_point.mkdir()
    sub = Mount(mount.data_dir, sub_point, root="sources/loc").start()
    try:
        assert os.listdir(sub_point) == ["inside.txt"]
        assert (sub_point / "inside.txt").read_text() == "hi"
        assert os.stat(sub_point).st_ino == 1
        assert os.path.samestat(os.stat(sub_point / ".."), os.stat(tmp_path))
    finally:
        sub.stop()
