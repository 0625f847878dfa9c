"""The catalog as the commands and a daemon use it: `markfs fsck`'s exit codes, and
nothing closed lost when the daemon is killed (the catalog alone: tests/unit/test_catalog.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import Mount, run_markfs

from markfs.config import DataDir
from markfs.model import ChangeSet
from markfs.namespace.tree import Tree


@pytest.fixture
def tree(data_dir: Path) -> Tree:
    return Tree.open(DataDir(data_dir))


def test_fsck_command_exits_1_on_problems_and_0_after_repair(data_dir: Path) -> None:
    tree = Tree.open(DataDir(data_dir))
    tree.hot.mark_stale()
    tree.close()
    # opening the tree would rebuild a stale mirror; fsck sees what start-up repaired
    done = run_markfs(data_dir, "fsck", check=False)
    assert done.returncode == 0
    tree = Tree.open(DataDir(data_dir))
    tree.hot.apply(ChangeSet(gone_nodes=[2]), tree.catalog.stamp)
    tree.close()
    done = run_markfs(data_dir, "fsck", check=False)
    assert done.returncode == 1 and "problem: hot cache node 2: missing" in done.stdout
    assert "fsck --repair" in done.stderr
    run_markfs(data_dir, "fsck", "--repair")
    run_markfs(data_dir, "fsck")


def test_kill_9_of_the_daemon_loses_nothing_that_was_closed(mount: Mount, src: Path) -> None:
    for i in range(50):
        (src / f"f{i}").write_text(str(i))
    os.makedirs(src / "d" / "e")
    (src / "d" / "e" / "g").write_text("deep")
    inodes = {p: os.stat(src / p).st_ino for p in ("f7", "d/e/g")}
    assert mount.proc is not None
    mount.proc.send_signal(signal.SIGKILL)
    mount.proc.wait()
    mount.stop()  # the kernel side is gone too: clean up the dead mount
    mount.assert_fsck_clean()
    mount.start()
    assert all((src / f"f{i}").read_text() == str(i) for i in range(50))
    assert {p: os.stat(src / p).st_ino for p in inodes} == inodes


