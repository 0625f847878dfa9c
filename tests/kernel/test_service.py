"""Running markfs as a service (issue 12, part 3): the mount(8) helper called as mount
calls it, the systemd unit's commands with systemd's readiness protocol (a
NOTIFY_SOCKET of the test's own, no systemd), the daemon's rotating log."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Mount, force_unmount, is_mounted, run_markfs
from remote_helpers import Stoppable, pending_while_down

REPO = Path(__file__).resolve().parents[2]
MARKFS = str(Path(sys.executable).parent / "markfs")


def mount_as_mount_does(data_dir: Path, point: Path, options: str
                        ) -> subprocess.CompletedProcess[str]:
    """/sbin/mount.markfs DATA_DIR MOUNTPOINT -o OPTIONS, as mount(8) runs it."""
    return subprocess.run([str(REPO / "mount" / "mount.markfs"), str(data_dir), str(point),
                           "-o", options], env={**os.environ, "MARKFS": MARKFS},
                          capture_output=True, text=True, timeout=60, check=False)


def mount_options(point: Path) -> set[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            if head.split(" ")[4] == str(point):
                return set(tail.split(" ")[2].strip().split(","))
    return set()


def test_the_mount_helper_maps_fstab_options_to_the_mount(
        data_dir: Path, backing: Path, tmp_path: Path) -> None:
    (backing / "hello.txt").write_text("hi")
    point = tmp_path / "mnt"
    point.mkdir()
    try:
        done = mount_as_mount_does(data_dir, point, "defaults,_netdev,allow_other,root=sources")
        assert done.returncode == 0, done.stderr
        assert os.listdir(point) == ["loc"]  # root=sources
        assert "allow_other" in mount_options(point)
        assert (point / "loc" / "hello.txt").read_text() == "hi"
    finally:
        run_markfs(data_dir, "umount", str(point), check=False)
        force_unmount(point)


def test_a_read_only_mount_refuses_writes(data_dir: Path, backing: Path, tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    try:
        assert mount_as_mount_does(data_dir, point, "ro").returncode == 0
        with pytest.raises(OSError) as exc:
            (point / "sources" / "loc" / "new.txt").write_text("no")
        assert exc.value.errno == 30  # EROFS
        assert not (backing / "new.txt").exists()
    finally:
        run_markfs(data_dir, "umount", str(point), check=False)
        force_unmount(point)


def test_the_mount_helper_refuses_an_unknown_option(data_dir: Path, tmp_path: Path) -> None:
    done = mount_as_mount_does(data_dir, tmp_path, "allow_other,turbo")
    assert done.returncode == 1 and "unknown mount option for markfs: turbo" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not is_mounted(tmp_path)


def unit_command(key: str, point: Path) -> list[str]:
    """A command line of systemd/markfs@.service, as systemd would run it for `point`."""
    for line in (REPO / "systemd" / "markfs@.service").read_text().splitlines():
        if line.startswith(f"{key}="):
            words = shlex.split(line.split("=", 1)[1].replace("%f", str(point)))
            return [MARKFS if w == "/usr/local/bin/markfs" else w for w in words]
    raise AssertionError(f"no {key} in the unit")


class NotifySocket:
    """What systemd listens on for a Type=notify service: datagrams of KEY=VALUE lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def next(self, timeout: float = 30.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        text = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def close(self) -> None:
        self.sock.close()


def test_the_unit_is_ready_once_the_mount_answers_and_stopping_while_uploads_drain(
        tmp_path: Path, data_dir: Path) -> None:
    server = Stoppable("s3", tmp_path)
    notify = NotifySocket(tmp_path / "notify")
    point = tmp_path / "mnt"
    point.mkdir()
    run_markfs(data_dir, "source", "add", "r", server.source.url)
    (data_dir / "markfs.toml").write_text("[mount]\nio_timeout = 2.0\nlist_timeout = 2.0\n")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "MARKFS_DATA_DIR": str(data_dir)}
    log = open(tmp_path / "unit.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(unit_command("ExecStart", point), env=env, stdout=log,
                              stderr=log, stdin=subprocess.DEVNULL)
    try:
        ready = notify.next()
        assert ready["READY"] == "1" and int(ready["MAINPID"]) == daemon.pid
        assert is_mounted(point) and "sources" in os.listdir(point)
        pending_while_down(Mount(data_dir, point), server, "late.bin", b"sent after unmount")
        stop = subprocess.Popen(unit_command("ExecStop", point), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stopping = notify.next()
        assert stopping["STOPPING"] == "1" and "1 pending upload" in stopping["STATUS"]
        assert not is_mounted(point) and daemon.poll() is None  # still sending
        time.sleep(0.5)
        assert stop.poll() is None  # ExecStop waits for the uploads
        server.start()
        assert stop.wait(timeout=60) == 0
        assert daemon.wait(timeout=10) == 0
        server.source.wait_for("late.bin", b"sent after unmount", timeout=1)
    finally:
        force_unmount(point)
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
        notify.close()
        server.close()


def test_a_background_daemon_logs_to_the_data_dir(
        data_dir: Path, backing: Path, tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    run_markfs(data_dir, "mount", str(point))
    run_markfs(data_dir, "umount", str(point))
    text = (data_dir / "logs" / "markfs.log").read_text()
    assert f"mounted {data_dir} on {point}" in text and f"unmounted {point}" in text


def test_the_daemon_log_rotates_and_keeps_as_many_as_configured(tmp_path: Path) -> None:
    import logging

    from markfs.config import DataDir, MountConfig
    from markfs.fs.mount import daemon_logging

    data_dir = DataDir(tmp_path / "d")
    daemon_logging(data_dir, MountConfig(log_max_bytes=2000, log_keep=2), to_stderr=False)
    try:
        for i in range(200):
            logging.getLogger("markfs.test").info("line %d of the daemon's log", i)
    finally:
        logging.basicConfig(force=True)  # the handlers of this test closed
    names = sorted(p.name for p in data_dir.logs.iterdir())
    assert names == ["markfs.log", "markfs.log.1", "markfs.log.2"]
    assert all((data_dir.logs / n).stat().st_size <= 2000 for n in names)
    assert "line 199 of" in (data_dir.logs / "markfs.log").read_text()


def test_version_is_printed() -> None:
    from markfs import __version__

    done = subprocess.run([MARKFS, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"markfs, version {__version__}"


def test_a_mount_point_with_files_is_refused_unless_nonempty(
        data_dir: Path, backing: Path, tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    (point / "mine.txt").write_text("would be hidden")
    done = run_markfs(data_dir, "mount", str(point), check=False)
    assert done.returncode == 1 and "is not empty" in done.stderr and not is_mounted(point)
    try:
        assert mount_as_mount_does(data_dir, point, "nonempty").returncode == 0
        assert is_mounted(point) and "sources" in os.listdir(point)
    finally:
        run_markfs(data_dir, "umount", str(point), check=False)
        force_unmount(point)
    assert (point / "mine.txt").read_text() == "would be hidden"
