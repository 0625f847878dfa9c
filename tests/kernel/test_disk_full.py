"""A full disk under the data directory (issue 24, part 5): a write that does not fit
gets ENOSPC and leaves nothing behind — no stray temporaries, no phantom entry,
catalog and hot cache in step — and the next writes that fit work."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import in_process
from remote_helpers import RemoteSource, mount_remote, source_for, wait_until

SIZE_MIB = 24


@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    """The data directory on a filesystem of its own, 24 MiB."""
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(folder)],
                   check=True)
    try:
        data_dir = folder / "data"
        in_process(lambda tree: None, data_dir)
        yield data_dir
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_write_larger_than_the_disk_fails_and_leaves_nothing_behind(
        remote: RemoteSource, tmp_path: Path, small_data_dir: Path) -> None:
    mount = mount_remote(tmp_path, small_data_dir, remote, "io_timeout = 5.0\n")
    files = mount.path / "sources" / "r"
    try:
        remote.put("cached.bin", os.urandom(6 << 20))
        assert len((files / "cached.bin").read_bytes()) == 6 << 20  # fills the cache some
        with pytest.raises(OSError) as full, open(files / "huge.bin", "wb") as out:
            for _ in range(50):
                out.write(os.urandom(1 << 20))
        assert full.value.errno == errno.ENOSPC
        # what was written before the disk filled is a file (as a disk keeps a partial
        # one), or there is none: never a name the source will not have
        if "huge.bin" in os.listdir(files):
            shown = (files / "huge.bin").stat().st_size
            wait_until(lambda: len(remote.get("huge.bin") or b"") == shown)
        (files / "after.txt").write_bytes(b"fits")
        os.sync()
        wait_until(lambda: remote.get("after.txt") == b"fits")
    finally:
        mount.stop()
    strays = [p for p in small_data_dir.rglob("*") if p.name.endswith(".tmp")]
    assert strays == []
    report = fsck(small_data_dir, repair=False)
    assert not [p for p in report.problems if "hot cache" in p or "catalog" in p], report
    fsck(small_data_dir, repair=True)  # (a blob evicted while its index could not be
    mount.assert_fsck_clean()          # written for the full disk: dropped)


def fsck(data_dir: Path, repair: bool) -> object:
    from markfs.admin.fsck import check_data_dir
    from markfs.config import DataDir, load_mount_config

    return check_data_dir(DataDir(data_dir), repair, load_mount_config(DataDir(data_dir))
                          .cache_max_bytes)
