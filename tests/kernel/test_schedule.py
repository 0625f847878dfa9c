"""Scheduled scans while mounted: the cron expression in markfs.toml's [scan] section."""

from __future__ import annotations

import time
from pathlib import Path

import apsw
from conftest import Mount, run_markfs


def make_db(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()


def test_a_scheduled_scan_refreshes_a_changed_managed_table(tmp_path: Path,
                                                           data_dir: Path) -> None:
    db = tmp_path / "s.db"
    make_db(db)
    run_markfs(data_dir, "source", "add", "s", f"sqlite://{db}")
    run_markfs(data_dir, "manage", "s/main/t")
    (data_dir / "markfs.toml").write_text('[scan]\nschedule = "* * * * * */2"\n')
    point = tmp_path / "mnt"
    point.mkdir()
    for mount in Mount(data_dir, point).start().checked():
        conn = apsw.Connection(str(db))
        conn.execute("INSERT INTO t VALUES (2)")
        conn.close()
        csv = mount.path / "tables" / "s" / "main" / "t" / "data.csv"
        deadline = time.monotonic() + 30
        while csv.read_text() != '"x"\n1\n2\n':
            assert time.monotonic() < deadline, "the schedule never refreshed the table"
            time.sleep(0.3)
        assert "scan s: done" in run_markfs(data_dir, "status").stdout


def test_an_invalid_schedule_is_refused_at_mount(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "markfs.toml").write_text('[scan]\nschedule = "every day"\n')
    point = tmp_path / "mnt"
    point.mkdir()
    done = run_markfs(data_dir, "mount", str(point), check=False)
    assert done.returncode == 1 and "not a cron expression" in done.stderr
    assert "Traceback" not in done.stderr


def test_scheduled_backups_go_to_the_backups_folder_and_keep_the_newest(
        tmp_path: Path, data_dir: Path, backing: Path) -> None:
    (data_dir / "markfs.toml").write_text(
        '[scan]\nschedule = ""\n[backup]\nschedule = "* * * * * */2"\nkeep = 2\n')
    point = tmp_path / "mnt"
    point.mkdir()
    seen: set[str] = set()
    now: set[str] = set()
    for _mount in Mount(data_dir, point).start().checked():
        deadline = time.monotonic() + 40
        while len(seen) < 3 or len(now) != 2:  # three taken: the first must have gone
            assert time.monotonic() < deadline, f"scheduled backups seen: {sorted(seen)}"
            folder = data_dir / "backups"
            now = {p.name for p in folder.glob("markfs-backup-*.tar")} if folder.is_dir() else set()
            assert len(now) <= 3  # 2 kept, and a new one until the oldest is removed
            seen |= now
            time.sleep(0.2)
    assert min(seen) not in now  # the oldest went


def test_an_invalid_backup_schedule_is_refused_at_mount(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "markfs.toml").write_text('[backup]\nschedule = "hourly"\n')
    point = tmp_path / "mnt"
    point.mkdir()
    done = run_markfs(data_dir, "mount", str(point), check=False)
    assert done.returncode == 1 and "backup.schedule is not a cron expression" in done.stderr
