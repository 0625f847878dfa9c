"""What S3 and SFTP sources do with POSIX calls through the mount (issue 13, part 1),
row by row of docs/architecture.md's table "What each kind of source supports"."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Mount
from remote_helpers import RemoteSource, mount_remote, source_for, wait_until


@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


@pytest.fixture
def rsrc(tmp_path: Path, data_dir: Path, remote: RemoteSource) -> Iterator[Path]:
    mount: Mount
    for mount in mount_remote(tmp_path, data_dir, remote).checked():
        yield mount.path / "sources" / "r"


def errno_of(call: Callable[[], object]) -> str:
    try:
        call()
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]
    return "ok"


EPERM_ON_BOTH = {
    "hard link": lambda r: os.link(r / "f", r / "g"),
    "mkfifo": lambda r: os.mkfifo(r / "p"),
    "socket node": lambda r: os.mknod(r / "s", stat.S_IFSOCK | 0o644),
    "device node": lambda r: os.mknod(r / "d", stat.S_IFCHR | 0o600, os.makedev(1, 3)),
}


@pytest.mark.parametrize("call", list(EPERM_ON_BOTH))
def test_hard_links_and_special_files_are_eperm(rsrc: Path, call: str) -> None:
    (rsrc / "f").write_bytes(b"x")
    assert errno_of(lambda: EPERM_ON_BOTH[call](rsrc)) == "EPERM"
    assert sorted(os.listdir(rsrc)) == ["f"]


def test_symlinks_are_kept_on_sftp_and_eperm_on_s3(remote: RemoteSource, rsrc: Path) -> None:
    answer = errno_of(lambda: os.symlink("elsewhere/target", rsrc / "link"))
    if remote.kind == "s3":
        assert answer == "EPERM" and not os.path.lexists(rsrc / "link")
    else:
        assert answer == "ok" and os.readlink(rsrc / "link") == "elsewhere/target"


def test_chmod_is_kept_on_the_server(
        remote: RemoteSource, rsrc: Path, tmp_path: Path) -> None:
    """SFTP: the file's mode; S3: the object's x-amz-meta-mode, as s3fs keeps it (before
    issue 24: ignored on S3, the file showed 0644 again)."""
    (rsrc / "f").write_bytes(b"x")
    os.chmod(rsrc / "f", 0o600)
    assert stat.S_IMODE(os.stat(rsrc / "f").st_mode) == 0o600
    if remote.kind == "s3":
        wait_until(lambda: (remote.metadata("f") or {}).get("mode") == str(0o100600))
        os.chmod(rsrc / "f", 0o750)  # now on an object that is there: replaced in place
        assert (remote.metadata("f") or {}).get("mode") == str(0o100750)
        assert remote.get("f") == b"x"
    else:
        on_server = tmp_path / "sftp-root" / "f"
        wait_until(lambda: on_server.exists() and stat.S_IMODE(
            os.stat(on_server).st_mode) == 0o600)
    assert stat.S_IMODE(os.stat(rsrc / "f").st_mode) == (0o750 if remote.kind == "s3"
                                                         else 0o600)


def test_utime_is_kept_on_the_server(
        remote: RemoteSource, rsrc: Path, tmp_path: Path) -> None:
    """SFTP: whole seconds (the protocol's); S3: nanoseconds in x-amz-meta-mtime (before
    issue 24: S3 showed the upload's LastModified once it landed)."""
    (rsrc / "f").write_bytes(b"x")
    os.utime(rsrc / "f", ns=(1_500_000_000_700_000_000, 1_600_000_000_900_000_000))
    if remote.kind == "s3":
        wait_until(lambda: (remote.metadata("f") or {}).get("mtime")
                   == "1600000000.900000000")
        seen = os.stat(rsrc / "f")
        assert seen.st_mtime_ns == 1_600_000_000_900_000_000
        assert seen.st_atime_ns == seen.st_mtime_ns  # S3 keeps no atime: the mtime
    else:
        on_server = tmp_path / "sftp-root" / "f"
        wait_until(lambda: on_server.exists()
                   and os.stat(on_server).st_mtime_ns == 1_600_000_000_000_000_000)
        assert os.stat(on_server).st_atime_ns == 1_500_000_000_000_000_000


def test_a_name_over_255_bytes_is_enametoolong(rsrc: Path) -> None:
    for call in (lambda: (rsrc / ("x" * 256)).write_bytes(b"x"),
                 lambda: os.mkdir(rsrc / ("x" * 256)),
                 lambda: os.stat(rsrc / ("x" * 256))):
        assert errno_of(call) == "ENAMETOOLONG"


def test_a_name_that_is_not_utf8_is_einval_on_s3_and_kept_on_sftp(
        remote: RemoteSource, rsrc: Path) -> None:
    name = os.fsencode(rsrc) + b"/caf\xe9"
    answer = errno_of(lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644)))
    if remote.kind == "s3":
        assert answer == "EINVAL"
    else:
        assert answer == "ok" and b"caf\xe9" in os.listdir(os.fsencode(rsrc))
