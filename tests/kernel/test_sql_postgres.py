"""PostgreSQL sources and the level-1 scan, against a real PostgreSQL server."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_markfs
from servers import PostgresServer

_dbs = itertools.count(1)


@pytest.fixture
def pgdb(postgres: PostgresServer) -> str:
    name = f"shop{next(_dbs)}"
    admin: Any = postgres.connect()
    admin.execute(f"CREATE DATABASE {name}")
    admin.close()
    conn: Any = postgres.connect(name)
    conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, "
                 "balance numeric(12,2), joined timestamptz)")
    conn.execute("COMMENT ON COLUMN customers.balance IS 'in euros'")
    conn.execute("INSERT INTO customers (name, balance) SELECT 'c' || g, g * 1.5 "
                 "FROM generate_series(1, 500) g")
    conn.execute('CREATE SCHEMA "Sales Data"')
    conn.execute('CREATE TABLE "Sales Data"."Orders ""2024""" (id int, "Total €" float8)')
    conn.execute("CREATE VIEW rich AS SELECT * FROM customers WHERE balance > 100")
    conn.execute("ANALYZE")
    conn.close()
    return postgres.url(name)


def test_postgres_source_scans_schemas_tables_and_columns(data_dir: Path, pgdb: str) -> None:
    run_markfs(data_dir, "source", "add", "pg", pgdb)
    assert "PostgreSQL" in run_markfs(data_dir, "source", "test", "pg").stdout
    assert "pg: 3 tables (3 read" in run_markfs(data_dir, "scan", "pg").stdout
    lines = dict(line.split("\t", 1) for line in
                 run_markfs(data_dir, "tables", "pg").stdout.splitlines())
    assert lines["pg/public/customers"].startswith("table\t500~ rows\t4 columns\t-\t")
    assert lines["pg/public/customers"].endswith("KiB")
    assert lines['pg/Sales Data/Orders "2024"'].startswith("table\t")
    assert lines["pg/public/rich"].startswith("view\t")


def test_an_unreachable_server_is_a_clear_error(data_dir: Path) -> None:
    from servers import free_port

    done = run_markfs(data_dir, "source", "add", "pg",
                      f"postgresql://postgres@127.0.0.1:{free_port()}/x", check=False)
    assert done.returncode == 1 and "cannot reach PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


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


def test_a_changed_postgres_table_is_rendered_again_by_refresh(
        data_dir: Path, pgdb: str, postgres: PostgresServer) -> None:
    run_markfs(data_dir, "source", "add", "pg", pgdb)
    run_markfs(data_dir, "manage", "pg/public/customers")
    assert "up to date" in run_markfs(data_dir, "refresh").stdout
    conn: Any = postgres.connect(pgdb.rsplit("/", 1)[1])
    conn.execute("INSERT INTO customers (name) VALUES ('late')")
    conn.close()
    # PostgreSQL's statistics (part of the change token) reach the catalog views
    # asynchronously, within about a second: refresh until the change is seen.
    for _ in range(50):
        out = run_markfs(data_dir, "refresh").stdout
        if "501 rows" in out:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the change was never noticed")


def refreshed_once_changed(data_dir: Path, fragment: str) -> None:
    """PostgreSQL's statistics (part of the change token) reach the catalog views
    asynchronously, within about a second: refresh until the change is seen."""
    for _ in range(50):
        if fragment in run_markfs(data_dir, "refresh").stdout:
            return
        time.sleep(0.2)
    raise AssertionError("the change was never noticed")


@pytest.mark.parametrize("change", [
    ["UPDATE customers SET name = 'x' || substr(name, 2) WHERE id = 7"],
    ["DELETE FROM customers WHERE id = 7",
     "INSERT INTO customers (id, name) VALUES (7, 'someone else')"],
], ids=["update-in-place", "delete-and-insert"])
def test_a_change_that_keeps_the_row_count_is_noticed(
        data_dir: Path, pgdb: str, postgres: PostgresServer, change: list[str]) -> None:
    run_markfs(data_dir, "source", "add", "pg", pgdb)
    run_markfs(data_dir, "manage", "pg/public/customers")
    conn: Any = postgres.connect(pgdb.rsplit("/", 1)[1])
    for statement in change:
        conn.execute(statement)
    conn.close()
    refreshed_once_changed(data_dir, "500 rows")
