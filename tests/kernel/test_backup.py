"""`markfs backup` and `markfs restore` (issue 12, part 5): a consistent copy of the catalog
taken while mounted and written to, restored into a fresh data directory with the same
inode numbers, a clean fsck and the backup's pending uploads resumed; bad input is one
line and changes nothing."""

from __future__ import annotations

import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, in_process, run_markfs
from remote_helpers import Stoppable, mount_remote, pending_while_down

from markfs.config import DataDir


def inodes(root: Path) -> dict[str, int]:
    """Every path below a mounted folder with its inode number."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = path.lstat().st_ino
    return found


def write_steadily(folder: Path, stop: threading.Event) -> None:
    """Files created and rewritten until told to stop (writes during a backup)."""
    count = 0
    while not stop.is_set():
        (folder / f"busy-{count % 20}.txt").write_bytes(os.urandom(2000))
        count += 1


def test_a_backup_taken_while_writing_restores_with_the_same_inodes(
        mount: Mount, src: Path, tmp_path: Path) -> None:
    for i in range(30):
        (src / f"d{i % 3}").mkdir(exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.txt").write_text(f"file {i}")
    stop = threading.Event()
    writer = threading.Thread(target=write_steadily, args=(src, stop))
    writer.start()
    try:
        done = run_markfs(mount.data_dir, "backup", str(tmp_path / "b.tar"))
    finally:
        stop.set()
        writer.join()
    assert "backup written" in done.stdout
    before = {p: ino for p, ino in inodes(mount.path / "sources").items() if "busy" not in p}
    fresh = tmp_path / "fresh"
    run_markfs(fresh, "restore", str(tmp_path / "b.tar"))
    point = tmp_path / "again"
    point.mkdir()
    again = Mount(fresh, point).start()
    try:
        after = inodes(point / "sources")
    finally:
        again.stop()
    assert {p: after.get(p) for p in before} == before
    again.assert_fsck_clean()


@pytest.fixture
def s3_down(tmp_path: Path) -> Iterator[Stoppable]:
    server = Stoppable("s3", tmp_path)
    try:
        yield server
    finally:
        server.close()


def test_pending_uploads_in_a_backup_resume_after_a_restore(
        s3_down: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    config = "io_timeout = 2.0\nlist_timeout = 2.0\ndrain_timeout = 0.5\n"
    m = mount_remote(tmp_path, data_dir, s3_down.source, config)
    payload = os.urandom(300_000)
    try:
        pending_while_down(m, s3_down, "waiting.bin", payload)
        done = run_markfs(data_dir, "backup", str(tmp_path / "b.tar"))
    finally:
        m.stop()
    assert "1 pending upload(s)" in done.stdout
    fresh = tmp_path / "fresh"
    restored = run_markfs(fresh, "restore", str(tmp_path / "b.tar")).stdout
    assert "1 pending upload(s) resume" in restored
    s3_down.start()
    point = tmp_path / "again"
    point.mkdir()
    again = Mount(fresh, point).start()
    try:
        s3_down.source.wait_for("waiting.bin", payload)
    finally:
        again.stop()


def test_a_restore_sets_the_previous_catalog_aside(data_dir: Path, tmp_path: Path) -> None:
    run_markfs(data_dir, "source", "add", "old", f"file://{tmp_path}")
    run_markfs(data_dir, "backup", str(tmp_path / "b.tar"))
    run_markfs(data_dir, "source", "add", "newer", f"file://{tmp_path}")
    out = run_markfs(data_dir, "restore", str(tmp_path / "b.tar")).stdout
    assert "newer" not in run_markfs(data_dir, "source", "list").stdout
    aside = [p for p in data_dir.iterdir() if p.name.startswith("before-restore-")]
    assert len(aside) == 1 and str(aside[0]) in out
    assert (aside[0] / "catalog.db").is_file()


def test_a_backup_without_a_file_goes_to_the_backups_folder_keeping_the_newest(
        data_dir: Path) -> None:
    (data_dir / "markfs.toml").write_text("[backup]\nkeep = 2\n")
    written = []
    for _ in range(3):
        out = run_markfs(data_dir, "backup").stdout
        written.append(Path(out.split("backup written: ")[1].split(" (")[0]))
    assert sorted((data_dir / "backups").iterdir()) == written[1:]


def test_restore_refuses_a_mounted_data_directory(mount: Mount, tmp_path: Path) -> None:
    run_markfs(mount.data_dir, "backup", str(tmp_path / "b.tar"))
    done = run_markfs(mount.data_dir, "restore", str(tmp_path / "b.tar"), check=False)
    assert done.returncode == 1 and "is mounted on" in done.stderr
    assert "Traceback" not in done.stderr
    assert not [p for p in mount.data_dir.iterdir() if p.name.startswith("before-restore-")]


@pytest.mark.parametrize("content", [b"just some text\n", b""])
def test_restore_refuses_a_file_that_is_not_a_backup(
        data_dir: Path, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    catalog_before = (data_dir / "catalog.db").read_bytes()
    done = run_markfs(data_dir, "restore", str(bad), check=False)
    assert done.returncode == 1 and "is not a markfs backup" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (data_dir / "catalog.db").read_bytes() == catalog_before


def test_restore_refuses_a_backup_whose_catalog_is_not_a_catalog(
        data_dir: Path, tmp_path: Path) -> None:
    run_markfs(data_dir, "backup", str(tmp_path / "b.tar"))
    forged = tmp_path / "forged.tar"
    with tarfile.open(tmp_path / "b.tar") as src, tarfile.open(forged, "w") as dst:
        for member in src.getmembers():
            if member.name == "catalog.db":
                fake = tmp_path / "catalog.db"
                fake.write_bytes(b"SQLite format 3\0" + os.urandom(4000))
                dst.add(fake, "catalog.db")
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    done = run_markfs(data_dir, "restore", str(forged), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "catalog" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not [p for p in data_dir.iterdir() if p.name.startswith("before-restore-")]


def test_a_backup_refuses_to_replace_an_existing_file(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "b.tar").write_text("mine")
    done = run_markfs(data_dir, "backup", str(tmp_path / "b.tar"), check=False)
    assert done.returncode == 1 and "exists" in done.stderr
    assert (tmp_path / "b.tar").read_text() == "mine"


def test_restore_into_a_fresh_data_dir_gives_a_clean_fsck(data_dir: Path, tmp_path: Path) -> None:
    in_process(lambda tree: None, data_dir)
    run_markfs(data_dir, "backup", str(tmp_path / "b.tar"))
    fresh = tmp_path / "fresh"
    run_markfs(fresh, "restore", str(tmp_path / "b.tar"))
    assert DataDir(fresh).exists()
    assert run_markfs(fresh, "fsck").returncode == 0
