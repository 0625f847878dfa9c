"""Owners and modes of what has none of its own (issue 13, part 2): `markfs mount --uid
--gid --umask` decide them for S3 sources and markfs's own folders; a local source
keeps the disk's; SFTP keeps the server's modes, and its owners unless --uid/--gid."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount, add_source_now, run_markfs
from remote_helpers import RemoteSource, s3_source, sftp_source
from servers import S3Server, SshServer
from users import ALICE, BOB, TEAM, User, alice, bob, outcome

from markfs.cli.service import mount_arguments

bob_in_team = User(BOB, BOB, (TEAM,))
MountWith = Callable[..., Path]


def owner_and_mode(path: Path) -> tuple[int, int, str]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))


def write(name: str) -> Callable[[], object]:
    return lambda: Path(name).write_bytes(b"mine")


@pytest.fixture
def bucket(s3: S3Server, request: pytest.FixtureRequest) -> RemoteSource:
    source = s3_source(s3, f"own-{abs(hash(request.node.name)) % 10**8}")
    source.put("folder/old.txt", b"old")
    return source


@pytest.fixture
def mount_with(tmp_path: Path, bucket: RemoteSource) -> Iterator[MountWith]:
    """Mount (with --allow-other and a test's options) a data dir holding the S3 source
    `r` and the local source `loc`; unmounted afterwards, and its log must be clean."""
    data_dir, backing, point = tmp_path / "data", tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    point.mkdir()
    (backing / "disk.txt").write_text("disk")
    os.chown(backing / "disk.txt", 777, 778)
    add_source_now(data_dir, "r", bucket.url)
    add_source_now(data_dir, "loc", f"file://{backing}")
    started: list[Mount] = []

    def mount(*options: str) -> Path:
        started.append(Mount(data_dir, point).start("--allow-other", *options))
        return point

    yield mount
    for m in started:
        m.stop()
        m.assert_log_clean()


def test_s3_entries_belong_to_the_mounting_user_and_others_can_only_read(
        mount_with: MountWith) -> None:
    s3 = mount_with() / "sources" / "r"
    assert owner_and_mode(s3) == (0, 0, "0o755")
    assert owner_and_mode(s3 / "folder") == (0, 0, "0o755")
    assert owner_and_mode(s3 / "folder" / "old.txt") == (0, 0, "0o644")
    assert outcome(bob, s3, lambda: Path("folder/old.txt").read_bytes()) == "ok"
    assert outcome(bob, s3, write("folder/new.txt")) == "EACCES"


def test_uid_gid_and_umask_let_that_user_and_group_write_to_s3(
        mount_with: MountWith, bucket: RemoteSource) -> None:
    s3 = mount_with("--uid", str(ALICE), "--gid", str(TEAM), "--umask", "002") / "sources/r"
    assert owner_and_mode(s3 / "folder") == (ALICE, TEAM, "0o775")
    assert owner_and_mode(s3 / "folder" / "old.txt") == (ALICE, TEAM, "0o664")
    assert outcome(alice, s3, write("folder/alice.txt")) == "ok"
    assert outcome(bob_in_team, s3, write("folder/team.txt")) == "ok"
    assert outcome(bob, s3, write("folder/bob.txt")) == "EACCES"
    bucket.wait_for("folder/alice.txt", b"mine")
    bucket.wait_for("folder/team.txt", b"mine")
    # (--uid/--gid own every entry; the mode is the one bob made it with, 0666 less his
    # umask 022, kept in the object's metadata as on a disk: not the made-up 0664)
    assert owner_and_mode(s3 / "folder" / "team.txt") == (ALICE, TEAM, "0o644")


def test_a_strict_umask_keeps_other_users_out_of_s3(mount_with: MountWith) -> None:
    point = mount_with("--uid", str(ALICE), "--umask", "077")
    assert owner_and_mode(point / "sources" / "r") == (ALICE, 0, "0o700")
    assert outcome(bob, point / "sources", lambda: os.listdir("r")) == "EACCES"
    assert outcome(alice, point / "sources", lambda: os.listdir("r")) == "ok"


def test_markfs_folders_and_control_files_follow_the_mount_owner(
        mount_with: MountWith) -> None:
    point = mount_with("--uid", str(ALICE), "--gid", str(TEAM), "--umask", "027")
    assert owner_and_mode(point) == (ALICE, TEAM, "0o750")
    assert owner_and_mode(point / "tables") == (ALICE, TEAM, "0o750")
    assert owner_and_mode(point / ".markfs") == (ALICE, TEAM, "0o550")
    assert owner_and_mode(point / ".markfs" / "status.json") == (ALICE, TEAM, "0o440")


def test_a_local_source_keeps_the_disks_owners_and_modes_whatever_the_options(
        mount_with: MountWith, tmp_path: Path) -> None:
    point = mount_with("--uid", str(ALICE), "--gid", str(TEAM), "--umask", "077")
    disk = owner_and_mode(tmp_path / "backing" / "disk.txt")
    assert disk[:2] == (777, 778)
    assert owner_and_mode(point / "sources" / "loc" / "disk.txt") == disk
    assert owner_and_mode(point / "sources" / "loc") == owner_and_mode(tmp_path / "backing")


def test_sftp_keeps_the_servers_modes_and_owners_unless_uid_and_gid_are_given(
        sshd: SshServer, tmp_path: Path) -> None:
    source = sftp_source(sshd, tmp_path / "remote")
    source.put("secret.txt", b"s")
    os.chmod(tmp_path / "remote" / "secret.txt", 0o600)
    os.chown(tmp_path / "remote" / "secret.txt", 777, 778)
    data_dir, point = tmp_path / "data", tmp_path / "mnt"
    point.mkdir()
    add_source_now(data_dir, "r", source.url)
    mount = Mount(data_dir, point).start("--allow-other")
    try:
        assert owner_and_mode(point / "sources/r/secret.txt") == (777, 778, "0o600")
        mount.remount("--allow-other", "--uid", str(ALICE), "--gid", str(TEAM),
                      "--umask", "000")
        assert owner_and_mode(point / "sources/r/secret.txt") == (ALICE, TEAM, "0o600")
        assert outcome(bob, point / "sources" / "r", lambda: open("secret.txt").close()) \
            == "EACCES"
    finally:
        mount.stop()
    mount.assert_log_clean()


@pytest.mark.parametrize("options, message", [
    (["--umask", "0999"], "umask must be octal, 000 to 777: '0999'"),
    (["--uid", "no-such-user-here"], "no such user: 'no-such-user-here' (a name or a number)"),
    (["--gid", "no-such-group"], "no such group: 'no-such-group' (a name or a number)"),
])
def test_a_bad_owner_option_is_refused_in_one_line(
        data_dir: Path, tmp_path: Path, options: list[str], message: str) -> None:
    (tmp_path / "mnt").mkdir()
    done = run_markfs(data_dir, "mount", str(tmp_path / "mnt"), *options, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == f"markfs: {message}"


def test_user_and_group_names_are_accepted(mount_with: MountWith) -> None:
    point = mount_with("--uid", "nobody", "--gid", "nogroup")
    assert owner_and_mode(point)[:2] == (65534, 65534)


def test_the_fstab_helper_passes_uid_gid_and_umask_on() -> None:
    args = mount_arguments("/d", "/m", "allow_other,uid=1000,gid=100,umask=002,noatime")
    assert args == ["--data-dir", "/d", "mount", "/m", "--allow-other", "--uid", "1000",
                    "--gid", "100", "--umask", "002"]


def put_with_metadata(s3: S3Server, bucket: RemoteSource, name: str,
                      metadata: dict[str, str]) -> None:
    client: Any = s3.client()
    client.put_object(Bucket=bucket.url.split("/")[2].split("?")[0], Key=f"data/{name}",
                      Body=b"secret", Metadata=metadata)


def test_s3_metadata_owners_decide_who_reads_within_the_umask(
        mount_with: MountWith, bucket: RemoteSource, s3: S3Server) -> None:
    """Issue 24: an object's x-amz-meta-uid/-mode (s3fs's) decide who may read it, as a
    second user sees it; the mount's --umask stays a ceiling (whoever writes to the bucket
    sets the metadata) and a set-user-ID bit never shows."""
    put_with_metadata(s3, bucket, "alices.txt", {"uid": str(ALICE), "gid": str(TEAM),
                                                 "mode": str(0o100600)})
    put_with_metadata(s3, bucket, "setuid.txt", {"mode": str(0o104755)})
    put_with_metadata(s3, bucket, "wide.txt", {"mode": str(0o100666)})
    s3_files = mount_with("--umask", "022") / "sources" / "r"
    assert owner_and_mode(s3_files / "alices.txt") == (ALICE, TEAM, "0o600")
    assert outcome(alice, s3_files, lambda: Path("alices.txt").read_bytes()) == "ok"
    assert outcome(bob, s3_files, lambda: Path("alices.txt").read_bytes()) == "EACCES"
    assert owner_and_mode(s3_files / "setuid.txt") == (0, 0, "0o755")
    assert owner_and_mode(s3_files / "wide.txt") == (0, 0, "0o644")  # 0666 within 022
    assert outcome(bob, s3_files, write("wide.txt")) == "EACCES"
