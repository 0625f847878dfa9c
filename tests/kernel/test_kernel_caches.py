"""The kernel keeps names and attributes as long as markfs can keep them true (issue 25,
part 2): a repeated stat of an unchanged file makes no request at all, and every change
markfs learns of — the watcher's, a listing refresh's, a command's, the mount's own —
reaches the kernel at once instead of waiting for a timeout.

Every mount here has `entry_ttl = attr_ttl = 0`: before, each stat was a request. The
waits below are waits on a condition, bounded far below `dir_ttl` (an hour), so only a
pushed invalidation can end them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Mount, run_markfs
from remote_helpers import DaemonMetrics, RemoteSource, mount_remote, source_for
from servers import free_port
from users import Seen, alice, outcome

WAIT_S = 10.0  # far below dir_ttl: only an invalidation can end a wait in time


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Requests(DaemonMetrics):
    def names_and_attrs(self) -> int:
        """LOOKUP and GETATTR requests the daemon has answered."""
        return self.requests("lookup", "getattr")

    def watched(self) -> bool:
        return "markfs_watched_sources 1.0" in self.text()


def configure(data_dir: Path, port: int) -> None:
    (data_dir / "markfs.toml").write_text(
        "[mount]\nentry_ttl = 0\nattr_ttl = 0\ndir_ttl = 3600\n"
        f'[metrics]\nlisten = "127.0.0.1:{port}"\n')


def stat_asks_nothing(requests: Requests, path: Path) -> None:
    os.stat(path)
    before = requests.names_and_attrs()
    for _ in range(20):
        os.stat(path)
    assert requests.names_and_attrs() == before


@pytest.fixture
def watched(mount: Mount, data_dir: Path) -> Iterator[Requests]:
    port = free_port()
    configure(data_dir, port)
    mount.remount("--allow-other")  # (a second user's view is one of the subjects)
    requests = Requests(port)
    assert eventually(requests.watched)  # the watcher's events are the test's subject
    yield requests


def test_a_watched_local_file_is_stat_without_a_request(
        watched: Requests, src: Path, backing: Path) -> None:
    (backing / "sub").mkdir()
    (backing / "sub" / "f").write_bytes(b"x")
    assert os.listdir(src / "sub") == ["f"]
    stat_asks_nothing(watched, src / "sub" / "f")
    stat_asks_nothing(watched, src / "sub")
    with pytest.raises(FileNotFoundError):
        os.stat(src / "sub" / "absent")
    stat_asks_nothing(watched, src / "sub" / "f")  # (and the miss is kept too:)
    before = watched.names_and_attrs()
    for _ in range(5):
        assert not (src / "sub" / "absent").exists()
    assert watched.names_and_attrs() == before


def test_changes_by_the_watcher_reach_the_kernel_at_once(
        watched: Requests, src: Path, backing: Path) -> None:
    (backing / "f").write_bytes(b"one")
    (backing / "gone").write_bytes(b"x")
    assert sorted(os.listdir(src)) == ["f", "gone"]
    assert os.stat(src / "f").st_size == 3
    assert not (src / "new").exists()
    (backing / "f").write_bytes(b"one two")
    assert eventually(lambda: os.stat(src / "f").st_size == 7)
    assert (src / "f").read_bytes() == b"one two"  # the page cache was dropped as well
    os.chmod(backing / "f", 0o600)
    assert eventually(lambda: os.stat(src / "f").st_mode & 0o777 == 0o600)
    (backing / "new").write_bytes(b"n")  # the kernel held "no such name"
    assert eventually(lambda: (src / "new").exists())
    os.unlink(backing / "gone")
    assert eventually(lambda: not (src / "gone").exists())


def test_a_permission_taken_away_outside_holds_for_a_second_user_at_once(
        watched: Requests, src: Path, backing: Path) -> None:
    """The kernel checks modes itself (`default_permissions`) against what it keeps:
    a chmod made on the disk must reach it at once, not after `dir_ttl` (an hour)."""
    (backing / "sub").mkdir(mode=0o755)
    (backing / "sub" / "f").write_text("shared")
    (backing / "g").write_text("shared too")
    os.chmod(backing / "g", 0o644)
    read_f = lambda: Seen(Path("sub/f").read_text())  # noqa: E731
    read_g = lambda: Seen(Path("g").read_text())  # noqa: E731
    assert outcome(alice, src, read_f) == repr("shared")
    assert outcome(alice, src, read_g) == repr("shared too")
    os.chmod(backing / "g", 0o600)
    os.chmod(backing / "sub", 0o700)
    assert eventually(lambda: outcome(alice, src, read_g) == "EACCES")
    assert eventually(lambda: outcome(alice, src, read_f) == "EACCES")
    assert outcome(alice, src, lambda: Seen(os.stat("sub/f").st_size)) == "EACCES"


def test_changes_through_the_mount_are_seen_at_once(watched: Requests, src: Path) -> None:
    (src / "a").write_bytes(b"12345")
    assert os.stat(src / "a").st_size == 5
    os.rename(src / "a", src / "b")
    assert not (src / "a").exists() and os.stat(src / "b").st_size == 5
    os.truncate(src / "b", 2)
    os.chmod(src / "b", 0o640)
    after = os.stat(src / "b")
    assert (after.st_size, after.st_mode & 0o777) == (2, 0o640)
    os.link(src / "b", src / "c")
    assert os.stat(src / "b").st_nlink == 2
    os.unlink(src / "c")
    assert os.stat(src / "b").st_nlink == 1


@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


def test_a_remote_file_is_stat_without_a_request_and_a_command_is_seen_at_once(
        remote: RemoteSource, tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    remote.put("d/f", b"remote bytes")
    mount = mount_remote(tmp_path, data_dir, remote)
    try:
        configure(data_dir, port)
        mount.remount()
        requests = Requests(port)
        folder = mount.path / "sources" / "r" / "d"
        assert os.listdir(folder) == ["f"]
        stat_asks_nothing(requests, folder / "f")
        assert not (folder / "copy").exists()  # a miss the kernel keeps
        run_markfs(data_dir, "cp", "/sources/r/d/f", "/sources/r/d/copy")
        assert (folder / "copy").read_bytes() == b"remote bytes"  # at once: no wait
    finally:
        mount.stop()


def test_a_listing_refresh_shows_an_outside_change_within_dir_ttl(
        remote: RemoteSource, tmp_path: Path, data_dir: Path) -> None:
    """What markfs cannot see (another client changed the server) is kept by the
    kernel no longer than the listing it came from (`dir_ttl`, 1 s here)."""
    remote.put("d/f", b"one")
    mount = mount_remote(tmp_path, data_dir, remote, "entry_ttl = 0\nattr_ttl = 0\n"
                         "dir_ttl = 1\n")
    try:
        folder = mount.path / "sources" / "r" / "d"
        assert os.stat(folder / "f").st_size == 3
        remote.put("d/f", b"one two three")
        remote.put("d/g", b"new")
        assert eventually(lambda: os.stat(folder / "f").st_size == 13)
        assert eventually(lambda: (folder / "g").exists())
    finally:
        mount.stop()


@pytest.fixture(params=["sftp"])
def sftp_remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


def test_an_upload_that_changed_a_files_times_reaches_the_kernel(
        sftp_remote: RemoteSource, tmp_path: Path, data_dir: Path) -> None:
    """SFTP gives an uploaded file the time of its upload: the kernel, which keeps the
    file's attributes for as long as the listing is trusted, is told."""
    port = free_port()
    remote = sftp_remote
    mount = mount_remote(tmp_path, data_dir, remote)
    try:
        configure(data_dir, port)
        mount.remount()
        folder = mount.path / "sources" / "r"
        assert os.listdir(folder) == []
        (folder / "f").write_bytes(b"uploaded later")
        seen_at_close = os.stat(folder / "f").st_mtime_ns
        with open(folder / "f", "rb") as written:
            os.fsync(written.fileno())
        # the server's own time, in SFTP's whole seconds: what is to be shown now
        on_server = os.stat(tmp_path / "sftp-root" / "f").st_mtime_ns // 10**9 * 10**9
        assert on_server != seen_at_close
        assert eventually(lambda: os.stat(folder / "f").st_mtime_ns == on_server)
    finally:
        mount.stop()
