"""Views, tags and categories show only what the caller could reach (issue 23, part 2).

A gathered entry is the source's own inode, shown without the folders above it: bob
must not read alice's `plans.txt` (0644, in her 0700 folder) through `/views`, `/tags`
or `/categories`. A member is there for a caller (lookup, readdir, so also open) only
if the caller may search every folder above it in its source, with the modes the
mount shows — on local, S3 (`--uid/--umask`) and SFTP sources. Over SMB:
test_share_smb.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Mount, add_source_now, in_process, run_markfs
from remote_helpers import s3_source, sftp_source
from servers import S3Server, SshServer
from users import ALICE, ROOT, TEAM, Seen, User, alice, bob, outcome

GATHERED = ("views/v/private/plans.txt", "tags/pub/plans.txt", "categories/c/plans.txt")
OPEN = ("views/v/public.txt", "tags/pub/public.txt", "categories/c/public.txt")


def reads(path: str) -> Callable[[], object]:
    return lambda: Seen(Path(path).read_bytes())


def listing(path: str) -> Callable[[], object]:
    return lambda: Seen(sorted(os.listdir(path)))


def gather(data_dir: Path, mounted: Path, source: str) -> None:
    """A view of the source's `home/**`, a tag and a category on both files (as root,
    through the mount's paths)."""
    run_markfs(data_dir, "view", "add", "v", f"{source}:home/**")
    for file in ("private/plans.txt", "public.txt"):
        path = f"/sources/{source}/home/{file}"
        os.stat(mounted / "sources" / source / "home" / file)  # known to the catalog
        run_markfs(data_dir, "tag", "add", "pub", path)
        run_markfs(data_dir, "category", "assign", "c", path)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)  # the users' children start here
    in_process(lambda tree: None, tmp_path / "data")
    (tmp_path / "mnt").mkdir()
    return tmp_path


def start(base: Path, *options: str) -> Mount:
    run_markfs(base / "data", "category", "add", "c")
    return Mount(base / "data", base / "mnt").start("--allow-other", *options)


def check(base: Path, allowed: User, refused: User) -> None:
    """`allowed` reads both files through every gathered folder; `refused` sees the
    open one only — a lookup of the other is ENOENT, no listing shows it — even right
    after `allowed` looked it up (the kernel keeps no name of a gathered folder)."""
    for hidden, shown in zip(GATHERED, OPEN, strict=True):
        where = f"mnt/{hidden}"
        assert outcome(allowed, base, reads(where)) == repr(b"alice's plans"), where
        assert outcome(refused, base, reads(where)) == "ENOENT", where
        assert outcome(refused, base, lambda w=where: os.stat(w)) == "ENOENT"  # type: ignore[misc]
        assert outcome(refused, base, reads(f"mnt/{shown}")) == repr(b"for everyone")
        folder = str(Path(where).parent)
        assert "plans.txt" in outcome(allowed, base, listing(folder)), folder
        assert "plans.txt" not in outcome(refused, base, listing(folder)), folder


def local_mount(base: Path, private: tuple[int, int]) -> Iterator[Mount]:
    """alice's `home` (0755) with `public.txt` and a folder `private` of the given group
    and mode holding `plans.txt` (0644): a local source `loc`, gathered."""
    backing = base / "backing"
    (backing / "home" / "private").mkdir(parents=True)
    os.chmod(backing, 0o755)
    (backing / "home" / "private" / "plans.txt").write_bytes(b"alice's plans")
    (backing / "home" / "public.txt").write_bytes(b"for everyone")
    for path in (backing / "home", backing / "home" / "private",
                 backing / "home" / "private" / "plans.txt", backing / "home" / "public.txt"):
        os.chown(path, ALICE, ALICE)
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chown(backing / "home" / "private", ALICE, private[0])
    os.chmod(backing / "home" / "private", private[1])
    yield from gathered_mount(base, "loc", f"file://{backing}")


@pytest.fixture
def local(base: Path) -> Iterator[Mount]:
    yield from local_mount(base, (ALICE, 0o700))


def test_on_a_local_source_only_who_may_search_the_folders_sees_the_member(
        base: Path, local: Mount) -> None:
    check(base, alice, bob)
    check(base, ROOT, bob)


def test_a_member_in_a_folder_its_group_may_search_is_seen_by_that_group(
        base: Path) -> None:
    """The group comes from the caller's supplementary groups (/proc)."""
    for _mount in local_mount(base, (TEAM, 0o750)):
        check(base, User(4322, 4322, (TEAM,)), bob)


def test_a_refused_lookup_is_not_kept_as_a_miss_for_the_next_caller(
        base: Path, local: Mount) -> None:
    where = f"mnt/{GATHERED[0]}"
    assert outcome(bob, base, reads(where)) == "ENOENT"
    assert outcome(alice, base, reads(where)) == repr(b"alice's plans")


@pytest.fixture
def s3_mount(base: Path, s3: S3Server) -> Iterator[Mount]:
    """S3 keeps no modes: the mount's --uid alice --umask 077 makes every folder hers."""
    bucket = s3_source(s3, f"gathered-{os.getpid()}-{os.urandom(3).hex()}")
    bucket.put("home/private/plans.txt", b"alice's plans")
    bucket.put("home/public.txt", b"for everyone")
    yield from gathered_mount(base, "r", bucket.url, "--uid", str(ALICE), "--umask", "077")


def gathered_mount(base: Path, source: str, url: str, *options: str) -> Iterator[Mount]:
    """The source added, mounted with --allow-other (and `options`), its files gathered."""
    add_source_now(base / "data", source, url)
    mount = start(base, *options)
    try:
        gather(base / "data", mount.path, source)
        yield mount
    finally:
        mount.stop()
    mount.assert_log_clean()


def test_on_s3_the_mounts_owner_and_umask_decide(base: Path, s3_mount: Mount) -> None:
    """(markfs's own folders get the same owner and umask as S3's: bob is kept out of
    /views and /tags by the kernel already, EACCES)."""
    for where in GATHERED:
        assert outcome(alice, base, reads(f"mnt/{where}")) == repr(b"alice's plans")
    for where in (*GATHERED, *OPEN):
        assert outcome(bob, base, reads(f"mnt/{where}")) in ("ENOENT", "EACCES"), where
    assert "plans.txt" not in outcome(bob, base, listing("mnt/tags/pub"))


@pytest.fixture
def sftp_mount(base: Path, sshd: SshServer) -> Iterator[Mount]:
    """The server's modes: `private` is 0700 (the server's root's)."""
    root = base / "sftp-root"
    server = sftp_source(sshd, root)
    server.put("home/private/plans.txt", b"alice's plans")
    server.put("home/public.txt", b"for everyone")
    os.chmod(root / "home" / "private", 0o700)
    yield from gathered_mount(base, "r", server.url)


def test_on_sftp_the_servers_modes_decide(base: Path, sftp_mount: Mount) -> None:
    check(base, ROOT, alice)
    check(base, ROOT, bob)


def test_the_source_itself_is_checked_as_the_kernel_would(base: Path, local: Mount) -> None:
    """A member is as reachable as through /sources: the same answer both ways."""
    through_source = "mnt/sources/loc/home/private/plans.txt"
    for user in (alice, bob):
        direct = outcome(user, base, reads(through_source))
        gathered = outcome(user, base, reads(f"mnt/{GATHERED[0]}"))
        assert (direct == "EACCES") == (gathered == "ENOENT"), (user, direct, gathered)
