"""rsync and cp -a into an SFTP source keep every mode and time (issue 24, part 1, on
SFTP): rsync writes a temporary, closes it, sets its mode and times and renames it while
its upload runs; it sets a folder's times before filling it and again at its end if they
moved; cp -a sets a folder's times (then its owner and mode) after filling it, while the
uploads into it still land. `rsync -a --checksum --dry-run --itemize-changes`
afterwards lists nothing — right away, after a remount, and against the server's own
copy."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount
from remote_helpers import (
    differences,
    fsync_all,
    git_status_after_remount,
    mount_remote,
    sftp_source,
)
from servers import SshServer


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Three folders of 30 files with modes 0755/0640 and old times, folders old too."""
    top = tmp_path / "tree"
    for number in range(30):
        path = top / f"d{number % 3}" / f"f{number}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {number}\n" * (number + 1))
        path.chmod(0o755 if number % 2 else 0o640)
        os.utime(path, (1_000_000_000 + number, 1_000_000_000 + number))
    for folder in (top, *top.iterdir()):
        os.utime(folder, (1_100_000_000, 1_100_000_000))
    return top


@pytest.fixture
def sftp_mount(tmp_path: Path, data_dir: Path, sshd: SshServer) -> Iterator[tuple[Mount, Path]]:
    """(the mount, the source's folder on the server)."""
    source = sftp_source(sshd, tmp_path / "sftp-root")
    mount = mount_remote(tmp_path, data_dir, source)
    try:
        yield mount, tmp_path / "sftp-root"
    finally:
        mount.stop()
    mount.assert_log_clean()


@pytest.mark.parametrize("tool", ["rsync", "cp"])
def test_a_tree_copied_in_keeps_every_mode_and_time(
        tree: Path, sftp_mount: tuple[Mount, Path], tool: str) -> None:
    mount, on_server = sftp_mount
    copy = mount.path / "sources" / "r" / "copy"
    if tool == "rsync":
        subprocess.run(["rsync", "-a", f"{tree}/", f"{copy}/"], check=True)
    else:
        subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    assert differences(tree, copy) == []  # right away
    os.sync()  # (fsync of every file: the uploads and their attributes have landed)
    fsync_all(copy)
    mount.remount()
    assert differences(tree, copy) == []  # after a remount
    assert differences(tree, on_server / "copy") == []  # the server's own copy


def test_git_sees_no_change_after_a_remount(sftp_mount: tuple[Mount, Path]) -> None:
    mount, _on_server = sftp_mount
    assert git_status_after_remount(mount, mount.path / "sources" / "r" / "repo") == ""
