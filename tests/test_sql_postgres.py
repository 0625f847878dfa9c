"""PostgreSQL sources and the level-1 scan, against a real PostgreSQL server."""

from __future__ import annotations

import itertools
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
    assert lines["pg/public/customers"] == "table\t500~ rows\t4 columns\t-"
    assert lines['pg/Sales Data/Orders "2024"'].startswith("table\t")
    assert lines["pg/public/rich"].startswith("view\t")


def test_an_unreachable_server_is_a_clear_error(data_dir: Path) -> None:
    from servers import free_port

    done = run_markfs(data_dir, "source", "add", "pg",
                      f"postgresql://postgres@127.0.0.1:{free_port()}/x", check=False)
    assert done.returncode == 1 and "cannot reach PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr
