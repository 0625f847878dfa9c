"""PostgreSQL sources and the level-1 scan, against a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

from conftest import run_markfs


def test_a_managed_postgres_table_holds_the_source_rows(
        tmp_path: Path, data_dir: Path, pgdb: str) -> None:
    import decimal

    import pyarrow.parquet as pq
    from conftest import Mount

    run_markfs(data_dir, "source", "add", "pg", pgdb)
    run_markfs(data_dir, "manage", "pg/public/customers", 'pg/Sales Data/Orders "2024"')
    point = tmp_path / "mnt"
    point.mkdir()
    for mount in Mount(data_dir, point).start().checked():
        folder = mount.path / "tables" / "pg" / "public" / "customers"
        table = pq.read_table(folder / "data.parquet")
        rows = table.to_pylist()
        assert len(rows) == 500 and rows[0]["name"] == "c1"
        assert decimal.Decimal(str(rows[1]["balance"])) == decimal.Decimal("3.00")
        assert rows[0]["joined"] is None
        assert (folder / "data.csv").stat().st_size == len((folder / "data.csv").read_bytes())
        odd = mount.path / "tables" / "pg" / "Sales Data" / 'Orders "2024"'
        assert pq.read_table(odd / "data.parquet").column_names == ["id", "Total €"]


