"""POSIX conformance of a local source, system call by system call (issue 13, part 1):
the cases a conformance suite such as pjdfstest checks — modes, owners, link counts,
sizes, which times move, and every errno — each played on the disk and on its twin in
the mount (tests/twins.py), which must agree after every step."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from twins import Twins, twin_mount
from users import ALICE, BOB, ROOT, TEAM, Seen, User, alice, alice_in_team, bob, outcome

ROOT_NO_UMASK = User(0, 0, umask=0)
ALICE_NO_UMASK = User(ALICE, ALICE, umask=0)


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twins]:
    yield from twin_mount(tmp_path_factory.mktemp("conformance"))


def create(name: str, mode: int = 0o644, flags: int = 0) -> Callable[[], object]:
    return lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY | flags, mode))


def write(name: str, data: bytes = b"data", flags: int = 0) -> Callable[[], object]:
    def step() -> None:
        fd = os.open(name, os.O_WRONLY | flags)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return step


def on_fd(name: str, flags: int, action: Callable[[int], object]) -> Callable[[], object]:
    """Open `name`, act on the descriptor, close it."""
    def step() -> object:
        fd = os.open(name, flags)
        try:
            return action(fd)
        finally:
            os.close(fd)
    return step


def read(name: str) -> Callable[[], object]:
    def step() -> Seen:
        with open(name, "rb") as f:
            return Seen(f.read())
    return step


def listing(name: str) -> Callable[[], object]:
    return lambda: Seen(sorted(os.listdir(name)))


def bind_socket(name: str) -> Callable[[], object]:
    def step() -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(name)
    return step


LIBC = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100


def renameat2(old: str, new: str, flags: int) -> Callable[[], object]:
    """renameat2(2), which `mv --no-clobber` and `mv --exchange` use (Python has none)."""
    def step() -> None:
        if LIBC.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    return step


# --- chmod ---------------------------------------------------------------------------

def test_chmod_sets_every_mode_bit_and_moves_only_ctime(twins: Twins) -> None:
    twins.run("chmod", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.mkfifo("p")),
        (ROOT, lambda: os.chmod("f", 0o7777)),
        (ROOT, lambda: os.chmod("d", 0o7777)),
        (ROOT, lambda: os.chmod("p", 0o7777)),
        (ROOT, lambda: os.chmod("f", 0o0)),
        (ROOT, on_fd("d", os.O_RDONLY, lambda fd: os.fchmod(fd, 0o511))),
    ])


def test_chmod_through_a_symlink_changes_the_target_and_lchmod_is_refused(
        twins: Twins) -> None:
    twins.run("chmod-link", [
        (ROOT, create("f")),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.chmod("link", 0o600)),
        (ROOT, lambda: os.chmod("link", 0o640, follow_symlinks=False)),  # EOPNOTSUPP
        (ROOT, lambda: os.symlink("missing", "dangling")),
        (ROOT, lambda: os.chmod("dangling", 0o600)),                     # ENOENT
    ])


def test_chmod_of_missing_or_impossible_paths_gets_the_disks_errno(twins: Twins) -> None:
    twins.run("chmod-errnos", [
        (ROOT, create("f")),
        (ROOT, lambda: os.chmod("missing", 0o600)),
        (ROOT, lambda: os.chmod("f/x", 0o600)),
        (ROOT, lambda: os.chmod("x" * 256, 0o600)),
        (alice, lambda: os.chmod("f", 0o600)),
        (ROOT, lambda: os.chown("f", ALICE, ALICE)),
        (alice, on_fd("f", os.O_RDONLY, lambda fd: os.fchmod(fd, 0o600))),
    ])


def test_a_non_root_owner_loses_setgid_when_not_in_the_group_but_keeps_sticky_on_a_file(
        twins: Twins) -> None:
    twins.run("chmod-bits", [
        (alice, create("f")),
        (alice, lambda: os.chmod("f", 0o1755)),
        (alice, lambda: os.chmod("f", 0o2755)),
        (ROOT, lambda: os.chown("f", ALICE, TEAM)),
        (alice_in_team, lambda: os.chmod("f", 0o6755)),
        (alice, lambda: os.chmod("f", 0o6755)),
    ])


# --- chown ---------------------------------------------------------------------------

def test_chown_to_nothing_still_moves_ctime(twins: Twins) -> None:
    twins.run("chown-none", [
        (ROOT, create("f")),
        (ROOT, lambda: os.chown("f", -1, -1)),
        (ROOT, lambda: os.chown("f", 0, -1)),
        (ROOT, lambda: os.chown("f", -1, 0)),
    ])


def test_chown_clears_setuid_and_setgid_of_a_file_but_not_of_a_folder(twins: Twins) -> None:
    twins.run("chown-killpriv", [
        (ROOT, create("f", 0o755)),
        (ROOT, lambda: os.chmod("f", 0o6755)),
        (ROOT, lambda: os.chown("f", ALICE, ALICE)),
        (ROOT, lambda: os.chmod("f", 0o6745)),     # setgid without group execute
        (ROOT, lambda: os.chown("f", BOB, -1)),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.chmod("d", 0o6755)),
        (ROOT, lambda: os.chown("d", ALICE, ALICE)),
    ])


def test_lchown_changes_the_symlink_and_chown_its_target(twins: Twins) -> None:
    twins.run("chown-link", [
        (ROOT, create("f")),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.chown("link", ALICE, ALICE, follow_symlinks=False)),
        (ROOT, lambda: os.chown("link", BOB, BOB)),
        (ROOT, on_fd("f", os.O_RDONLY, lambda fd: os.fchown(fd, ALICE, TEAM))),
    ])


def test_an_owner_gives_a_file_to_a_group_of_theirs_only(twins: Twins) -> None:
    twins.run("chown-owner", [
        (alice, create("f")),
        (alice, lambda: os.chown("f", ALICE, -1)),   # to themself: allowed
        (alice, lambda: os.chown("f", BOB, -1)),     # EPERM
        (alice, lambda: os.chown("f", -1, TEAM)),    # EPERM
        (alice_in_team, lambda: os.chown("f", -1, TEAM)),
        (bob, lambda: os.chown("f", -1, -1)),        # allowed: it changes nothing
        (alice, lambda: os.chmod("f", 0o6755)),
        (alice_in_team, lambda: os.chown("f", -1, ALICE)),  # clears setuid and setgid
    ])


# --- truncate ------------------------------------------------------------------------

def test_truncate_grows_shrinks_and_moves_times_even_to_the_same_size(twins: Twins) -> None:
    twins.run("truncate", [
        (ROOT, create("f")),
        (ROOT, lambda: os.truncate("f", 1234567)),
        (ROOT, lambda: os.truncate("f", 567)),
        (ROOT, lambda: os.truncate("f", 567)),
        (ROOT, on_fd("f", os.O_RDWR, lambda fd: os.ftruncate(fd, 0))),
        (ROOT, on_fd("f", os.O_RDWR, lambda fd: os.ftruncate(fd, 0))),
        (ROOT, read("f")),
    ])


def test_truncate_of_a_folder_a_negative_size_or_a_read_only_descriptor_is_refused(
        twins: Twins) -> None:
    twins.run("truncate-errnos", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.truncate("d", 0)),                                   # EISDIR
        (ROOT, lambda: os.truncate("f", -1)),                                  # EINVAL
        (ROOT, on_fd("f", os.O_RDONLY, lambda fd: os.ftruncate(fd, 1))),       # EINVAL
        (ROOT, lambda: os.truncate("missing", 0)),                             # ENOENT
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.truncate("link", 9)),
        (alice, lambda: os.truncate("f", 0)),                                  # EACCES
        (ROOT, lambda: os.chmod("f", 0o6777)),
        (alice, lambda: os.truncate("f", 3)),                    # clears setuid, setgid
    ])


# --- link ----------------------------------------------------------------------------

def test_a_hard_link_counts_and_moves_the_files_ctime_and_the_folders_times(
        twins: Twins) -> None:
    twins.run("link", [
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, create("f")),
        (ROOT, lambda: os.link("f", "d/g")),
        (ROOT, lambda: os.link("d/g", "h")),
        (ROOT, write("h", b"through the third name")),
        (ROOT, read("f")),
        (ROOT, lambda: Seen(len({os.stat(name).st_ino for name in ("f", "d/g", "h")}))),
        (ROOT, lambda: os.unlink("f")),
        (ROOT, lambda: os.unlink("d/g")),
    ])


def test_links_to_fifos_sockets_and_symlinks_are_links_of_those(twins: Twins) -> None:
    twins.run("link-kinds", [
        (ROOT, lambda: os.mkfifo("p")),
        (ROOT, lambda: os.link("p", "p2")),
        (ROOT, bind_socket("s")),
        (ROOT, lambda: os.link("s", "s2")),
        (ROOT, create("f")),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.link("link", "link2", follow_symlinks=False)),
        (ROOT, lambda: os.link("link", "followed")),
    ])


def test_link_refuses_folders_existing_names_and_missing_paths(twins: Twins) -> None:
    twins.run("link-errnos", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.link("d", "d2")),               # EPERM
        (ROOT, lambda: os.link("f", "d")),                # EEXIST
        (ROOT, lambda: os.link("f", "f")),                # EEXIST
        (ROOT, lambda: os.link("missing", "g")),          # ENOENT
        (ROOT, lambda: os.link("f", "nowhere/g")),        # ENOENT
        (ROOT, lambda: os.link("f", "f/g")),              # ENOTDIR
        (ROOT, lambda: os.chmod("d", 0o555)),
        (alice, lambda: os.link("f", "d/g")),             # EACCES
        (ROOT, lambda: os.symlink("missing", "dangling")),
        (ROOT, lambda: os.link("dangling", "g")),         # ENOENT (followed)
        (ROOT, lambda: os.link("f", "dangling")),         # EEXIST
    ])


# --- mkdir ---------------------------------------------------------------------------

def test_mkdir_keeps_the_sticky_bit_and_drops_setuid_and_setgid(twins: Twins) -> None:
    twins.run("mkdir-modes", [
        (ROOT_NO_UMASK, lambda: os.mkdir("all", 0o7777)),
        (ROOT_NO_UMASK, lambda: os.mkdir("none", 0o0)),
        (ALICE_NO_UMASK, lambda: os.mkdir("alices", 0o3777)),
        (alice, lambda: os.mkdir("masked", 0o777)),
    ])


def test_mkdir_counts_links_and_moves_the_parents_times(twins: Twins) -> None:
    twins.run("mkdir-links", [
        (ROOT, lambda: os.mkdir("a")),
        (ROOT, lambda: os.mkdir("a/b")),
        (ROOT, lambda: os.mkdir("a/c")),
        (ROOT, lambda: os.mkdir("a/b/")),                 # EEXIST
        (ROOT, lambda: os.mkdir("a/d/")),                 # a trailing slash is fine
    ])


def test_mkdir_refuses_existing_names_of_any_kind(twins: Twins) -> None:
    twins.run("mkdir-errnos", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkfifo("p")),
        (ROOT, lambda: os.symlink("missing", "dangling")),
        (ROOT, lambda: os.mkdir("f")),
        (ROOT, lambda: os.mkdir("p")),
        (ROOT, lambda: os.mkdir("dangling")),
        (ROOT, lambda: os.mkdir("f/x")),
        (ROOT, lambda: os.mkdir("x" * 256)),
        (ROOT, lambda: os.mkdir("missing/x")),
        (alice, lambda: os.mkdir("d")),
    ])


# --- mkfifo and mknod ----------------------------------------------------------------

def test_fifos_sockets_and_devices_are_made_with_their_type_mode_and_device_number(
        twins: Twins) -> None:
    twins.run("mknod", [
        (ROOT_NO_UMASK, lambda: os.mkfifo("fifo", 0o7777)),
        (ROOT, lambda: os.mknod("fifo2", stat.S_IFIFO | 0o640)),
        (ROOT, lambda: os.mknod("chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))),
        (ROOT, lambda: os.mknod("blk", stat.S_IFBLK | 0o600, os.makedev(7, 200))),
        (ROOT, lambda: os.mknod("plain", 0o600)),          # type 0: a regular file
        (ROOT, lambda: os.mknod("reg", stat.S_IFREG | 0o600)),
        (ROOT, bind_socket("sock")),
        (alice, lambda: os.mkfifo("alices-fifo", 0o644)),
        (alice, lambda: os.mknod("alices-chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))),
        (ROOT, lambda: os.mknod("dir", stat.S_IFDIR | 0o755)),
        (ROOT, lambda: os.mkfifo("fifo")),                 # EEXIST
    ])


def test_a_fifo_opened_for_writing_without_a_reader_is_enxio(twins: Twins) -> None:
    twins.run("fifo-open", [
        (ROOT, lambda: os.mkfifo("fifo")),
        (ROOT, on_fd("fifo", os.O_WRONLY | os.O_NONBLOCK, lambda fd: None)),  # ENXIO
        (ROOT, on_fd("fifo", os.O_RDONLY | os.O_NONBLOCK, lambda fd: Seen(os.read(fd, 9)))),
    ])


def test_a_device_node_in_the_mount_does_not_open_as_every_fuse_mount_is_nodev(
        twins: Twins) -> None:
    """The one deliberate difference from the disk: like sshfs and rclone, the mount is
    nodev (and nosuid), so a device node shared over SMB or NFS opens nothing."""
    for place, answer in ((twins.disk, "ok"), (twins.mounted, "EACCES")):
        folder = place / "device-open"
        os.mkdir(folder)
        os.mknod(folder / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        assert outcome(ROOT, folder, write("null", b"into nothing")) == answer


# --- open ----------------------------------------------------------------------------

def test_o_creat_of_an_existing_file_moves_no_time_and_o_trunc_moves_both(
        twins: Twins) -> None:
    twins.run("open-times", [
        (ROOT, create("f")),
        (ROOT, create("f")),
        (ROOT, write("f")),
        (ROOT, on_fd("f", os.O_WRONLY | os.O_TRUNC, lambda fd: None)),
        (ROOT, on_fd("f", os.O_WRONLY | os.O_TRUNC, lambda fd: None)),   # already empty
        (ROOT, on_fd("f", os.O_RDONLY, lambda fd: None)),
        (ROOT, write("f", b"appended", os.O_APPEND)),
        (ROOT, write("f", b"at the end", os.O_APPEND)),
        (ROOT, read("f")),
    ])


def test_o_creat_keeps_the_mode_bits_the_creator_may_have(twins: Twins) -> None:
    twins.run("open-modes", [
        (ROOT_NO_UMASK, create("all", 0o7777)),
        (ALICE_NO_UMASK, create("alices", 0o7777)),
        (ROOT, create("masked", 0o777)),
        (ROOT, create("none", 0o0)),
        (ROOT, lambda: os.chmod(".", 0o2777)),
        (ROOT, lambda: os.chown(".", 0, TEAM)),
        (ALICE_NO_UMASK, create("in-setgid-folder", 0o2777)),
        (User(ALICE, ALICE, (TEAM,), umask=0), create("in-setgid-folder-as-member", 0o2777)),
    ])


def test_open_follows_symlinks_unless_told_and_creates_a_dangling_links_target(
        twins: Twins) -> None:
    twins.run("open-links", [
        (ROOT, lambda: os.symlink("target", "dangling")),
        (ROOT, create("dangling", flags=os.O_EXCL)),                     # EEXIST
        (ROOT, create("dangling")),                                      # makes "target"
        (ROOT, on_fd("dangling", os.O_RDONLY | os.O_NOFOLLOW, lambda fd: None)),  # ELOOP
        (ROOT, on_fd("dangling", os.O_RDONLY | os.O_NOFOLLOW | os.O_PATH,
                     lambda fd: Seen(stat.S_ISLNK(os.fstat(fd).st_mode)))),
        (ROOT, lambda: os.symlink("loop", "loop")),
        (ROOT, on_fd("loop", os.O_RDONLY, lambda fd: None)),             # ELOOP
    ])


def test_open_with_the_wrong_kind_or_without_permission_gets_the_disks_errno(
        twins: Twins) -> None:
    twins.run("open-errnos", [
        (ROOT, create("f", 0o600)),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, on_fd("d", os.O_WRONLY, lambda fd: None)),                    # EISDIR
        (ROOT, on_fd("d", os.O_RDWR, lambda fd: None)),                      # EISDIR
        (ROOT, create("d")),                                                 # EISDIR
        (ROOT, create("f/")),                                                # EISDIR/ENOTDIR
        (ROOT, on_fd("f", os.O_RDONLY | os.O_DIRECTORY, lambda fd: None)),   # ENOTDIR
        (ROOT, on_fd("f/", os.O_RDONLY, lambda fd: None)),                   # ENOTDIR
        (ROOT, on_fd("missing", os.O_RDONLY, lambda fd: None)),              # ENOENT
        (ROOT, create("x" * 256)),                                           # ENAMETOOLONG
        (alice, on_fd("f", os.O_RDONLY, lambda fd: None)),                   # EACCES
        (alice, create("g", flags=os.O_EXCL)),                               # ok: 0777
        (ROOT, on_fd("d", os.O_RDONLY | os.O_CREAT, lambda fd: None)),       # EISDIR
        (ROOT, on_fd("f", os.O_RDONLY | os.O_TRUNC, lambda fd: None)),
    ])


# --- rename --------------------------------------------------------------------------

def test_renaming_one_hard_link_onto_another_of_the_same_file_changes_nothing(
        twins: Twins) -> None:
    twins.run("rename-same", [
        (ROOT, create("a")),
        (ROOT, lambda: os.link("a", "b")),
        (ROOT, lambda: os.rename("a", "b")),
        (ROOT, lambda: os.rename("a", "a")),
        (ROOT, listing(".")),
    ])


def test_rename_replaces_a_file_or_an_empty_folder_and_moves_the_right_times(
        twins: Twins) -> None:
    twins.run("rename-replace", [
        (ROOT, lambda: os.makedirs("from/sub")),
        (ROOT, lambda: os.mkdir("to")),
        (ROOT, create("from/f")),
        (ROOT, create("g")),
        (ROOT, lambda: os.link("g", "g-twin")),
        (ROOT, lambda: os.rename("from/f", "g")),           # g-twin's count drops
        (ROOT, lambda: os.mkdir("empty")),
        (ROOT, lambda: os.rename("from/sub", "empty")),     # onto an empty folder
        (ROOT, lambda: os.rename("empty", "to/sub")),       # to another folder
        (ROOT, lambda: os.symlink("g", "link")),
        (ROOT, lambda: os.rename("link", "to/link")),
        (ROOT, read("to/link")),
    ])


def test_rename_refuses_what_the_disk_refuses(twins: Twins) -> None:
    twins.run("rename-errnos", [
        (ROOT, lambda: os.makedirs("a/b")),
        (ROOT, lambda: os.mkdir("c")),
        (ROOT, create("c/f")),
        (ROOT, create("f")),
        (ROOT, lambda: os.rename("a", "c")),                # ENOTEMPTY
        (ROOT, lambda: os.rename("f", "a")),                # EISDIR
        (ROOT, lambda: os.rename("a", "f")),                # ENOTDIR
        (ROOT, lambda: os.rename("a", "a/b/c")),            # EINVAL
        (ROOT, lambda: os.rename("missing", "g")),          # ENOENT
        (ROOT, lambda: os.rename("f", "missing/g")),        # ENOENT
        (ROOT, lambda: os.rename("f", "f/g")),              # ENOTDIR
        (ROOT, lambda: os.rename("f/", "g")),               # ENOTDIR
        (ROOT, lambda: os.rename("f", "x" * 256)),          # ENAMETOOLONG
        (ROOT, lambda: os.rename("a/b/..", "d")),           # EBUSY/ENOTEMPTY
        (ROOT, lambda: os.rename("a/.", "d")),
    ])


def test_rename_without_replacing_and_exchange_do_what_mv_asks(twins: Twins) -> None:
    twins.run("renameat2", [
        (ROOT, create("a")),
        (ROOT, write("a", b"first")),
        (ROOT, create("b")),
        (ROOT, renameat2("a", "b", RENAME_NOREPLACE)),      # EEXIST
        (ROOT, renameat2("a", "c", RENAME_NOREPLACE)),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, renameat2("c", "d", RENAME_EXCHANGE)),
        (ROOT, read("d")),
        (ROOT, renameat2("d", "nothing", RENAME_EXCHANGE)),  # ENOENT
    ])


def test_renaming_in_a_folder_others_may_not_write_is_refused(twins: Twins) -> None:
    twins.run("rename-access", [
        (ROOT, lambda: os.mkdir("closed")),
        (ROOT, create("closed/f")),
        (ROOT, lambda: os.chmod("closed", 0o755)),
        (alice, lambda: os.rename("closed/f", "mine")),     # EACCES
        (alice, lambda: os.mkdir("mine")),
        (ROOT, lambda: os.chmod("closed", 0o777)),
        (alice, lambda: os.rename("mine", "closed/moved")),
        (ROOT, lambda: os.chmod("closed/moved", 0o555)),
        (alice, lambda: os.rename("closed/moved", "back")),  # its ".." cannot change
    ])


# --- rmdir, unlink -------------------------------------------------------------------

def test_rmdir_refuses_files_links_dots_and_full_folders(twins: Twins) -> None:
    twins.run("rmdir", [
        (ROOT, lambda: os.makedirs("d/sub")),
        (ROOT, create("f")),
        (ROOT, lambda: os.symlink("d/sub", "link")),
        (ROOT, lambda: os.rmdir("link")),                   # ENOTDIR
        (ROOT, lambda: os.rmdir("f")),                      # ENOTDIR
        (ROOT, lambda: os.rmdir("d")),                      # ENOTEMPTY
        (ROOT, lambda: os.rmdir("d/sub/.")),                # EINVAL
        (ROOT, lambda: os.rmdir("d/sub/..")),               # ENOTEMPTY
        (ROOT, lambda: os.rmdir("missing")),                # ENOENT
        (ROOT, lambda: os.rmdir("d/sub")),
        (ROOT, lambda: os.rmdir("d/")),
    ])


def test_unlink_removes_one_name_of_any_kind_and_never_a_folder(twins: Twins) -> None:
    twins.run("unlink", [
        (ROOT, create("f")),
        (ROOT, lambda: os.link("f", "g")),
        (ROOT, lambda: os.mkfifo("p")),
        (ROOT, bind_socket("s")),
        (ROOT, lambda: os.mknod("chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.unlink("link")),
        (ROOT, lambda: os.unlink("g")),
        (ROOT, lambda: os.unlink("p")),
        (ROOT, lambda: os.unlink("s")),
        (ROOT, lambda: os.unlink("chr")),
        (ROOT, lambda: os.unlink("d")),                     # EISDIR
        (ROOT, lambda: os.unlink("f/")),                    # ENOTDIR
        (ROOT, lambda: os.unlink("missing")),               # ENOENT
    ])


def test_a_file_unlinked_while_open_is_still_read_and_written(twins: Twins) -> None:
    def unlinked_then_used() -> Seen:
        fd = os.open("f", os.O_RDWR)
        try:
            os.unlink("f")
            os.write(fd, b"still here")
            os.lseek(fd, 0, os.SEEK_SET)
            return Seen((os.read(fd, 100), os.fstat(fd).st_nlink, os.fstat(fd).st_size))
        finally:
            os.close(fd)
    twins.run("unlink-open", [
        (ROOT, create("f")),
        (ROOT, unlinked_then_used),
        (ROOT, listing(".")),
    ])


def test_in_a_sticky_folder_root_and_the_folders_owner_may_remove_anything(
        twins: Twins) -> None:
    twins.run("sticky-owner", [
        (ROOT, lambda: os.mkdir("t")),
        (ROOT, lambda: os.chown("t", ALICE, ALICE)),
        (ROOT, lambda: os.chmod("t", 0o1777)),
        (bob, create("t/bobs")),
        (bob, create("t/bobs2")),
        (bob, lambda: os.mkdir("t/bobs-dir")),
        (alice, lambda: os.unlink("t/bobs")),
        (ROOT, lambda: os.unlink("t/bobs2")),
        (User(9999, 9999), lambda: os.rmdir("t/bobs-dir")),   # EPERM
        (alice, lambda: os.rmdir("t/bobs-dir")),
    ])


# --- symlink, readlink ---------------------------------------------------------------

def test_symlinks_hold_targets_up_to_the_limit_and_lstat_counts_them(twins: Twins) -> None:
    twins.run("symlink", [
        (ROOT, lambda: os.symlink("x", "one")),
        (ROOT, lambda: os.symlink("y" * 4095, "longest")),
        (ROOT, lambda: os.symlink("y" * 4096, "too-long")),       # ENAMETOOLONG
        (ROOT, lambda: os.symlink("", "empty")),                   # ENOENT
        (ROOT, lambda: os.symlink("x", "one")),                    # EEXIST
        (ROOT, lambda: os.symlink("x", "missing/link")),           # ENOENT
        (ROOT, lambda: os.symlink("a/../b\n\t é", "odd")),
        (ROOT, lambda: Seen(os.readlink("odd"))),
        (alice, lambda: os.symlink("x", "alices")),
    ])


# --- utimensat -----------------------------------------------------------------------

def test_utime_sets_nanoseconds_on_files_folders_and_symlinks_themselves(
        twins: Twins) -> None:
    def times_of(name: str) -> Callable[[], object]:
        """A file's atime and mtime; only the mtime of folders and symlinks, whose atime
        the harness moves itself when it reads them (relatime)."""
        def step() -> Seen:
            st = os.lstat(name)
            return Seen((st.st_atime_ns if stat.S_ISREG(st.st_mode) else None,
                         st.st_mtime_ns))
        return step
    twins.run("utime", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.utime("f", ns=(1_234_567_891, 9_876_543_219))),
        (ROOT, times_of("f")),
        (ROOT, lambda: os.utime("d", ns=(0, 1))),
        (ROOT, times_of("d")),
        (ROOT, lambda: os.utime("link", ns=(5, 6), follow_symlinks=False)),
        (ROOT, times_of("link")),
        (ROOT, times_of("f")),
        (ROOT, lambda: os.utime("link", ns=(7, 8))),
        (ROOT, times_of("f")),
        (ROOT, lambda: os.utime("f", ns=(-1_000_000_000, 2**40))),
        (ROOT, times_of("f")),
    ])


def test_utime_now_and_omit_move_only_the_times_they_name(twins: Twins) -> None:
    twins.run("utime-now", [
        (ROOT, create("f")),
        (ROOT, lambda: os.utime("f", ns=(1, 1))),
        (ROOT, lambda: os.utime("f")),
        (ROOT, lambda: os.utime("f", ns=(2, 2))),
        (ROOT, on_fd("f", os.O_RDONLY, lambda fd: os.utime(fd, ns=(3, 3)))),
        (alice, lambda: os.utime("f")),                       # EACCES
        (alice, lambda: os.utime("f", ns=(4, 4))),            # EPERM
    ])


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
BAD_NANOSECONDS = -1  # as_timespec makes it a tv_nsec of 10**9


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(name: str, atime: int, mtime: int) -> Callable[[], object]:
    """utimensat(2) with UTIME_NOW / UTIME_OMIT as either time (os.utime has neither)."""
    def as_timespec(value: int) -> Timespec:
        if value in (UTIME_NOW, UTIME_OMIT):
            return Timespec(0, value)
        if value == BAD_NANOSECONDS:
            return Timespec(0, 10**9)
        return Timespec(value // 10**9, value % 10**9)

    def step() -> None:
        times = (Timespec * 2)(as_timespec(atime), as_timespec(mtime))
        if LIBC.utimensat(AT_FDCWD, name.encode(), times, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    return step


def test_utimensat_with_now_and_omit_in_every_combination_and_by_every_user(
        twins: Twins) -> None:
    def mtime_of(name: str) -> Callable[[], object]:
        return lambda: Seen(os.stat(name).st_mtime_ns)
    twins.run("utimensat", [
        (ROOT, create("f")),
        (ROOT, lambda: os.chmod("f", 0o666)),
        (ROOT, utimensat("f", 5 * 10**9 + 1, 6 * 10**9 + 2)),
        (ROOT, mtime_of("f")),
        (ROOT, utimensat("f", UTIME_OMIT, UTIME_OMIT)),           # moves no time at all
        (ROOT, utimensat("f", UTIME_NOW, UTIME_OMIT)),
        (ROOT, mtime_of("f")),
        (ROOT, utimensat("f", UTIME_OMIT, 7 * 10**9)),
        (ROOT, mtime_of("f")),
        (alice, utimensat("f", UTIME_NOW, UTIME_NOW)),            # a writer may touch
        (alice, utimensat("f", UTIME_NOW, UTIME_OMIT)),           # EPERM: not both now
        (alice, utimensat("f", UTIME_OMIT, 8 * 10**9)),           # EPERM
        (alice, utimensat("f", UTIME_OMIT, UTIME_OMIT)),
        (ROOT, lambda: os.chmod("f", 0o644)),
        (alice, utimensat("f", UTIME_NOW, UTIME_NOW)),            # EACCES
        (alice, utimensat("f", UTIME_OMIT, UTIME_OMIT)),
        (ROOT, utimensat("f", 0, BAD_NANOSECONDS)),                # EINVAL
    ])


# --- xattrs --------------------------------------------------------------------------

def test_xattr_create_and_replace_flags_and_missing_names_get_the_disks_errno(
        twins: Twins) -> None:
    twins.run("xattr-flags", [
        (ROOT, create("f")),
        (ROOT, lambda: os.setxattr("f", "user.k", b"1", os.XATTR_CREATE)),
        (ROOT, lambda: os.setxattr("f", "user.k", b"2", os.XATTR_CREATE)),     # EEXIST
        (ROOT, lambda: os.setxattr("f", "user.new", b"3", os.XATTR_REPLACE)),  # ENODATA
        (ROOT, lambda: os.setxattr("f", "user.k", b"4", os.XATTR_REPLACE)),
        (ROOT, lambda: Seen(os.getxattr("f", "user.k"))),
        (ROOT, lambda: os.getxattr("f", "user.missing")),                       # ENODATA
        (ROOT, lambda: os.removexattr("f", "user.missing")),                    # ENODATA
        (ROOT, lambda: os.setxattr("f", "user.empty", b"")),
        (ROOT, lambda: Seen(sorted(os.listxattr("f")))),
        (ROOT, lambda: os.setxattr("f", "user." + "n" * 251, b"v")),            # ERANGE
        (ROOT, lambda: os.removexattr("f", "user.k")),
        (ROOT, lambda: Seen(sorted(os.listxattr("f")))),
    ])


def test_user_xattrs_only_on_files_and_folders_and_only_for_writers(twins: Twins) -> None:
    twins.run("xattr-kinds", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.mkfifo("p")),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.setxattr("d", "user.k", b"v")),
        (ROOT, lambda: os.setxattr("p", "user.k", b"v")),                       # EPERM
        (ROOT, lambda: os.setxattr("link", "user.k", b"v", follow_symlinks=False)),
        (ROOT, lambda: os.setxattr("link", "user.via-link", b"v")),
        (ROOT, lambda: Seen(sorted(os.listxattr("f")))),
        (alice, lambda: os.setxattr("f", "user.k", b"v")),                      # EACCES
        (alice, lambda: Seen(sorted(os.listxattr("f")))),
        (ROOT, lambda: os.chmod("f", 0o600)),
        (alice, lambda: os.getxattr("f", "user.via-link")),                     # EACCES
    ])


# --- data ----------------------------------------------------------------------------

def test_writes_past_the_end_leave_a_hole_of_zeros(twins: Twins) -> None:
    def sparse() -> None:
        fd = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, b"end", 100_000)
            os.pwrite(fd, b"start", 0)
        finally:
            os.close(fd)
    twins.run("holes", [
        (ROOT, sparse),
        (ROOT, read("f")),
        (ROOT, on_fd("f", os.O_RDWR, lambda fd: os.posix_fallocate(fd, 0, 200_000))),
        (ROOT, lambda: os.truncate("f", 50)),
        (ROOT, lambda: os.truncate("f", 60)),
        (ROOT, read("f")),
    ])


def test_errnos_of_reads_and_writes_on_the_wrong_descriptor(twins: Twins) -> None:
    twins.run("rw-errnos", [
        (ROOT, create("f")),
        (ROOT, on_fd("f", os.O_RDONLY, lambda fd: os.write(fd, b"x"))),     # EBADF
        (ROOT, on_fd("f", os.O_WRONLY, lambda fd: os.read(fd, 1))),         # EBADF
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, on_fd("d", os.O_RDONLY, lambda fd: os.read(fd, 1))),         # EISDIR
        (ROOT, on_fd("f", os.O_RDONLY, lambda fd: Seen(os.read(fd, 10)))),
        (ROOT, on_fd("f", os.O_RDWR, lambda fd: os.pwrite(fd, b"x", -1))),   # EINVAL
    ])


MAKE_KIND: dict[str, Callable[[str], object]] = {
    "regular": lambda n: os.close(os.open(n, os.O_CREAT | os.O_WRONLY, 0o644)),
    "dir": lambda n: os.mkdir(n, 0o755),
    "fifo": lambda n: os.mkfifo(n, 0o644),
    "block": lambda n: os.mknod(n, stat.S_IFBLK | 0o644, os.makedev(7, 200)),
    "char": lambda n: os.mknod(n, stat.S_IFCHR | 0o644, os.makedev(1, 3)),
    "socket": lambda n: bind_socket(n)(),
    "symlink": lambda n: os.symlink("somewhere", n),
}
MEMBER = User(ALICE, ALICE, (TEAM,))


@pytest.mark.parametrize("kind", list(MAKE_KIND))
def test_owners_modes_and_times_of_every_kind_of_entry(twins: Twins, kind: str) -> None:
    """pjdfstest's way: the same calls on each of the seven kinds of entry."""
    make = MAKE_KIND[kind]
    plain = kind != "symlink"  # chmod and chown follow a symlink to "somewhere"
    steps: list[tuple[User, Callable[[], object]]] = [
        (ROOT, lambda: make("n")),
        (ROOT, lambda: os.lchown("n", ALICE, ALICE)),
        (MEMBER, lambda: os.lchown("n", -1, TEAM)),
        (bob, lambda: os.lchown("n", -1, -1)),
        (bob, lambda: os.lchown("n", BOB, -1)),                   # EPERM, no time moves
        (alice, lambda: os.lchown("n", -1, BOB)),                 # EPERM
        (ROOT, lambda: os.utime("n", ns=(10**18, 10**18), follow_symlinks=False)),
        (ROOT, lambda: os.rename("n", "renamed")),
    ]
    if plain:
        steps += [
            (ROOT, lambda: os.chmod("renamed", 0o6555)),
            (ROOT, lambda: os.chown("renamed", BOB, BOB)),        # clears them on non-folders
            (ROOT, lambda: os.chmod("renamed", 0o6555)),
            (ROOT, lambda: os.symlink("renamed", "via")),
            (ROOT, lambda: os.chown("via", ALICE, TEAM)),
            (ROOT, lambda: os.chmod("via", 0o6555)),
            (MEMBER, lambda: os.chown("via", -1, ALICE)),         # to another group of hers
            (bob, lambda: os.chmod("via", 0o777)),                # EPERM
            (ROOT, lambda: os.unlink("via")),
        ]
    if kind != "dir":
        steps += [(ROOT, lambda: os.link("renamed", "second")),
                  (ROOT, lambda: os.unlink("renamed"))]
    twins.run(f"kind-{kind}", steps)


