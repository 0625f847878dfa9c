"""Modes, owners and times kept on S3 (issue 24, part 1, on S3): as object metadata in
the form s3fs and rclone keep them, so that what one tool wrote the others show.

rsync and cp -a into an S3 source keep every mode and mtime — right away, after a
remount, through a mount with a fresh catalog (everything read back from the objects),
and through s3fs, the bucket's other reader; git sees no change after a remount. What
rclone and s3fs write shows in markfs, and the reverse, tried with the real tools.
(Before: chmod and utime were accepted and dropped; a remount showed 0644 and the
upload's time, so rsync re-sent every file and git saw every script change mode.)
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, in_process
from remote_helpers import (
    RemoteSource,
    differences,
    fsync_all,
    git_status_after_remount,
    mount_remote,
    source_for,
    wait_until,
)
from servers import S3Endpoint

TOOL_WAIT_S = 30.0
# SeaweedFS makes a folder marker a folder of its filer, which keeps no metadata (and
# s3fs cannot make folders there): its folders' modes and times live in markfs's
# catalog only, and a catalog of its own or another tool shows them as defaults
KEEPS_FOLDER_METADATA = {"s3": True, "seaweedfs": False}


@pytest.fixture(params=["s3", "seaweedfs"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


@pytest.fixture
def kind(request: pytest.FixtureRequest, remote: RemoteSource) -> str:
    """"s3" (moto) or "seaweedfs"."""
    return str(request.node.callspec.params["remote"])


@pytest.fixture
def server(request: pytest.FixtureRequest, kind: str) -> S3Endpoint:
    endpoint: S3Endpoint = request.getfixturevalue("s3" if kind == "s3" else "seaweed")
    return endpoint


def files_only(lines: list[str]) -> list[str]:
    """`differences` less those of folders (lines naming a path ending in /)."""
    return [line for line in lines if not line.endswith("/")]


@pytest.fixture
def mount(tmp_path: Path, data_dir: Path, remote: RemoteSource) -> Iterator[Mount]:
    yield from mount_remote(tmp_path, data_dir, remote).checked()


def bucket_of(remote: RemoteSource) -> str:
    return remote.url.split("/")[2].split("?")[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Three folders of 30 files with modes 0755/0640/0600 and old times, folders old
    and 0750 too."""
    top = tmp_path / "tree"
    for number in range(30):
        path = top / f"d{number % 3}" / f"f{number}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {number}\n" * (number + 1))
        path.chmod((0o755, 0o640, 0o600)[number % 3])
        os.utime(path, ns=(1_000_000_000_000_000_000 + number,
                           1_000_000_000_123_456_789 + number * 1_000_000_000))
    for folder in (top, *top.iterdir()):
        folder.chmod(0o750)
        os.utime(folder, (1_100_000_000, 1_100_000_000))
    return top


