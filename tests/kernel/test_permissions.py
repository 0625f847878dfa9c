"""Permissions for every user (issue 13, parts 1 and 2), each scenario run twice — on
a plain folder of the disk and on the same folder's twin inside a local source of a
mount with --allow-other — with the same users, umasks and steps: every step's outcome
(ok or its errno) and the owners, modes and link counts left behind must be equal."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

import pytest
from twins import Twins, twin_mount
from users import ALICE, BOB, ROOT, TEAM, User, alice, alice_in_team, bob


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twins]:
    yield from twin_mount(tmp_path_factory.mktemp("perm"))


def write_to(name: str) -> Callable[[], object]:
    def step() -> None:
        with open(name, "r+b") as f:
            f.write(b"changed")
    return step


def mkdir(name: str, mode: int) -> Callable[[], object]:
    """mkdir, then chmod: the caller's umask must not trim a set-up's mode."""
    def step() -> None:
        os.mkdir(name)
        os.chmod(name, mode)
    return step


def create(name: str, mode: int = 0o666) -> Callable[[], object]:
    return lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_EXCL, mode))


def test_a_non_owner_can_neither_write_nor_change_a_file(twins: Twins) -> None:
    twins.run("non-owner", [
        (alice, create("f", 0o644)),
        (bob, write_to("f")),
        (bob, lambda: os.chmod("f", 0o666)),
        (bob, lambda: os.chown("f", BOB, BOB)),
        (bob, lambda: os.utime("f", ns=(1, 1))),
        (bob, lambda: os.utime("f")),  # "now" needs write permission only
        (bob, lambda: os.truncate("f", 0)),
        (alice, lambda: os.chown("f", BOB, -1)),  # only root gives files away
        (alice, lambda: os.chmod("f", 0o600)),
        (bob, lambda: open("f").close()),
    ])


def test_a_writer_who_is_not_the_owner_may_touch_and_truncate_but_not_set_times(
        twins: Twins) -> None:
    twins.run("writer", [
        (alice, create("f", 0o666)),
        (bob, lambda: os.utime("f")),
        (bob, lambda: os.utime("f", ns=(1, 1))),
        (bob, lambda: os.truncate("f", 1)),
        (bob, write_to("f")),
    ])


def test_a_folder_without_write_permission_refuses_new_and_removed_entries(
        twins: Twins) -> None:
    twins.run("closed", [
        (alice, mkdir("d", 0o755)),
        (alice, create("d/f")),
        (bob, create("d/g")),
        (bob, lambda: os.unlink("d/f")),
        (bob, lambda: os.rename("d/f", "moved")),
        (bob, lambda: os.mkdir("d/sub")),
        (alice, lambda: os.chmod("d", 0o555)),
        (alice, create("d/h")),
        (alice, lambda: os.chmod("d", 0o311)),
        (bob, lambda: os.listdir("d")),
        (bob, lambda: os.stat("d/f")),
    ])


def test_in_a_sticky_folder_only_owners_remove_or_rename_their_entries(twins: Twins) -> None:
    twins.run("sticky", [
        (ROOT, mkdir("t", 0o1777)),
        (alice, create("t/a")),
        (bob, lambda: os.unlink("t/a")),
        (bob, lambda: os.rename("t/a", "t/b")),
        (bob, create("t/c")),
        (bob, lambda: os.rename("t/c", "t/a")),  # onto someone else's name
        (alice, lambda: os.unlink("t/c")),
        (alice, lambda: os.rename("t/a", "t/renamed")),
        (bob, lambda: os.unlink("t/c")),
    ])


def test_a_setgid_folder_passes_its_group_and_its_setgid_bit_down(twins: Twins) -> None:
    twins.run("setgid", [
        (ROOT, mkdir("g", 0o2777)),
        (ROOT, lambda: os.chown("g", 0, TEAM)),
        (alice, create("g/file")),
        (alice, lambda: os.mkdir("g/sub")),
        (alice, create("g/sub/deeper")),
        (alice, lambda: os.symlink("file", "g/link")),
        (alice_in_team, lambda: os.chmod("g/file", 0o2755)),
    ])


def test_setgid_is_dropped_when_the_owner_is_not_in_the_files_group(twins: Twins) -> None:
    twins.run("drop-setgid", [
        (alice, create("f", 0o755)),
        (ROOT, lambda: os.chown("f", ALICE, TEAM)),
        (alice, lambda: os.chmod("f", 0o2755)),  # alice is not in TEAM: the bit goes
    ])


def test_writing_as_another_user_clears_setuid_and_setgid(twins: Twins) -> None:
    twins.run("killpriv", [
        (alice, create("f", 0o777)),
        (alice, lambda: os.chmod("f", 0o6777)),
        (bob, write_to("f")),
    ])


def test_new_entries_get_the_callers_umask(twins: Twins) -> None:
    strict = User(ALICE, ALICE, umask=0o077)
    group_writable = User(BOB, BOB, umask=0o002)
    twins.run("umask", [
        (strict, create("strict-file")),
        (strict, lambda: os.mkdir("strict-dir")),
        (group_writable, create("shared-file")),
        (group_writable, lambda: os.mkdir("shared-dir")),
        (ROOT, mkdir("root-dir", 0o1777)),
    ])


def test_only_root_hands_a_file_to_another_group_unless_the_owner_belongs(
        twins: Twins) -> None:
    twins.run("chgrp", [
        (alice, create("f")),
        (alice, lambda: os.chown("f", -1, TEAM)),
        (alice_in_team, lambda: os.chown("f", -1, TEAM)),
        (ROOT, lambda: os.chown("f", BOB, BOB)),
    ])


def test_bad_arguments_get_the_disks_errno(twins: Twins) -> None:
    twins.run("errnos", [
        (ROOT, lambda: os.makedirs("a/b")),
        (ROOT, create("file")),
        (ROOT, lambda: os.symlink("loop", "loop")),
        (ROOT, lambda: os.rename("a", "a/b/inside")),        # EINVAL
        (ROOT, lambda: os.rmdir("a")),                        # ENOTEMPTY
        (ROOT, lambda: os.mkdir("file")),                     # EEXIST
        (ROOT, create("file")),                               # EEXIST
        (ROOT, lambda: os.listdir("file")),                   # ENOTDIR
        (ROOT, lambda: os.stat("file/x")),                    # ENOTDIR
        (ROOT, lambda: os.rename("a", "file")),               # ENOTDIR
        (ROOT, lambda: os.rename("file", "a")),               # EISDIR
        (ROOT, lambda: os.unlink("a")),                       # EISDIR
        (ROOT, lambda: os.rmdir("file")),                     # ENOTDIR
        (ROOT, lambda: open("loop").close()),                 # ELOOP
        (ROOT, lambda: os.link("a", "a2")),                   # EPERM
        (ROOT, lambda: os.rmdir(".")),                        # EINVAL
        (ROOT, lambda: os.mkdir("missing/x")),                # ENOENT
        (ROOT, lambda: os.open("file", os.O_WRONLY | os.O_DIRECTORY)),
        (ROOT, lambda: os.readlink("file")),                  # EINVAL
    ])


def test_the_comparison_sees_a_step_that_differs(twins: Twins) -> None:
    """A guard on the harness itself: a step that fails on one side shows."""
    with pytest.raises(AssertionError, match="outcomes differ"):
        twins.run("guard", [(ROOT, lambda: os.mkdir(
            "x" if stat.S_ISDIR(os.stat(".").st_mode) and "sources" in os.getcwd() else "."))])
