"""MySQL/MariaDB sources: level-1 scan and managed tables, against a real MariaDB."""

from __future__ import annotations

import datetime
import decimal
import itertools
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import Mount, run_markfs
from servers import MariaServer, free_port

_dbs = itertools.count(1)


@pytest.fixture
def mydb(mariadb: MariaServer) -> str:
    name = f"shop{next(_dbs)}"
    admin: Any = mariadb.connect()
    with admin.cursor() as c:
        c.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        c.execute(f"USE {name}")
        c.execute("CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, "
                  "name VARCHAR(50) NOT NULL COMMENT 'full name', balance DECIMAL(12,2), "
                  "joined DATETIME, photo BLOB, big BIGINT UNSIGNED)")
        c.executemany("INSERT INTO customers (name, balance, joined, photo, big) "
                      "VALUES (%s, %s, %s, %s, %s)",
                      [(f"c{i} é", decimal.Decimal(i) / 4 if i % 3 else None,
                        datetime.datetime(2024, 1, 1 + i % 28, 12, 30), bytes([i % 256, 0]),
                        2**63 + i) for i in range(1, 201)])
        c.execute("CREATE TABLE `Odd ``Name`` x` (`a b` TEXT, `C` INT)")
        c.execute("INSERT INTO `Odd ``Name`` x` VALUES ('v', 7)")
        c.execute("CREATE VIEW rich AS SELECT * FROM customers WHERE balance > 10")
    admin.close()
    return mariadb.url(name)


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
