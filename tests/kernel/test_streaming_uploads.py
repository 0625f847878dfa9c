"""Write-back that streams: a large file written to S3 (moto, SeaweedFS) or SFTP goes
out in pieces while it is being written, and whatever happens to it meanwhile — a write
into what was sent, a rename, kill -9 — the server ends with the closed content and
nothing half-sent."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from conftest import force_unmount, run_markfs
from remote_helpers import RemoteSource, mount_remote, source_for, wait_until

from markfs.backends.s3 import PART_SIZE
from markfs.backends.sftp import PIECE_SIZE

CONFIG = "io_timeout = 5.0\nattr_ttl = 0.2\nentry_ttl = 0.2\ndir_ttl = 0.5\n"


@pytest.fixture(params=["s3", "seaweedfs", "sftp"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


def piece_of(source: RemoteSource) -> int:
    return PIECE_SIZE if source.kind == "sftp" else PART_SIZE


def sent_while_open(source: RemoteSource) -> int:
    """Bytes the server holds of unfinished uploads (0 if none)."""
    return sum(source.unfinished())


def write_until_sent(f: BinaryIO, data: bytes, source: RemoteSource, sent: int) -> None:
    """Write through an open file, then wait (the file still open) until the server
    holds at least `sent` bytes of it."""
    f.write(data)
    f.flush()
    wait_until(lambda: sent_while_open(source) >= sent)


def test_a_large_file_goes_out_while_it_is_still_being_written(
        source: RemoteSource, tmp_path: Path, data_dir: Path) -> None:
    piece = piece_of(source)
    data = os.urandom(piece * 5 // 2)
    mount = mount_remote(tmp_path, data_dir, source, CONFIG)
    try:
        with open(mount.path / "sources" / "r" / "big.bin", "wb") as f:
            write_until_sent(f, data, source, 2 * piece)  # before close
            assert source.get("big.bin") is None  # invisible until finished
        source.wait_for("big.bin", data)
        wait_until(lambda: not source.unfinished())
    finally:
        mount.stop()
    mount.assert_log_clean()
    mount.assert_fsck_clean()


@pytest.fixture
def files(source: RemoteSource, tmp_path: Path, data_dir: Path) -> Iterator[Path]:
    """The source's folder in a mount; once the test is done, nothing half-sent may be
    left on the server, and fsck must be clean."""
    mount = mount_remote(tmp_path, data_dir, source, CONFIG)
    try:
        yield mount.path / "sources" / "r"
        wait_until(lambda: not source.unfinished())
    finally:
        mount.stop()
    mount.assert_fsck_clean()


def test_a_write_into_what_was_sent_sends_the_file_whole(
        source: RemoteSource, files: Path) -> None:
    piece = piece_of(source)
    data = bytearray(os.urandom(piece * 5 // 2))
    with open(files / "big.bin", "wb") as f:
        write_until_sent(f, data, source, piece)
        f.seek(100)
        f.write(b"changed after it was sent")
    data[100:125] = b"changed after it was sent"
    source.wait_for("big.bin", bytes(data))


def test_a_file_renamed_while_it_streams_arrives_whole_at_its_new_name(
        source: RemoteSource, files: Path) -> None:
    piece = piece_of(source)
    first, second = os.urandom(piece * 3 // 2), os.urandom(piece)
    with open(files / "old.bin", "wb") as f:
        write_until_sent(f, first, source, piece)
        os.rename(files / "old.bin", files / "new.bin")
        f.write(second)
    source.wait_for("new.bin", first + second)
    assert source.get("old.bin") is None


def test_kill_9_while_a_file_streams_leaves_nothing_half_sent(
        source: RemoteSource, tmp_path: Path, data_dir: Path) -> None:
    piece = piece_of(source)
    mount = mount_remote(tmp_path, data_dir, source, CONFIG)
    try:
        fd = os.open(mount.path / "sources" / "r" / "cut.bin", os.O_WRONLY | os.O_CREAT)
        os.write(fd, os.urandom(piece * 5 // 2))
        wait_until(lambda: sent_while_open(source) >= piece)
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGKILL)  # never closed: nothing was promised
        mount.proc.wait()
        with contextlib.suppress(OSError):
            os.close(fd)  # ENOTCONN: the daemon is gone
        force_unmount(mount.path)
        mount.proc = None
        status = run_markfs(data_dir, "status").stdout  # journaled before the first piece
        assert "uploads in pieces not finished: 1" in status and "cut.bin" in status
        mount.start()
        wait_until(lambda: not source.unfinished())  # the next start aborts the leftover
        assert source.get("cut.bin") is None
    finally:
        mount.stop()
    assert "uploads in pieces not finished: 0" in run_markfs(data_dir, "status").stdout
    mount.assert_fsck_clean()
