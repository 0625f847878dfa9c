"""What follows a close at once costs the server nothing (issue 25): a closed file's
upload waits `upload_delay`, so rsync's rename of its temporary file, tar's chmod and
utime, and the delete of a temporary file change only the catalog and the upload to
come. fsync and unmount do not wait for the delay.

The delay is an hour here, so nothing can reach the server by chance before the test
looks; the thread hops counted are the daemon's calls to the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount
from remote_helpers import DaemonMetrics, RemoteSource, fsync_all, mount_remote, source_for
from servers import free_port

SERVER_CALLS = ("rename", "unlink", "set_attrs", "chmod", "chown", "utime", "upload")


@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


@pytest.fixture
def delayed(remote: RemoteSource, tmp_path: Path, data_dir: Path
            ) -> Iterator[tuple[Mount, DaemonMetrics]]:
    port = free_port()
    mount = mount_remote(tmp_path, data_dir, remote)
    try:
        (data_dir / "markfs.toml").write_text(
            f'[mount]\nupload_delay = 3600\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        mount.remount()
        yield mount, DaemonMetrics(port)
    finally:
        mount.stop()


def test_rsyncs_temporary_file_is_renamed_without_a_server_call(
        delayed: tuple[Mount, DaemonMetrics], remote: RemoteSource) -> None:
    mount, metrics = delayed
    folder = mount.path / "sources" / "r"
    temporary, final = folder / ".data.bin.Xq3a", folder / "data.bin"
    temporary.write_bytes(b"rsync's bytes")
    os.chmod(temporary, 0o640)
    os.chown(temporary, 4242, 4242)  # (tar and rsync -a as root)
    os.utime(temporary, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    os.rename(temporary, final)
    (folder / "lock").write_bytes(b"git's lock")
    os.unlink(folder / "lock")
    assert metrics.hops(*SERVER_CALLS) == 0, [c for c in SERVER_CALLS if metrics.hops(c)]
    assert remote.names() == set()
    fsync_all(folder)  # an fsync does not wait out the delay
    assert remote.get("data.bin") == b"rsync's bytes"
    assert remote.names() == {"data.bin"}
    assert metrics.hops("rename", "unlink") == 0
    after = os.stat(final)
    assert (after.st_mode & 0o777, after.st_mtime_ns) == (0o640, 1_500_000_000_000_000_000)
    # SFTP: mode and times set on the upload's temporary file before its rename (no
    # chmod, utime and stat after it: three round trips a file for tar and rsync)
    assert metrics.hops("chmod", "utime") == 0
    if remote.kind != "sftp":  # S3: mode and mtime went with the upload, as metadata
        assert metrics.hops("set_attrs") == 0
        meta = remote.metadata("data.bin") or {}
        assert (int(meta["mode"]) & 0o777, meta["mtime"]) == (0o640, "1500000000.000000000")
        assert (meta["uid"], meta["gid"]) == ("4242", "4242")


def test_a_rename_after_the_upload_began_still_moves_it_on_the_server(
        delayed: tuple[Mount, DaemonMetrics], remote: RemoteSource) -> None:
    mount, metrics = delayed
    folder = mount.path / "sources" / "r"
    (folder / "a").write_bytes(b"sent first")
    fsync_all(folder)
    assert remote.names() == {"a"}
    os.rename(folder / "a", folder / "b")
    assert metrics.hops("rename") == 1
    assert remote.names() == {"b"} and remote.get("b") == b"sent first"


def test_unmount_sends_what_waits_without_waiting_out_the_delay(
        remote: RemoteSource, tmp_path: Path, data_dir: Path) -> None:
    mount = mount_remote(tmp_path, data_dir, remote, "upload_delay = 3600\n")
    try:
        (mount.path / "sources" / "r" / "late").write_bytes(b"closed before unmount")
    finally:
        mount.stop()  # (waiting out the delay would pass pytest's timeout)
    assert remote.get("late") == b"closed before unmount"
