"""Several daemons on one data directory, unmounting and stopping them: nothing that
close() or fsync() acknowledged is lost, and no daemon waits on another's uploads."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, force_unmount, run_markfs
from remote_helpers import Stoppable, mount_remote, pending_while_down, wait_until

FAST = "io_timeout = 2.0\nlist_timeout = 2.0\ndir_ttl = 0.5\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Stoppable]:
    srv = Stoppable("s3", tmp_path)
    try:
        yield srv
    finally:
        srv.close()


def second_mount(tmp_path: Path, data_dir: Path, root: str = "sources/r") -> Mount:
    point = tmp_path / "second"
    point.mkdir()
    return Mount(data_dir, point, root=root).start()


def test_a_second_mount_keeps_the_open_files_of_the_first(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    first = mount_remote(tmp_path, data_dir, server.source, FAST)
    second = None
    try:
        fd = os.open(first.path / "sources" / "r" / "f.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"before " * 1000)
            second = second_mount(tmp_path, data_dir)
            os.write(fd, b"after " * 1000)
            os.fsync(fd)
        finally:
            os.close(fd)
        server.source.wait_for("f.bin", b"before " * 1000 + b"after " * 1000)
        assert (second.path / "f.bin").read_bytes() == b"before " * 1000 + b"after " * 1000
    finally:
        first.stop()
        if second is not None:
            second.stop()
    first.assert_log_clean()


def background(data_dir: Path, point: Path, *extra: str) -> None:
    point.mkdir()
    run_markfs(data_dir, "mount", str(point), *extra)


def test_umount_waits_only_for_its_own_uploads(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "source", "add", "r", server.source.url)
    (data_dir / "markfs.toml").write_text("[mount]\n" + FAST + "drain_timeout = 60.0\n")
    a, b = tmp_path / "a", tmp_path / "b"
    background(data_dir, a)
    background(data_dir, b, "--root", "sources/r")
    try:
        os.listdir(b)
        server.stop()
        (b / "pending.txt").write_bytes(b"waits for the server")
        done = run_markfs(data_dir, "umount", str(a), check=False)
        assert done.returncode == 0, done.stderr
        server.start()
        run_markfs(data_dir, "umount", str(b))
    finally:
        for point in (a, b):
            force_unmount(point)
    assert server.source.get("pending.txt") == b"waits for the server"


def test_sigterm_ends_the_drain_and_the_journal_keeps_the_upload(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    mount = mount_remote(tmp_path, data_dir, server.source, FAST)
    try:
        pending_while_down(mount, server, "kept.txt", b"journaled")
        subprocess.run(["fusermount3", "-u", str(mount.path)], check=True)  # drain begins
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGTERM)
        mount.proc.wait(timeout=15)
        assert "pending uploads: 1 " in run_markfs(data_dir, "status").stdout
        server.start()
        mount.start()
        server.source.wait_for("kept.txt", b"journaled")
    finally:
        mount.stop()
    mount.assert_fsck_clean()


def test_an_upload_whose_staged_copy_is_gone_is_parked_not_retried(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    mount = mount_remote(tmp_path, data_dir, server.source, FAST)
    try:
        pending_while_down(mount, server, "lost.txt", b"staged only")
        # the first attempt over (boto3's own retries included): no PUT holds the bytes
        # that could still reach the server once it is back
        wait_until(lambda: "failed (attempt 1)" in mount.log.read_text(), 30)
        for staged in (data_dir / "staging").iterdir():
            staged.unlink()
        server.start()
        status = ""
        for _ in range(100):
            status = run_markfs(data_dir, "status").stdout
            if "parked uploads: 1" in status:
                break
            os.system("sleep 0.2")
        assert "parked uploads: 1" in status and "lost.txt" in status, status
        assert "pending uploads: 0 " in status
        os.system("sleep 3")  # a retry would come due within this time
    finally:
        mount.stop()
    assert mount.log.read_text().count("parked") == 1
    repaired = run_markfs(data_dir, "fsck", "--repair")
    assert "dropped 1 upload" in repaired.stdout
    assert "parked uploads: 0" in run_markfs(data_dir, "status").stdout
