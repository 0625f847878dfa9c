"""SQLite sources and the level-1 scan: tables, row counts and columns in the catalog."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
from conftest import run_markfs
from shared_fixtures import ODD_NAMES


def tables_of(data_dir: Path) -> dict[str, list[str]]:
    out = run_markfs(data_dir, "tables").stdout.splitlines()
    return {line.split("\t")[0]: line.split("\t")[1:-1] for line in out}  # without the size


def test_sqlite_source_is_added_and_tested(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    assert "shop\tsqlite://" in run_markfs(data_dir, "source", "list").stdout
    assert "SQLite database, 7 tables and views" in run_markfs(
        data_dir, "source", "test", "shop").stdout


def test_a_file_that_is_not_a_database_is_refused(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    done = run_markfs(data_dir, "source", "add", "bad", f"sqlite://{bad}", check=False)
    assert done.returncode == 1 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr


def test_scan_records_tables_rows_and_columns(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    out = run_markfs(data_dir, "scan", "shop").stdout
    assert "shop: 7 tables (7 read, 0 unchanged, 0 deprecated)" in out
    tables = tables_of(data_dir)
    assert tables["shop/main/customers"] == ["table", "250 rows", "3 columns", "-"]
    assert tables["shop/main/empty_one"] == ["table", "0 rows", "1 columns", "-"]
    assert tables["shop/main/big_customers"][:2] == ["view", "150 rows"]
    sizes = {line.split("\t")[0]: line.rsplit("\t", 1)[1]
             for line in run_markfs(data_dir, "tables").stdout.splitlines()}
    assert sizes["shop/main/customers"].endswith("KiB")  # pages of the table (dbstat)
    for name in ODD_NAMES:
        assert tables[f"shop/main/{name}"] == ["table", "1 rows", "2 columns", "-"]


def test_a_second_scan_reads_only_what_changed(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan", "shop")
    assert "(0 read, 7 unchanged" in run_markfs(data_dir, "scan", "shop").stdout
    conn = apsw.Connection(str(db))
    conn.execute("INSERT INTO customers (name) VALUES ('new')")
    conn.close()
    out = run_markfs(data_dir, "scan", "shop").stdout
    assert "(2 read, 5 unchanged" in out  # the table and the view over it
    assert tables_of(data_dir)["shop/main/customers"][1] == "251 rows"


def test_a_dropped_table_is_deprecated_not_forgotten(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan")
    conn = apsw.Connection(str(db))
    conn.execute("DROP TABLE empty_one")
    conn.close()
    assert "1 deprecated" in run_markfs(data_dir, "scan", "shop").stdout
    assert tables_of(data_dir)["shop/main/empty_one"][-1] == "deprecated"


def test_a_vanished_database_fails_clearly_and_keeps_the_catalog(
        data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan")
    before = tables_of(data_dir)
    os.unlink(db)
    done = run_markfs(data_dir, "scan", "shop", check=False)
    assert done.returncode == 1 and "no such SQLite database" in done.stderr
    assert tables_of(data_dir) == before
    run_markfs(data_dir, "fsck")


def test_deep_scan_records_column_statistics(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    assert "statistics of 7 tables computed" in run_markfs(
        data_dir, "scan", "--deep").stdout
    out = run_markfs(data_dir, "tables", "shop/main/customers").stdout.splitlines()
    assert out[0] == "shop/main/customers\ttable\t250 rows"
    assert out[1] == "  id\tINTEGER PK\tnulls=0 distinct=250 min=1 max=250"
    assert out[3].startswith(f"  email\tTEXT\tnulls={250 - 84} distinct=84 min=c0@x")


def test_a_second_deep_scan_reads_only_changed_tables(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan", "--deep")
    conn = apsw.Connection(str(db))
    conn.execute("INSERT INTO customers (name) VALUES ('late')")
    conn.close()
    out = run_markfs(data_dir, "scan", "--deep").stdout
    assert "statistics of 2 tables computed, 5 unchanged" in out  # the table and its view


def test_removing_the_source_removes_its_tables(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan")
    run_markfs(data_dir, "source", "remove", "shop")
    assert run_markfs(data_dir, "tables").stdout == ""


def test_an_update_in_place_is_noticed_by_the_next_scan(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan", "shop")
    conn = apsw.Connection(str(db))
    conn.execute("UPDATE customers SET name = 'd7' WHERE name = 'c7'")  # same size, same rows
    conn.close()
    assert "(2 read, 5 unchanged" in run_markfs(data_dir, "scan", "shop").stdout


def test_delete_and_insert_of_as_many_rows_is_noticed(data_dir: Path, db: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan", "shop")
    conn = apsw.Connection(str(db))
    with conn:
        conn.execute("DELETE FROM customers WHERE id = 5")
        conn.execute("INSERT INTO customers (id, name) VALUES (5, 'someone else')")
    conn.close()
    assert "(2 read, 5 unchanged" in run_markfs(data_dir, "scan", "shop").stdout


def test_an_update_in_wal_mode_is_noticed_and_a_quiet_database_is_not_read(
        data_dir: Path, db: Path) -> None:
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA journal_mode = WAL")
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "scan", "shop")
    assert "(0 read, 7 unchanged" in run_markfs(data_dir, "scan", "shop").stdout
    conn.execute("UPDATE customers SET email = 'x@y' WHERE id = 3")
    assert "(2 read, 5 unchanged" in run_markfs(data_dir, "scan", "shop").stdout
    conn.close()
