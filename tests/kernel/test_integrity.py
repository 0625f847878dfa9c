"""Never wrong bytes: content identities that cannot collide, blobs that are verified."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, run_markfs
from remote_helpers import RemoteSource, mount_remote, s3_source, sftp_source
from servers import S3Server, SshServer

OLD_TIME = 1_600_000_000  # a fixed mtime: makes two versions look alike to SFTP


@pytest.fixture
def sftp_remote(sshd: SshServer, tmp_path: Path) -> RemoteSource:
    return sftp_source(sshd, tmp_path / "sftp-root")


@pytest.fixture
def sftp_mount(tmp_path: Path, data_dir: Path, sftp_remote: RemoteSource) -> Iterator[Mount]:
    yield from mount_remote(tmp_path, data_dir, sftp_remote, "dir_ttl = 0.5\n").checked()


def pread_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def write_through(path: Path, offset: int, data: bytes, truncate: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o644)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def test_sftp_rewrite_of_the_same_size_is_read_back_after_a_remount(
        sftp_mount: Mount) -> None:
    path = sftp_mount.path / "sources" / "r" / "f.bin"
    write_through(path, 0, b"A" * 100_000, truncate=True)
    assert pread_at(path, 50_000, 4) == b"AAAA"
    write_through(path, 50_000, b"BBBB")
    sftp_mount.remount()
    assert pread_at(path, 50_000, 4) == b"BBBB"


def test_sftp_write_through_the_mount_is_never_hidden_by_an_equal_size_and_mtime(
        sftp_mount: Mount, tmp_path: Path) -> None:
    on_server = tmp_path / "sftp-root" / "f.bin"
    path = sftp_mount.path / "sources" / "r" / "f.bin"
    write_through(path, 0, b"A" * 100_000, truncate=True)
    os.utime(on_server, (OLD_TIME, OLD_TIME))
    sftp_mount.remount()
    assert pread_at(path, 50_000, 4) == b"AAAA"  # cached under size + that mtime
    write_through(path, 50_000, b"BBBB")
    os.utime(on_server, (OLD_TIME, OLD_TIME))  # the same identity as the cached version
    sftp_mount.remount()
    assert pread_at(path, 50_000, 4) == b"BBBB"


def test_sftp_outside_rewrite_within_the_same_second_is_noticed(
        sftp_mount: Mount, sftp_remote: RemoteSource, tmp_path: Path) -> None:
    on_server = tmp_path / "sftp-root" / "g.bin"
    sftp_remote.put("g.bin", b"A" * 100_000)
    mtime = int(on_server.stat().st_mtime)
    os.utime(on_server, (mtime, mtime))
    path = sftp_mount.path / "sources" / "r" / "g.bin"
    assert pread_at(path, 50_000, 4) == b"AAAA"
    sftp_remote.put("g.bin", b"B" * 100_000)
    os.utime(on_server, (mtime, mtime))  # what SFTP shows is unchanged
    deadline = 20
    while pread_at(path, 50_000, 4) != b"BBBB" and deadline:
        os.system("sleep 0.5")
        deadline -= 1
    assert pread_at(path, 50_000, 4) == b"BBBB"


def blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "cache" / "blobs").rglob("*") if p.is_file()]


def damage(blob: Path) -> None:
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 64)


@pytest.fixture
def s3_remote(s3: S3Server) -> RemoteSource:
    return s3_source(s3, f"verify-{os.getpid()}-{os.urandom(3).hex()}")


def test_a_damaged_blob_is_dropped_and_fetched_again(
        tmp_path: Path, data_dir: Path, s3_remote: RemoteSource) -> None:
    data = os.urandom(300_000)
    s3_remote.put("x.bin", data)
    mount = mount_remote(tmp_path, data_dir, s3_remote)
    try:
        path = mount.path / "sources" / "r" / "x.bin"
        assert path.read_bytes() == data
        mount.stop()
        (blob,) = blob_files(data_dir)
        damage(blob)
        mount.start()
        assert path.read_bytes() == data
    finally:
        mount.stop()
    assert "damaged" in mount.log.read_text()
    mount.assert_fsck_clean()


def test_fsck_finds_a_damaged_blob_and_repair_drops_it(
        tmp_path: Path, data_dir: Path, s3_remote: RemoteSource) -> None:
    s3_remote.put("x.bin", os.urandom(50_000))
    mount = mount_remote(tmp_path, data_dir, s3_remote)
    try:
        (mount.path / "sources" / "r" / "x.bin").read_bytes()
    finally:
        mount.stop()
    (blob,) = blob_files(data_dir)
    damage(blob)
    found = run_markfs(data_dir, "fsck", check=False)
    assert found.returncode == 1 and "damaged" in found.stdout, found.stdout
    repaired = run_markfs(data_dir, "fsck", "--repair")
    assert "repaired" in repaired.stdout and not blob.exists()
    mount.assert_fsck_clean()
