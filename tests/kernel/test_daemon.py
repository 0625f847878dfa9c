"""Background mounts, `markfs umount`, `markfs status` and the demo."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import force_unmount, is_mounted, run_markfs


@pytest.fixture
def point(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    force_unmount(path)


def test_mount_in_background_then_umount(data_dir: Path, backing: Path, point: Path) -> None:
    (backing / "f").write_text("x")
    out = run_markfs(data_dir, "mount", str(point)).stdout
    assert "mounted" in out and is_mounted(point)
    assert (point / "sources" / "loc" / "f").read_text() == "x"
    status = run_markfs(data_dir, "status").stdout
    assert "mounts: 1" in status and str(point) in status
    run_markfs(data_dir, "umount", str(point))
    assert not is_mounted(point)
    assert "mounts: 0" in run_markfs(data_dir, "status").stdout
    run_markfs(data_dir, "fsck")


def test_mounting_twice_on_one_point_is_a_user_error(
        data_dir: Path, backing: Path, point: Path) -> None:
    run_markfs(data_dir, "mount", str(point))
    done = run_markfs(data_dir, "mount", str(point), check=False)
    assert done.returncode == 1 and "mounted on" in done.stderr
    run_markfs(data_dir, "umount", str(point))


def test_umount_of_a_busy_mount_says_so(data_dir: Path, backing: Path, point: Path) -> None:
    run_markfs(data_dir, "mount", str(point))
    holder = subprocess.Popen(["sleep", "30"], cwd=point / "sources" / "loc")
    try:
        done = run_markfs(data_dir, "umount", str(point), check=False)
        assert done.returncode == 1 and "cannot unmount" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        holder.kill()
        holder.wait()
    run_markfs(data_dir, "umount", str(point))


def test_demo_mounts_sample_files(tmp_path: Path, point: Path) -> None:
    data = tmp_path / "demo-data"
    out = run_markfs(data, "demo", str(point)).stdout
    assert "ls -lR" in out and "umount" in out
    listing = subprocess.run(["ls", "-lR", str(point)], capture_output=True, text=True,
                             check=True).stdout
    assert "revenue.csv" in listing and "events.jsonl" in listing
    status = json.loads((point / ".markfs" / "status.json").read_text())
    assert [s["name"] for s in status["sources"]] == ["demo", "shop"]
    orders = point / "tables" / "shop" / "main" / "orders"
    assert pq.read_metadata(orders / "data.parquet").num_rows == 1_000_000
    assert sorted(os.listdir(point / "tables" / "shop" / "main")) == [
        "customers", "orders", "products"]
    assert "views/finance" in out and "tags" in out and "categories" in out
    assert sorted(os.listdir(point / "views" / "finance")) == ["2023", "2024", "orders"]
    assert (point / "views/finance/2024/revenue.csv").read_bytes() == (
        point / "sources/demo/finance/2024/revenue.csv").read_bytes()
    assert sorted(os.listdir(point / "tags")) == ["finance", "logs", "q1"]
    assert sorted(os.listdir(point / "tags" / "finance")) == ["orders", "revenue.csv"]
    assert sorted(os.listdir(point / "categories" / "data" / "sales")) == [
        "customers", "orders"]
    run_markfs(data, "demo", str(point))  # again: already mounted, still fine
    run_markfs(data, "umount", str(point))
    assert not is_mounted(point)


def test_foreground_mount_stops_on_sigterm(data_dir: Path, backing: Path, point: Path) -> None:
    from conftest import Mount

    m = Mount(data_dir, point).start()
    assert m.proc is not None
    m.proc.terminate()
    assert m.proc.wait(timeout=20) == 0
    assert not is_mounted(point)
    assert os.listdir(point) == []


def read_ahead_kb(point: Path) -> int:
    device = os.stat(point).st_dev
    bdi = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
    return int(bdi.read_text())


def test_read_ahead_kb_sets_the_kernels_read_ahead_of_the_mount(
        data_dir: Path, backing: Path, point: Path) -> None:
    """With `read_ahead_kb = 4096` the kernel asks a sequential reader's data in pieces
    of 1 MiB instead of 256 KiB (the kernel would lower it again after INIT)."""
    (data_dir / "markfs.toml").write_text("[mount]\nread_ahead_kb = 4096\n")
    run_markfs(data_dir, "mount", str(point))
    try:
        assert read_ahead_kb(point) == 4096
    finally:
        run_markfs(data_dir, "umount", str(point))
