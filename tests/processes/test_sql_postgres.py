"""PostgreSQL sources and the level-1 scan, against a real PostgreSQL server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_markfs
from servers import PostgresServer


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
