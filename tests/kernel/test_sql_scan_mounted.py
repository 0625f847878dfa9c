"""SQLite sources and the level-1 scan: tables, row counts and columns in the catalog."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Mount, run_markfs


def test_sql_sources_have_no_folder_under_sources(mount: Mount, db: Path) -> None:
    run_markfs(mount.data_dir, "source", "add", "shop", f"sqlite://{db}")
    mount.remount()
    assert os.listdir(mount.path / "sources") == ["loc"]


