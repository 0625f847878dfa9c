"""An SFTP source is connected when its mount starts: ssh runs before anyone asks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from remote_helpers import mount_remote, sftp_source, wait_until
from servers import SshServer


def test_a_mount_connects_to_its_sftp_source_before_anyone_asks(
        sshd: SshServer, tmp_path: Path, data_dir: Path) -> None:
    """Starting ssh and its key exchange take ~0.2 s; the first `ls` should not wait."""
    mount = mount_remote(tmp_path, data_dir, sftp_source(sshd, tmp_path / "files"))
    try:
        status = json.loads((mount.path / ".markfs" / "status.json").read_text())
        wait_until(lambda: ssh_children(status["pid"]), 10)
    finally:
        mount.stop()


def ssh_children(pid: int) -> list[str]:
    """The daemon's `ssh` processes (children of any of its threads)."""
    return subprocess.run(["pgrep", "-x", "-P", str(pid), "ssh"], capture_output=True,
                          text=True).stdout.split()
