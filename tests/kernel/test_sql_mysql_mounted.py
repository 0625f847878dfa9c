"""MySQL/MariaDB sources: level-1 scan and managed tables, against a real MariaDB."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import pyarrow.parquet as pq
from conftest import Mount, run_markfs


def test_a_managed_mysql_table_holds_the_source_rows(tmp_path: Path, data_dir: Path,
                                                     mydb: str) -> None:
    schema = mydb.rsplit("/", 1)[1]
    run_markfs(data_dir, "source", "add", "my", mydb)
    run_markfs(data_dir, "manage", f"my/{schema}/customers", f"my/{schema}/Odd `Name` x")
    point = tmp_path / "mnt"
    point.mkdir()
    for mount in Mount(data_dir, point).start().checked():
        folder = mount.path / "tables" / "my" / schema / "customers"
        rows = pq.read_table(folder / "data.parquet").to_pylist()
        assert len(rows) == 200
        assert rows[0] == {"id": 1, "name": "c1 é", "balance": decimal.Decimal("0.25"),
                           "joined": datetime.datetime(2024, 1, 2, 12, 30),
                           "photo": b"\x01\x00", "big": 2**63 + 1}
        assert rows[2]["balance"] is None
        for name in ("data.csv", "data.jsonl", "stats.json"):
            assert (folder / name).stat().st_size == len((folder / name).read_bytes())
        odd = mount.path / "tables" / "my" / schema / "Odd `Name` x"
        assert pq.read_table(odd / "data.parquet").to_pylist() == [{"a b": "v", "C": 7}]