PATH_CALLS: dict[str, Callable[[str], object]] = {
    "stat": os.stat,
    "lstat": os.lstat,
    "chmod": lambda p: os.chmod(p, 0o600),
    "chown": lambda p: os.chown(p, ALICE, -1),
    "lchown": lambda p: os.lchown(p, ALICE, -1),
    "truncate": lambda p: os.truncate(p, 0),
    "open": lambda p: os.close(os.open(p, os.O_RDONLY)),
    "create": lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)),
    "mkdir": os.mkdir,
    "rmdir": os.rmdir,
    "unlink": os.unlink,
    "mkfifo": os.mkfifo,
    "mknod": lambda p: os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 3)),
    "symlink": lambda p: os.symlink("target", p),
    "link from": lambda p: os.link(p, "new-name"),
    "link to": lambda p: os.link("f", p),
    "rename from": lambda p: os.rename(p, "new-name"),
    "rename to": lambda p: os.rename("f", p),
    "utime": lambda p: os.utime(p, ns=(1, 1)),
    "readlink": os.readlink,
    "setxattr": lambda p: os.setxattr(p, "user.k", b"v"),
    "getxattr": lambda p: os.getxattr(p, "user.k"),
    "listxattr": os.listxattr,
    "listdir": os.listdir,
}
BAD_PATHS = {
    "x" * 256: "a name over 255 bytes",
    "x" * 256 + "/y": "a folder's name over 255 bytes",
    "f/x": "a file as a folder",
    "missing/x": "a missing folder",
    "loop/x": "a symlink loop",
    "closed/x": "a folder the caller may not search",
}


