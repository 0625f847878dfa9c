"""Catalogs as older versions of markfs left them, for the migrations' tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markfs.config import DataDir


def catalog_of_schema(version: int, tmp_path: Path) -> tuple[Path, Any]:
    """A data directory whose catalog is at an older schema version (for rows to be put
    in before `Tree.open` migrates it); its open connection."""
    import apsw

    from markfs.catalog.schema import MIGRATIONS

    data_dir = tmp_path / "old-data"
    data_dir.mkdir()
    conn = apsw.Connection(str(DataDir(data_dir).catalog))
    conn.execute("PRAGMA foreign_keys = OFF")
    for number, sql in enumerate(MIGRATIONS[:version], start=1):
        with conn:
            conn.execute(sql)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (number,))
    return data_dir, conn
