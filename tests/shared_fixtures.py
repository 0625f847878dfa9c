"""Fixtures tests of more than one layer share: a local source with a read-only one
beside it, two local sources gathered by a view (tests/inprocess and tests/processes);
the shop databases on PostgreSQL, MariaDB and SQLite (tests/processes and
tests/kernel). Loaded by tests/conftest.py as a plugin."""

from __future__ import annotations

import datetime
import decimal
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import add_source_now, in_process
from harness import InProcess
from servers import MariaServer, PostgresServer

from markfs.namespace.curation import definitions
from markfs.namespace.files.sources import SourceSet, add_source


@pytest.fixture
def local(data_dir: Path, backing: Path) -> Iterator[InProcess]:
    (backing / "a.txt").write_bytes(b"alpha")
    (backing / "sub").mkdir()
    add_source_now(data_dir, "ro", f"file://{backing}/sub", read_only=True)
    inprocess = InProcess(data_dir)
    yield inprocess
    inprocess.close()


@pytest.fixture
def two_sources(data_dir: Path, tmp_path: Path) -> Path:
    """`lake` (a folder tree) and `reports` (flat), as local sources."""
    lake, reports = tmp_path / "lake", tmp_path / "reports"
    for path, data in {"finance/2024/q1/a.csv": b"lake a", "finance/2024/q2/b.csv": b"lake b",
                       "finance/2023/old.csv": b"old", "finance/2024/readme.txt": b"r",
                       "other.txt": b"o"}.items():
        (lake / path).parent.mkdir(parents=True, exist_ok=True)
        (lake / path).write_bytes(data)
    reports.mkdir()
    for name in ("finance_q1.csv", "finance_q2.csv", "summary.txt", "a.csv"):
        (reports / name).write_bytes(f"report {name}".encode())
    in_process(lambda tree: [add_source(tree, name, f"file://{tmp_path / name}", False)
                             for name in ("lake", "reports")], data_dir)
    return tmp_path


@pytest.fixture
def finance(data_dir: Path, two_sources: Path) -> Iterator[InProcess]:
    in_process(lambda tree: definitions.add_view(
        tree, SourceSet(tree), "finance", ["lake:finance/2024/**", "reports:finance_*.csv"],
        landing="reports"), data_dir)
    inprocess = InProcess(data_dir)
    yield inprocess
    inprocess.close()


_dbs = itertools.count(1)  # one count for the session: each database is new
ODD_NAMES = ['Mixed Case', 'with "quotes"', "données", "select"]  # SQLite tables


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


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "email TEXT)")
    conn.executemany("INSERT INTO customers (name, email) VALUES (?, ?)",
                     [(f"c{i}", None if i % 3 else f"c{i}@x") for i in range(250)])
    conn.execute("CREATE TABLE empty_one (x REAL)")
    conn.execute("CREATE VIEW big_customers AS SELECT * FROM customers WHERE id > 100")
    for name in ODD_NAMES:
        quoted = '"' + name.replace('"', '""') + '"'
        conn.execute(f'CREATE TABLE {quoted} ("a b" TEXT, "C" INTEGER)')
        conn.execute(f"INSERT INTO {quoted} VALUES ('x', 1)")
    conn.close()
    return path