@pytest.mark.parametrize("call", list(PATH_CALLS))
def test_every_call_refuses_a_bad_path_with_the_disks_errno(twins: Twins, call: str) -> None:
    """ENAMETOOLONG, ENOTDIR, ENOENT, ELOOP and EACCES, each for every call."""
    steps: list[tuple[User, Callable[[], object]]] = [
        (ROOT, create("f")),
        (ROOT, lambda: os.symlink("loop", "loop")),
        (ROOT, lambda: os.mkdir("closed", 0o700)),
        (ROOT, create("closed/x")),
    ]
    for path in BAD_PATHS:
        steps.append((alice, lambda path=path: PATH_CALLS[call](path)))  # type: ignore[misc]
    twins.run(f"bad-paths-{call}", steps, times=False)


def test_a_program_running_from_the_mount_cannot_be_opened_for_writing(twins: Twins) -> None:
    """ETXTBSY, as on the disk."""
    def while_it_runs(step: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            program = subprocess.Popen(["./sleeper", "5"])
            try:
                time.sleep(0.3)  # exec'd
                return step()
            finally:
                program.kill()
                program.wait()
        return run
    twins.run("etxtbsy", [
        (ROOT, lambda: shutil.copy2(shutil.which("sleep") or "/bin/sleep", "sleeper")),
        (ROOT, while_it_runs(write("sleeper", b"x"))),                  # ETXTBSY
        (ROOT, while_it_runs(lambda: os.truncate("sleeper", 0))),       # ETXTBSY
        (ROOT, while_it_runs(on_fd("sleeper", os.O_RDONLY, lambda fd: Seen(len(os.read(fd, 9)))))),
    ], times=False)


def test_a_size_past_the_disks_largest_file_is_efbig(twins: Twins) -> None:
    twins.run("efbig", [
        (ROOT, create("f")),
        (ROOT, lambda: os.truncate("f", 2**62)),
        (ROOT, on_fd("f", os.O_WRONLY, lambda fd: os.pwrite(fd, b"x", 2**62))),
    ])


def test_readdir_gives_each_entrys_type_and_the_inode_number_stat_gives(
        twins: Twins) -> None:
    def scanned() -> Seen:
        return Seen(sorted((e.name, e.is_dir(follow_symlinks=False), e.is_symlink(),
                            e.is_file(follow_symlinks=False), e.inode() == e.stat(
                                follow_symlinks=False).st_ino) for e in os.scandir(".")))
    twins.run("readdir", [
        (ROOT, create("f")),
        (ROOT, lambda: os.mkdir("d")),
        (ROOT, lambda: os.symlink("f", "link")),
        (ROOT, lambda: os.mkfifo("p")),
        (ROOT, lambda: os.link("f", "g")),
        (ROOT, scanned),
        (ROOT, lambda: Seen(os.statvfs(".").f_namemax)),
        (ROOT, lambda: Seen(os.pathconf(".", "PC_NAME_MAX"))),
    ], times=False)


def test_direct_io_copy_file_range_and_fsync_of_a_folder_work(twins: Twins) -> None:
    def copied() -> Seen:
        src = os.open("f", os.O_RDONLY)
        dst = os.open("copy", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            return Seen(os.copy_file_range(src, dst, 1 << 20))
        finally:
            os.close(src)
            os.close(dst)
    twins.run("io-kinds", [
        (ROOT, create("f")),
        (ROOT, write("f", b"y" * 8192)),
        (ROOT, copied),
        (ROOT, read("copy")),
        (ROOT, on_fd(".", os.O_RDONLY, os.fsync)),
        (ROOT, on_fd("f", os.O_RDONLY | os.O_DIRECT, lambda fd: None)),
    ])


FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


def fallocate(mode: int, offset: int, length: int) -> Callable[[int], object]:
    """fallocate(2) with a mode (os.posix_fallocate has none)."""
    def call(fd: int) -> None:
        if LIBC.fallocate(fd, mode, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    return call


@pytest.mark.parametrize("mode", [FALLOC_FL_KEEP_SIZE, FALLOC_FL_KEEP_SIZE
                                  | FALLOC_FL_PUNCH_HOLE], ids=["keep-size", "punch-hole"])
def test_fallocate_with_a_mode_is_eopnotsupp_in_the_mount(twins: Twins, mode: int) -> None:
    """A documented difference: pyfuse3 passes no FALLOCATE request on, so the kernel
    answers EOPNOTSUPP (posix_fallocate, with no mode, still works: glibc then writes
    the zeros itself — test_writes_past_the_end_leave_a_hole_of_zeros)."""
    for place, answer in ((twins.disk, "ok"), (twins.mounted, errno.errorcode[errno.EOPNOTSUPP])):
        folder = place / f"fallocate-{mode}"
        os.mkdir(folder)
        (folder / "f").write_bytes(b"z" * 20000)
        assert outcome(ROOT, folder, on_fd("f", os.O_RDWR, fallocate(mode, 4096, 8192))) \
            == answer


def test_the_harness_sees_a_time_that_moved_on_one_side_only(twins: Twins) -> None:
    """A guard on the comparison itself: a change made behind the mount's back, on the
    disk's side only, must show as a difference."""
    with pytest.raises(AssertionError, match="left behind differs"):
        twins.run("guard-times", [
            (ROOT, create("f")),
            (ROOT, lambda: os.utime("f") if "sources" not in os.getcwd() else None),
        ])


def test_the_harness_sees_a_file_replaced_by_a_copy_of_itself(twins: Twins) -> None:
    """The identity guard: same name, mode and content, another inode (disk side only)."""
    def copy_over() -> None:
        if "sources" not in os.getcwd():
            shutil.copy2("f", "copy")
            os.rename("copy", "f")
    with pytest.raises(AssertionError, match="left behind differs"):
        twins.run("guard-inode", [(ROOT, create("f")), (ROOT, copy_over)], times=False)