class S3fs:
    """The bucket (a prefix of it) mounted by s3fs, as its other users would see it."""

    def __init__(self, server: S3Endpoint, bucket: str, prefix: str, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.path = where / "mnt"
        self.path.mkdir()
        passwd = where / "passwd"
        passwd.write_text("test:test\n")
        passwd.chmod(0o600)
        self.proc = subprocess.Popen(
            ["s3fs", f"{bucket}:/{prefix}", str(self.path), "-f", "-o",
             f"passwd_file={passwd},url={server.endpoint},use_path_request_style,"
             "endpoint=us-east-1,stat_cache_expire=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.ismount(self.path) or self.proc.poll() is not None,
                   TOOL_WAIT_S)
        assert os.path.ismount(self.path), "s3fs did not mount"

    def stop(self) -> None:
        if subprocess.run(["fusermount3", "-u", str(self.path)]).returncode:
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)])
        try:
            self.proc.wait(TOOL_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def s3fs(tmp_path: Path, server: S3Endpoint, remote: RemoteSource) -> Iterator[S3fs]:
    mounted = S3fs(server, bucket_of(remote), "data", tmp_path / "s3fs")
    try:
        yield mounted
    finally:
        mounted.stop()


def cold_differences(tmp_path: Path, remote: RemoteSource, tree: Path) -> list[str]:
    """`differences` through a mount of the source with a catalog of its own: every
    attribute read back from the objects."""
    where = tmp_path / f"cold-{time.monotonic_ns()}"
    where.mkdir()
    in_process(lambda catalog: None, where / "data")
    cold = mount_remote(where, where / "data", remote)
    try:
        return differences(tree, cold.path / "sources" / "r" / "copy")
    finally:
        cold.stop()


def rclone(server: S3Endpoint, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env["RCLONE_CONFIG"] = "/dev/null"
    done = subprocess.run(
        ["rclone", *args, "--s3-provider", "Other", "--s3-endpoint", server.endpoint,
         "--s3-access-key-id", "test", "--s3-secret-access-key", "test",
         "--s3-force-path-style", "--s3-env-auth=false"],
        capture_output=True, text=True, env=env, timeout=TOOL_WAIT_S)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("tool", ["rsync", "cp"])
def test_a_tree_copied_in_keeps_every_mode_and_time(
        tree: Path, mount: Mount, remote: RemoteSource, server: S3Endpoint, tmp_path: Path,
        tool: str, kind: str) -> None:
    copy = mount.path / "sources" / "r" / "copy"
    if tool == "rsync":
        subprocess.run(["rsync", "-a", f"{tree}/", f"{copy}/"], check=True)
    else:
        subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    assert differences(tree, copy) == []  # right away
    fsync_all(copy)
    mount.remount()
    assert differences(tree, copy) == []  # after a remount
    seen = (lambda lines: lines) if KEEPS_FOLDER_METADATA[kind] else files_only
    assert seen(cold_differences(tmp_path, remote, tree)) == []  # a catalog of its own
    other = S3fs(server, bucket_of(remote), "data", tmp_path / "s3fs")
    try:  # the server's own copy, as s3fs reads it
        assert seen(differences(tree, other.path / "copy")) == []
    finally:
        other.stop()


def test_git_sees_no_change_after_a_remount(mount: Mount) -> None:
    """Before: after a remount every script showed `mode change 100755 => 100644`."""
    repo = mount.path / "sources" / "r" / "repo"
    assert git_status_after_remount(mount, repo) == ""
    assert os.access(repo / "run1.sh", os.X_OK) and not os.access(repo / "run0.sh", os.X_OK)


def test_what_rclone_and_s3fs_write_shows_in_markfs(
        tmp_path: Path, data_dir: Path, remote: RemoteSource, server: S3Endpoint,
        kind: str) -> None:
    local = tmp_path / "r.txt"
    local.write_text("from rclone\n")
    os.utime(local, ns=(1_046_660_583_123_456_789, 1_046_660_583_123_456_789))
    rclone(server, "copyto", str(local), f":s3:{bucket_of(remote)}/data/from-rclone.txt")
    other = S3fs(server, bucket_of(remote), "data", tmp_path / "s3fs")
    try:
        written = other.path / "from-s3fs.txt"
        written.write_text("from s3fs\n")
        written.chmod(0o750)
        os.chown(written, 4321, 4400)
        os.utime(written, ns=(981_173_106_789_000_000, 981_173_106_789_000_000))
        if KEEPS_FOLDER_METADATA[kind]:
            (other.path / "dir-s3fs").mkdir()
            (other.path / "dir-s3fs").chmod(0o700)
            os.utime(other.path / "dir-s3fs", (1_009_843_200, 1_009_843_200))
    finally:
        other.stop()
    for mount in mount_remote(tmp_path, data_dir, remote).checked():
        files = mount.path / "sources" / "r"
        seen = os.stat(files / "from-rclone.txt")  # rclone keeps the mtime alone
        assert seen.st_mtime_ns == 1_046_660_583_123_456_789
        assert (stat.S_IMODE(seen.st_mode), seen.st_uid) == (0o644, os.getuid())
        seen = os.stat(files / "from-s3fs.txt")
        assert seen.st_mtime_ns == 981_173_106_789_000_000
        assert (stat.S_IMODE(seen.st_mode), seen.st_uid, seen.st_gid) == (0o750, 4321, 4400)
        if KEEPS_FOLDER_METADATA[kind]:
            seen = os.stat(files / "dir-s3fs")
            assert stat.S_ISDIR(seen.st_mode) and stat.S_IMODE(seen.st_mode) == 0o700
            assert seen.st_mtime_ns == 1_009_843_200_000_000_000


def test_what_markfs_writes_shows_in_rclone_and_s3fs(
        tmp_path: Path, mount: Mount, remote: RemoteSource, server: S3Endpoint,
        kind: str) -> None:
    files = mount.path / "sources" / "r"
    written = files / "f.txt"
    written.write_text("from markfs\n")
    written.chmod(0o750)
    os.chown(written, 4321, 4400)
    os.utime(written, ns=(1_046_660_583_123_456_789, 1_046_660_583_123_456_789))
    (files / "d").mkdir(mode=0o700)
    os.utime(files / "d", (1_009_843_200, 1_009_843_200))
    fsync_all(files)
    listed = rclone(server, "lsl", f":s3:{bucket_of(remote)}/data")
    assert "2003-03-03 03:03:03.123456789 f.txt" in listed, listed
    other = S3fs(server, bucket_of(remote), "data", tmp_path / "s3fs")
    try:
        seen = os.stat(other.path / "f.txt")
        assert seen.st_mtime_ns == 1_046_660_583_123_456_789
        assert (stat.S_IMODE(seen.st_mode), seen.st_uid, seen.st_gid) == (0o750, 4321, 4400)
        if KEEPS_FOLDER_METADATA[kind]:
            seen = os.stat(other.path / "d")
            assert (stat.S_IMODE(seen.st_mode), seen.st_mtime_ns) == (
                0o700, 1_009_843_200_000_000_000)
    finally:
        other.stop()
    seen = os.stat(files / "d")  # (on SeaweedFS: kept by markfs's catalog)
    assert (stat.S_IMODE(seen.st_mode), seen.st_mtime_ns) == (0o700, 1_009_843_200_000_000_000)


def test_metadata_in_both_tools_forms_is_read_and_never_grants_privileges() -> None:
    """s3fs's decimal modes, rclone's octal ones, an s3fs symlink object (a file here),
    set-user-ID bits dropped, values that do not parse ignored; mtimes exact to the
    nanosecond in both tools' forms, and written in the one both read alike."""
    from markfs.backends.base import KEPT_GID, KEPT_MODE, KEPT_UID, FileAttrs
    from markfs.backends.s3meta import attrs_from, metadata_of

    def mode(text: str, kind: int = stat.S_IFREG) -> int | None:
        return attrs_from({"Mode": text}, kind)[0].mode

    assert mode(str(0o100750)) == 0o100750  # s3fs
    assert mode("100711") == 0o100711  # rclone --metadata
    assert mode("40755", stat.S_IFDIR) == 0o40755
    assert mode(str(0o120777)) == 0o100777  # a symlink's object: a file, its bits
    assert mode(str(0o104755)) == mode(str(0o102755)) == 0o100755  # no setuid/setgid
    assert mode("rwx") is None and mode("-1") is None and mode("9999999") is None
    attrs, kept = attrs_from({"mtime": "981173106.789", "uid": "4321", "gid": "x"},
                             stat.S_IFREG)
    assert (attrs.mtime_ns, attrs.uid, attrs.gid) == (981_173_106_789_000_000, 4321, None)
    assert kept == KEPT_UID and not kept & (KEPT_MODE | KEPT_GID)
    assert attrs_from({"uid": str(2**32)}, stat.S_IFREG)[0].uid is None
    written = metadata_of(FileAttrs(0o100640, 1, 2, 1_000_000_000_000_000_005))
    assert written == {"mode": str(0o100640), "uid": "1", "gid": "2",
                       "mtime": "1000000000.000000005"}
    assert attrs_from(written, stat.S_IFREG)[0].mtime_ns == 1_000_000_000_000_000_005


def test_the_quick_head_a_listing_is_completed_with_reads_what_boto3_reads(
        remote: RemoteSource, server: S3Endpoint) -> None:
    """The HEADs that complete a listing are signed and sent without boto3's request
    pipeline: the same answer for keys that need quoting, and None where nothing is."""
    from markfs.backends.base import S3Location
    from markfs.backends.s3 import S3Backend

    backend = S3Backend(S3Location(bucket_of(remote), "data/", server.endpoint, "us-east-1"))
    for name in ("a b+c.txt", "été/ü~x=1&y", "x%20y", "d/"):
        key = "data/" + name
        backend.client.put_object(Bucket=bucket_of(remote), Key=key, Body=b"xy",
                                  Metadata={"mode": "33188", "mtime": "5.5"})
        quick, slow = backend._head_quick(key), backend._head(key)
        assert quick is not None and slow is not None
        assert quick == {field: slow[field] for field in quick}, name
    assert backend._head_quick("data/nothing here") is None


def test_the_quick_put_of_a_small_file_stores_what_boto3_stores(
        remote: RemoteSource, server: S3Endpoint, tmp_path: Path) -> None:
    """Small files are PUT without boto3's request pipeline: the same object (bytes,
    metadata, keys that need quoting) as the client's PUT, and its entry from the
    object; where the quick PUT cannot be sent (no credentials) the client sends it."""
    from markfs.backends.base import FileAttrs, S3Location
    from markfs.backends.s3 import S3Backend
    from markfs.backends.s3meta import metadata_of

    backend = S3Backend(S3Location(bucket_of(remote), "data/", server.endpoint, "us-east-1"))
    attrs = FileAttrs(0o100640, 4321, 4322, 1_000_000_000_123_456_789)
    local = tmp_path / "body"
    client_put = backend.client.put_object

    def not_the_client(**_kwargs: object) -> None:
        raise AssertionError("a small file went through the client")
    backend.client.put_object = not_the_client
    for name in ("a b+c.txt", "été/ü~x=1&y", "x%20y", "empty"):
        body = b"" if name == "empty" else name.encode() * 1000
        local.write_bytes(body)
        entry = backend.upload(name.encode(), str(local), attrs=attrs)
        stored = backend.client.get_object(Bucket=bucket_of(remote), Key="data/" + name)
        assert stored["Body"].read() == body, name
        assert stored["Metadata"] == metadata_of(attrs), name
        assert (entry.size, entry.mtime_ns, entry.mode) == (len(body), attrs.mtime_ns,
                                                           attrs.mode), name
    backend.client.put_object = client_put
    backend._session.get_credentials = lambda: None  # type: ignore[method-assign]
    local.write_bytes(b"through the client")
    backend.upload(b"client", str(local), attrs=attrs)
    assert remote.get("client") == b"through the client"


def test_a_folder_made_is_the_folder_a_stat_then_reads_without_the_clients_put_or_head(
        remote: RemoteSource, server: S3Endpoint) -> None:
    """mkdir sends its HEAD and PUT the quick way and asks no HEAD after the PUT: what
    the catalog records of the new folder (its entry with the attributes set on it that
    the server did not keep: SeaweedFS keeps no metadata on markers) is what it records
    from a stat of it (mode, owner, mtime; ctime to the second), quoted names too;
    EEXIST over a file or a folder with no marker stays."""
    from markfs.backends.base import FileAttrs, S3Location
    from markfs.backends.s3 import S3Backend
    from markfs.namespace.remote.settling import folder_keeps

    backend = S3Backend(S3Location(bucket_of(remote), "data/", server.endpoint, "us-east-1"))
    client = backend.client

    def not_the_client(**_kwargs: object) -> None:
        raise AssertionError("the client was asked")
    client_put, client_head = client.put_object, client.head_object
    client.put_object = client.head_object = not_the_client
    attrs = FileAttrs(0o40750, 4321, 4322, 1_000_000_000_123_456_789)
    made = {name: backend.mkdir_with(name.encode(), attrs) for name in ("d", "a b+é~x")}
    client.put_object, client.head_object = client_put, client_head
    for name, answered in made.items():
        entry = folder_keeps(answered, attrs)
        seen = folder_keeps(backend.stat(name.encode()), attrs)
        assert (entry.name, entry.mode, entry.uid, entry.gid, entry.mtime_ns, entry.nlink,
                entry.meta_kept) == (seen.name, seen.mode, seen.uid, seen.gid, seen.mtime_ns,
                                     seen.nlink, seen.meta_kept), name
        assert abs(entry.ctime_ns - seen.ctime_ns) < 2 * 10**9, name
        assert (entry.mode, entry.uid) == (0o40750, 4321)
    remote.put("file", b"x")
    remote.put("implicit/child", b"x")
    for taken in (b"file", b"implicit", b"d"):
        with pytest.raises(OSError) as failed:
            backend.mkdir_with(taken, attrs)
        assert failed.value.errno == errno.EEXIST, taken
