"""MySQL/MariaDB sources: level-1 scan and managed tables, against a real MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_markfs
from servers import MariaServer, free_port


def test_mysql_source_scans_tables_views_and_columns(data_dir: Path, mydb: str) -> None:
    run_markfs(data_dir, "source", "add", "my", mydb)
    assert "MySQL/MariaDB" in run_markfs(data_dir, "source", "test", "my").stdout
    assert "my: 3 tables (3 read" in run_markfs(data_dir, "scan", "my").stdout
    schema = mydb.rsplit("/", 1)[1]
    lines = dict(line.split("\t", 1) for line in
                 run_markfs(data_dir, "tables", "my").stdout.splitlines())
    assert lines[f"my/{schema}/customers"].startswith("table\t")
    assert "6 columns" in lines[f"my/{schema}/customers"]
    assert lines[f"my/{schema}/customers"].endswith("KiB")  # data + index length
    assert lines[f"my/{schema}/rich"].startswith("view\t")
    assert f"my/{schema}/Odd `Name` x" in lines


def test_a_rescan_of_an_unchanged_mysql_source_reads_nothing(data_dir: Path,
                                                            mydb: str) -> None:
    run_markfs(data_dir, "source", "add", "my", mydb)
    run_markfs(data_dir, "scan", "my")
    assert "(0 read, 3 unchanged" in run_markfs(data_dir, "scan", "my").stdout


def test_an_unreachable_mysql_server_is_a_clear_error(data_dir: Path) -> None:
    done = run_markfs(data_dir, "source", "add", "my",
                      f"mysql://root@127.0.0.1:{free_port()}/x", check=False)
    assert done.returncode == 1 and "cannot reach MySQL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("change", [
    ["UPDATE customers SET name = 'renamed' WHERE id = 7"],
    ["DELETE FROM customers WHERE id = 7",
     "INSERT INTO customers (id, name) VALUES (7, 'someone else')"],
], ids=["update-in-place", "delete-and-insert"])
def test_a_change_that_keeps_the_row_count_is_noticed(
        data_dir: Path, mydb: str, mariadb: MariaServer, change: list[str]) -> None:
    run_markfs(data_dir, "source", "add", "my", mydb)
    run_markfs(data_dir, "scan", "my")
    conn: Any = mariadb.connect(mydb.rsplit("/", 1)[1])
    with conn.cursor() as c:
        for statement in change:
            c.execute(statement)
    conn.close()
    assert "(2 read, 1 unchanged" in run_markfs(data_dir, "scan", "my").stdout  # and its view
