"""The upload journal under stress: multipart uploads a crash cut short, files that
change or move while they upload, and fsync after an outage."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import Mount, force_unmount, run_markfs
from remote_helpers import (
    RemoteSource,
    Stoppable,
    mount_remote,
    pending_while_down,
    s3_source,
    wait_until,
)
from servers import S3Server, SeaweedServer, StallingProxy

CONFIG = "io_timeout = 3.0\nattr_ttl = 0.2\nentry_ttl = 0.2\ndir_ttl = 0.5\n"


@dataclasses.dataclass
class Slowed:
    source: RemoteSource  # through the proxy
    client: Any  # straight to the server
    bucket: str
    proxy: StallingProxy


@pytest.fixture(params=["moto", "seaweedfs"])
def slowed(request: pytest.FixtureRequest) -> Iterator[Slowed]:
    server: S3Server | SeaweedServer = request.getfixturevalue(
        "s3" if request.param == "moto" else "seaweed")
    bucket = f"journal-{os.getpid()}-{os.urandom(3).hex()}"
    source = s3_source(server, bucket)
    proxy = StallingProxy(int(server.endpoint.rsplit(":", 1)[1]))
    try:
        yield Slowed(dataclasses.replace(
            source, url=source.url.replace(server.endpoint, proxy.endpoint)),
            server.client(), bucket, proxy)
    finally:
        proxy.close()


def multipart_uploads(slowed: Slowed) -> list[str]:
    found = slowed.client.list_multipart_uploads(Bucket=slowed.bucket)
    return [u["UploadId"] for u in found.get("Uploads", [])]


def test_kill_9_during_a_multipart_upload_leaves_no_incomplete_upload(
        slowed: Slowed, tmp_path: Path, data_dir: Path) -> None:
    data = os.urandom(40 << 20)  # three parts
    mount = mount_remote(tmp_path, data_dir, slowed.source, CONFIG)
    try:
        slowed.proxy.pause_s = 0.02  # a slow server: the upload is still running below
        (mount.path / "sources" / "r" / "big.bin").write_bytes(data)
        wait_until(lambda: multipart_uploads(slowed))
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGKILL)
        mount.proc.wait()
        force_unmount(mount.path)
        mount.proc = None
        slowed.proxy.pause_s = 0.0
        mount.start()
        slowed.source.wait_for("big.bin", data)
        wait_until(lambda: not multipart_uploads(slowed))
    finally:
        mount.stop()
    mount.assert_fsck_clean()


def test_a_file_changed_while_it_uploads_starts_over_and_renames_promptly(
        slowed: Slowed, tmp_path: Path, data_dir: Path) -> None:
    mount = mount_remote(tmp_path, data_dir, slowed.source, CONFIG)
    files = mount.path / "sources" / "r"
    try:
        slowed.proxy.pause_s = 0.02
        (files / "f.bin").write_bytes(os.urandom(40 << 20))
        wait_until(lambda: multipart_uploads(slowed))
        (files / "f.bin").write_bytes(b"second version")  # truncates what is uploading
        started = time.monotonic()
        os.rename(files / "f.bin", files / "g.bin")
        assert time.monotonic() - started < 3.0 + 2.0  # io_timeout at most, + a margin
        slowed.proxy.pause_s = 0.0
        slowed.source.wait_for("g.bin", b"second version")
        assert slowed.source.get("f.bin") is None
        assert (files / "g.bin").read_bytes() == b"second version"
        wait_until(lambda: not multipart_uploads(slowed))
    finally:
        mount.stop()
    mount.assert_log_clean()
    mount.assert_fsck_clean()


def upload_attempts(data_dir: Path) -> int:
    conn = apsw.Connection(str(data_dir / "catalog.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        row = conn.execute("SELECT max(attempts) FROM uploads").fetchone()
        return int(row[0] or 0) if row else 0
    finally:
        conn.close()


def test_fsync_after_an_outage_retries_at_once(tmp_path: Path, data_dir: Path) -> None:
    server = Stoppable("s3", tmp_path)
    io_timeout = 1.5  # fsync waits at most 4 x this: 6 s
    mount = mount_remote(tmp_path, data_dir, server.source,
                         f"io_timeout = {io_timeout}\nlist_timeout = {io_timeout}\n")
    try:
        path = pending_while_down(mount, server, "late.txt", b"written while the server was down")
        wait_until(lambda: upload_attempts(data_dir) >= 3)  # the next try: 8 s away
        server.start()
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, b"w", 0)
            os.fsync(fd)  # EIO if it waited out the back-off
        finally:
            os.close(fd)
        assert server.source.get("late.txt") == b"written while the server was down"
    finally:
        mount.stop()
        server.close()


def test_fsync_through_a_descriptor_that_wrote_nothing_waits_for_the_upload(
        tmp_path: Path, data_dir: Path) -> None:
    """`sync FILE` opens the file read-only and fsyncs it: the file's content as closed
    through another descriptor is on the server when fsync returns (before: it
    returned at once, the upload still waiting for the server)."""
    server = Stoppable("s3", tmp_path)
    mount = mount_remote(tmp_path, data_dir, server.source, "io_timeout = 5\n")
    try:
        path = pending_while_down(mount, server, "synced.txt", b"closed, then synced")
        wait_until(lambda: upload_attempts(data_dir) >= 1)
        seen: list[bytes | None] = []

        def sync() -> None:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                seen.append(server.source.get("synced.txt"))
            finally:
                os.close(fd)
        syncing = threading.Thread(target=sync)
        syncing.start()
        server.start()
        syncing.join()
        assert seen == [b"closed, then synced"]
    finally:
        mount.stop()
        server.close()


def test_the_rows_of_a_daemon_killed_and_left_a_zombie_are_adopted_and_sent(
        tmp_path: Path, data_dir: Path) -> None:
    """kill -9 of a daemon nobody reaps (no init in a container; here: this test, its
    parent, does not wait): a zombie is gone. The next mount adopts its journal rows and
    `markfs umount` returns only once they reached S3 (issue 24, part 4)."""
    server = Stoppable("s3", tmp_path)
    mount = mount_remote(tmp_path, data_dir, server.source, CONFIG)
    try:
        pending_while_down(mount, server, "orphan.txt", b"written before the kill")
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGKILL)
        wait_until(lambda: zombie(mount.proc.pid))  # type: ignore[union-attr]
        force_unmount(mount.path)
        server.start()
        later = Mount(data_dir, tmp_path / "later")
        later.path.mkdir()
        later.start()
        try:
            done = run_markfs(data_dir, "umount", str(later.path))
            assert "pending" not in done.stderr
            assert server.source.get("orphan.txt") == b"written before the kill"
        finally:
            later.stop()
    finally:
        if mount.proc is not None:
            mount.proc.wait()  # reaped at last
            mount.proc = None
        server.close()


def zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"



def test_a_source_with_files_not_uploaded_is_removed_only_when_told_to_discard_them(
        tmp_path: Path, data_dir: Path) -> None:
    """`source remove` would drop the journal rows with the source (issue 24, part 4):
    refused in one line saying how many; --discard-pending removes it; a running mount
    then no longer shows it."""
    server = Stoppable("s3", tmp_path)
    mount = mount_remote(tmp_path, data_dir, server.source, CONFIG)
    try:
        pending_while_down(mount, server, "unsent.txt", b"not on S3 yet")
        refused = run_markfs(data_dir, "source", "remove", "r", check=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert "1 file(s)" in refused.stderr and "--discard-pending" in refused.stderr
        assert "r\t" in run_markfs(data_dir, "source", "list").stdout
        run_markfs(data_dir, "source", "remove", "r", "--discard-pending")
        assert run_markfs(data_dir, "source", "list").stdout == ""
        wait_until(lambda: "r" not in os.listdir(mount.path / "sources"))
        assert not os.path.exists(mount.path / "sources" / "r" / "unsent.txt")
    finally:
        mount.stop()
        server.close()
    mount.assert_log_clean()
    mount.assert_fsck_clean()
