"""Damaged files in the data directory: LMDB caches are rebuilt, never mapped while
damaged; a damaged catalog is refused with one line and salvaged by fsck --repair."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from conftest import force_unmount, is_mounted, run_markfs

FILES = 300


@pytest.fixture
def used_data_dir(tmp_path: Path, data_dir: Path, backing: Path) -> Iterator[Path]:
    """A data directory whose catalog and hot cache hold a listed source."""
    for i in range(FILES):
        (backing / f"file-{i:04d}.txt").write_text(str(i))
    point = tmp_path / "mnt"
    point.mkdir()
    run_markfs(data_dir, "mount", str(point))
    try:
        assert len(os.listdir(point / "sources" / "loc")) == FILES
    finally:
        run_markfs(data_dir, "umount", str(point))
    conn = apsw.Connection(str(data_dir / "catalog.db"))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    yield data_dir
    force_unmount(point)


def mounts_and_lists(data_dir: Path, point: Path) -> None:
    done = run_markfs(data_dir, "mount", str(point), check=False)
    try:
        assert done.returncode == 0, done.stderr
        assert len(os.listdir(point / "sources" / "loc")) == FILES
    finally:
        if is_mounted(point):
            run_markfs(data_dir, "umount", str(point))


def overwrite_pages(path: Path, first: int, page_size: int = 4096) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(first * page_size)
        f.write(b"\xa5" * (size - first * page_size))


def test_fsck_of_a_truncated_hot_cache_rebuilds_it(used_data_dir: Path, tmp_path: Path) -> None:
    data = used_data_dir / "hot.lmdb" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    done = run_markfs(used_data_dir, "fsck", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "repaired: hot cache:" in done.stdout and "truncated" in done.stdout
    assert run_markfs(used_data_dir, "fsck").stdout.strip() == "clean"
    mounts_and_lists(used_data_dir, tmp_path / "mnt")


def test_mount_with_overwritten_hot_cache_pages_rebuilds_it(
        used_data_dir: Path, tmp_path: Path) -> None:
    overwrite_pages(used_data_dir / "hot.lmdb" / "data.mdb", first=2)
    mounts_and_lists(used_data_dir, tmp_path / "mnt")
    assert run_markfs(used_data_dir, "fsck").stdout.strip() == "clean"


def test_a_damaged_content_index_starts_the_content_cache_afresh(
        used_data_dir: Path) -> None:
    index = used_data_dir / "cache" / "index.lmdb" / "data.mdb"
    os.truncate(index, 5000)
    done = run_markfs(used_data_dir, "fsck", check=False)
    assert done.returncode == 0 and "repaired: content cache:" in done.stdout, done.stdout


def damage_catalog(data_dir: Path) -> None:
    conn = apsw.Connection(str(data_dir / "catalog.db"))
    pages = [int(r[0]) for r in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'nodes' AND pagetype = 'leaf'")]
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])  # type: ignore[index]
    conn.close()
    assert len(pages) > 2
    with open(data_dir / "catalog.db", "r+b") as f:
        f.seek((pages[len(pages) // 2] - 1) * page_size)
        f.write(os.urandom(page_size))


def assert_one_line_error(done: object, fragment: str) -> None:
    err = done.stderr  # type: ignore[attr-defined]
    assert done.returncode == 1, err  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and "Traceback" not in err and fragment in err, err


def test_a_damaged_catalog_is_refused_with_one_line(used_data_dir: Path, tmp_path: Path) -> None:
    damage_catalog(used_data_dir)
    assert_one_line_error(run_markfs(used_data_dir, "fsck", check=False), "fsck --repair")
    point = tmp_path / "mnt"
    try:
        assert_one_line_error(run_markfs(used_data_dir, "mount", str(point), check=False),
                              "is damaged")
        assert not is_mounted(point)
    finally:
        force_unmount(point)


def test_fsck_repair_salvages_a_damaged_catalog(used_data_dir: Path, tmp_path: Path) -> None:
    damage_catalog(used_data_dir)
    done = run_markfs(used_data_dir, "fsck", "--repair")
    assert "salvaged the catalog" in done.stdout, done.stdout
    assert "nodes:" in done.stdout  # what was lost is said
    assert list(used_data_dir.glob("catalog.db.damaged-*"))
    assert run_markfs(used_data_dir, "fsck").stdout.strip() == "clean"
    mounts_and_lists(used_data_dir, tmp_path / "mnt")
