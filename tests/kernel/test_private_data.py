"""The data directory is private whatever the umask, and nothing in the caller's
directory can break a background mount."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import force_unmount, is_mounted, run_markfs
from remote_helpers import mount_remote, s3_source
from servers import S3Server


def test_data_directory_and_its_files_are_private_whatever_the_umask(
        tmp_path: Path, s3: S3Server) -> None:
    old = os.umask(0o022)
    try:
        data_dir = tmp_path / "data"
        run_markfs(data_dir, "init")
        source = s3_source(s3, "private-modes")
        source.put("a.bin", b"x" * 100_000)
        mount = mount_remote(tmp_path, data_dir, source)
        try:
            files = mount.path / "sources" / "r"
            assert (files / "a.bin").read_bytes() == b"x" * 100_000  # cached blobs
            with open(files / "b.bin", "wb") as f:  # staged copy, journal, upload
                f.write(b"y" * 1000)
                os.fsync(f.fileno())
        finally:
            mount.stop()
    finally:
        os.umask(old)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    loose = [f"{p} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in data_dir.rglob("*")
             if not p.name.startswith("test-mount-")  # the test's own log
             and stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert not loose, loose


def test_background_mount_starts_from_a_directory_holding_a_markfs_folder(
        tmp_path: Path, data_dir: Path, backing: Path) -> None:
    shadow = tmp_path / "work" / "markfs"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('the wrong markfs')\n")
    point = tmp_path / "mnt"
    point.mkdir()
    script = Path(sys.executable).parent / "markfs"  # the installed entry point, as a user
    try:
        done = subprocess.run([str(script), "--data-dir", str(data_dir), "mount", str(point)],
                              cwd=shadow.parent, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert is_mounted(point)
    finally:
        run_markfs(data_dir, "umount", str(point), check=False)
        force_unmount(point)


def test_a_failed_mount_reports_the_last_line_of_its_log(tmp_path: Path) -> None:
    from markfs.fs.daemon import last_error

    log = tmp_path / "mount.log"
    log.write_text("old run\nTraceback (most recent call last):\n  File x\n"
                   "ModuleNotFoundError: No module named 'pyfuse3'\n\n")
    assert last_error(log, len("old run\n")) == (
        "mount failed: ModuleNotFoundError: No module named 'pyfuse3' (see " f"{log})")
