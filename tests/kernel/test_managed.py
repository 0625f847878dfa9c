"""Managed tables as files under /tables: snapshots, exact sizes, staleness, refresh, EROFS."""

from __future__ import annotations

import base64
import csv
import errno
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import apsw
import pyarrow.parquet as pq
import pytest
import xxhash
from conftest import Mount, run_markfs

FILES = ["data.csv", "data.jsonl", "data.parquet", "preview.csv", "schema.json", "stats.json"]
# the catalog's part of these (managed tables, views, tags, search) on both engines
pytestmark = pytest.mark.both_engines  # the whole module on SQLite and on PostgreSQL

ROWS = [(i, f"name {i} é \"q\", new\nline" if i % 7 else None, f"{i}.25",
         i / 3 if i % 5 else None, bytes([i % 256, 0, 255]) if i % 4 else None)
        for i in range(1, 301)]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC, "
                 "ratio REAL, photo BLOB)")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", ROWS)
    conn.execute("CREATE TABLE empty_one (x INTEGER, y TEXT)")
    conn.execute('CREATE TABLE "Odd ""Name"" / é" ("A b" TEXT, "select" INTEGER)')
    conn.execute('INSERT INTO "Odd ""Name"" / é" VALUES (\'v\', 7)')
    conn.close()
    return path


@pytest.fixture
def tables(tmp_path: Path, data_dir: Path, shop: Path) -> Iterator[Path]:
    """The source `shop` added and mounted; yields the mount's /tables folder."""
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{shop}")
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start()
    for _ in mount.checked():
        yield point / "tables"


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """The kernel may keep an old name for entry_ttl after the catalog changed."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def change_source(shop: Path, sql: str) -> None:
    conn = apsw.Connection(str(shop))
    conn.execute(sql)
    conn.close()


def test_unmanaged_tables_are_not_shown_and_nothing_is_rendered(
        tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "scan", "shop")
    assert os.listdir(tables) == []
    assert not list((data_dir / "cache" / "snapshots").glob("??/*"))


def test_manage_shows_the_six_files_of_the_table(tables: Path, data_dir: Path) -> None:
    out = run_markfs(data_dir, "manage", "shop/main/items").stdout
    assert "shop/main/items: 300 rows" in out
    assert sorted(os.listdir(tables / "shop" / "main" / "items")) == FILES
    assert "managed" in run_markfs(data_dir, "tables", "shop").stdout


def test_every_table_file_has_its_exact_size(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    for name in FILES:
        path = tables / "shop" / "main" / "items" / name
        assert path.stat().st_size == len(path.read_bytes()) > 0, name


def test_parquet_holds_the_source_rows(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    table = pq.read_table(tables / "shop" / "main" / "items" / "data.parquet")
    assert [tuple(r.values()) for r in table.to_pylist()] == ROWS
    assert table.schema.field("price").type == "string"  # NUMERIC: exact text, not a float


def test_csv_holds_the_source_rows_with_blobs_as_base64(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    text = (tables / "shop" / "main" / "items" / "data.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "name", "price", "ratio", "photo"]
    assert len(rows) == len(ROWS) + 1
    for got, (ident, name, price, _ratio, photo) in zip(rows[1:], ROWS, strict=True):
        assert got[0] == str(ident) and got[2] == price
        assert got[1] == (name or "")
        assert got[4] == (base64.b64encode(photo).decode() if photo else "")


def test_jsonl_holds_the_source_rows(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    lines = (tables / "shop" / "main" / "items" / "data.jsonl").read_text().splitlines()
    got = [json.loads(line) for line in lines]
    assert [(r["id"], r["name"], r["price"], r["ratio"]) for r in got] == [
        (i, n, p, r) for i, n, p, r, _ in ROWS]
    assert got[0]["photo"] == base64.b64encode(ROWS[0][4] or b"").decode()


def test_schema_and_stats_describe_the_table(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    folder = tables / "shop" / "main" / "items"
    schema = json.loads((folder / "schema.json").read_text())
    assert [(c["name"], c["source_type"], c["primary_key"]) for c in schema["columns"]] == [
        ("id", "INTEGER", True), ("name", "TEXT", False), ("price", "NUMERIC", False),
        ("ratio", "REAL", False), ("photo", "BLOB", False)]
    stats = json.loads((folder / "stats.json").read_text())
    by_name = {c["name"]: c for c in stats["columns"]}
    assert stats["rows"] == 300
    assert by_name["id"]["min_value"] == "1" and by_name["id"]["max_value"] == "300"
    assert by_name["id"]["distinct_count"] == 300 and by_name["id"]["distinct_exact"]
    assert by_name["name"]["null_count"] == sum(1 for r in ROWS if r[1] is None)
    assert by_name["ratio"]["null_ratio"] == pytest.approx(60 / 300)
    assert len(stats["sample"]) == 10


def test_preview_has_the_first_hundred_rows(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    text = (tables / "shop" / "main" / "items" / "preview.csv").read_text()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 101 and rows[1][0] == "1" and rows[100][0] == "100"


def test_an_empty_table_gives_files_with_a_header_only(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/empty_one")
    folder = tables / "shop" / "main" / "empty_one"
    assert pq.read_table(folder / "data.parquet").num_rows == 0
    assert (folder / "data.csv").read_text().strip() == '"x","y"'
    assert (folder / "data.jsonl").read_bytes() == b""


def test_odd_table_names_become_escaped_folder_names(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", 'shop/main/Odd "Name" / é')
    folder = tables / "shop" / "main" / 'Odd "Name" %2F é'
    table = pq.read_table(folder / "data.parquet")
    assert table.column_names == ["A b", "select"]
    assert table.to_pylist() == [{"A b": "v", "select": 7}]


def test_table_files_carry_xattrs(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    path = tables / "shop" / "main" / "items" / "data.parquet"
    assert os.getxattr(path, "user.markfs.source") == b"shop"
    assert os.getxattr(path, "user.markfs.rows") == b"300"
    assert os.getxattr(path, "user.markfs.stale") == b"0"
    assert os.getxattr(path, "user.markfs.hash") == (
        b"xxh3-128:" + xxhash.xxh3_128_hexdigest(path.read_bytes()).encode())
    assert os.getxattr(path, "user.markfs.snapshot_time").endswith(b"Z")


@pytest.mark.parametrize("action", [
    lambda f: os.close(os.open(f / "data.csv", os.O_WRONLY)),
    lambda f: os.close(os.open(f / "new.txt", os.O_WRONLY | os.O_CREAT)),
    lambda f: os.unlink(f / "data.csv"),
    lambda f: os.rename(f / "data.csv", f / "other.csv"),
    lambda f: os.mkdir(f / "sub"),
    lambda f: os.truncate(f / "data.csv", 0),
    lambda f: os.setxattr(f / "data.csv", "user.x", b"1"),
], ids=["write", "create", "unlink", "rename", "mkdir", "truncate", "setxattr"])
def test_table_folders_are_read_only(tables: Path, data_dir: Path,
                                     action: Callable[[Path], object]) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    with pytest.raises(OSError) as info:
        action(tables / "shop" / "main" / "items")
    assert info.value.errno == errno.EROFS


def test_a_changed_source_marks_the_snapshot_stale(tables: Path, data_dir: Path,
                                                   shop: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    change_source(shop, "INSERT INTO items (id, name) VALUES (1000, 'late')")
    run_markfs(data_dir, "scan", "shop")
    path = tables / "shop" / "main" / "items" / "data.csv"
    assert os.getxattr(path, "user.markfs.stale") == b"1"
    assert "stale: shop/main/items" in run_markfs(data_dir, "status").stdout


def test_refresh_swaps_in_new_content_while_an_old_handle_reads_the_old(
        tables: Path, data_dir: Path, shop: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    path = tables / "shop" / "main" / "items" / "data.csv"
    old = path.read_bytes()
    with open(path, "rb") as reader:
        head = reader.read(100)
        change_source(shop, "INSERT INTO items (id, name) VALUES (1000, 'late')")
        assert "shop/main/items: 301 rows" in run_markfs(data_dir, "refresh").stdout
        wait_for(lambda: path.stat().st_size != len(old))
        assert head + reader.read() == old  # the old handle: old bytes to the end
    new = path.read_bytes()
    assert new.endswith(b'1000,"late",,,\n') and len(new) == path.stat().st_size
    assert os.getxattr(path, "user.markfs.stale") == b"0"


def test_refresh_without_changes_renders_nothing(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    inode = (tables / "shop" / "main" / "items" / "data.csv").stat().st_ino
    assert "up to date" in run_markfs(data_dir, "refresh").stdout
    assert (tables / "shop" / "main" / "items" / "data.csv").stat().st_ino == inode


def test_unmanage_removes_the_folders(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    run_markfs(data_dir, "unmanage", "shop/main/items")
    wait_for(lambda: not (tables / "shop").exists())
    assert "managed" not in run_markfs(data_dir, "tables", "shop").stdout


def test_a_replaced_file_answers_until_purged_then_its_snapshot_is_deleted(
        tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    path = tables / "shop" / "main" / "items" / "data.csv"
    old_inode, old_bytes = path.stat().st_ino, path.read_bytes()
    run_markfs(data_dir, "unmanage", "shop/main/items")
    retired = tables.parent / ".markfs" / "retired" / f"{old_inode}-data.csv"
    assert retired.read_bytes() == old_bytes  # the kernel may still map the name to it
    from markfs.config import DataDir
    from markfs.namespace.tables.managed import RETIRED_FOR_S, ManagedTables
    from markfs.namespace.tree import Tree

    tree = Tree.open(DataDir(data_dir))
    try:
        later = time.time_ns() + int(RETIRED_FOR_S * 2e9)
        assert ManagedTables(tree, DataDir(data_dir)).collect_garbage(later) == 6
    finally:
        tree.close()
    assert not list((data_dir / "cache" / "snapshots").glob("??/*"))
    wait_for(lambda: not retired.exists())


def test_removing_the_source_removes_its_tables(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    run_markfs(data_dir, "source", "remove", "shop")
    wait_for(lambda: not (tables / "shop").exists())


def test_managing_an_unknown_table_is_a_clear_error(data_dir: Path, shop: Path) -> None:
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{shop}")
    for bad, message in (("shop/main/nope", "no table 'shop/main/nope'"),
                         ("shop/nope", "expected SOURCE/SCHEMA/TABLE"),
                         ("ghost/main/items", "unknown source")):
        done = run_markfs(data_dir, "manage", bad, check=False)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_vanished_database_keeps_the_last_snapshot(tables: Path, data_dir: Path,
                                                     shop: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    before = (tables / "shop" / "main" / "items" / "data.csv").read_bytes()
    shop.unlink()
    done = run_markfs(data_dir, "refresh", check=False)
    assert done.returncode == 1 and "no such SQLite database" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tables / "shop" / "main" / "items" / "data.csv").read_bytes() == before


def test_renders_are_logged_as_jobs(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    out = run_markfs(data_dir, "status").stdout
    assert "render shop/main/items: done (300/300)" in out
    assert "scan shop: done" in out


def test_search_finds_tables_by_name_column_and_prints_mount_paths(
        tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "scan", "shop")
    assert "shop/main/items\ttable" in run_markfs(data_dir, "search", "items").stdout
    assert "shop/main/items\ttable" in run_markfs(data_dir, "search", "phot").stdout
    run_markfs(data_dir, "manage", "shop/main/items")
    assert "/tables/shop/main/items\ttable" in run_markfs(data_dir, "search", "ratio").stdout
    assert 'shop/main/Odd "Name" / é' in run_markfs(data_dir, "search", "odd", "name").stdout
    done = run_markfs(data_dir, "search", "zebra", check=False)
    assert done.returncode == 1 and "nothing matches" in done.stderr


def test_a_column_whose_value_types_change_late_is_read_exactly(
        tables: Path, data_dir: Path, shop: Path) -> None:
    conn = apsw.Connection(str(shop))
    conn.execute("CREATE TABLE drift (v)")  # no declared type: any value, shown as text
    with conn:
        conn.executemany("INSERT INTO drift VALUES (?)", [(None,)] * 70_000 + [(5,), ("x",)])
    conn.close()
    run_markfs(data_dir, "manage", "shop/main/drift")
    values = pq.read_table(tables / "shop" / "main" / "drift" / "data.parquet")["v"]
    assert values.null_count == 70_000 and values.to_pylist()[-2:] == ["5", "x"]


def test_fsck_reports_a_lost_snapshot_and_refresh_force_renders_it(
        tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    for blob in (data_dir / "cache" / "snapshots").glob("??/*"):
        blob.unlink()
    done = run_markfs(data_dir, "fsck", check=False)
    assert done.returncode == 1 and "snapshot" in done.stdout and "refresh --force" in done.stdout
    run_markfs(data_dir, "refresh", "--force", "shop/main/items")
    wait_for(lambda: (tables / "shop" / "main" / "items" / "data.csv").read_bytes() != b"")
    run_markfs(data_dir, "fsck")


def test_a_finished_render_shows_its_final_count(data_dir: Path, tmp_path: Path) -> None:
    """Progress reaches the catalog at most once a second; the end writes the last count
    (before: `done (65536/150000)`, the first batch's)."""
    path = tmp_path / "big.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, 'x')", ((i,) for i in range(150_000)))
    conn.close()
    run_markfs(data_dir, "source", "add", "big", f"sqlite://{path}")
    run_markfs(data_dir, "manage", "big/main/t")
    assert "render big/main/t: done (150000/150000)" in run_markfs(data_dir, "status").stdout


def test_a_refresh_is_seen_by_the_very_next_read(tables: Path, data_dir: Path,
                                                 shop: Path) -> None:
    """A command's changes reach every running mount before it returns (issue 24, part
    8; before: the old snapshot for up to entry_ttl after `markfs refresh`): 20 rounds of
    change, refresh, read at once."""
    run_markfs(data_dir, "manage", "shop/main/items")
    csv_path = tables / "shop" / "main" / "items" / "data.csv"
    for round_number in range(20):
        csv_path.read_bytes()  # the kernel holds the name and the pages now
        change_source(shop, f"INSERT INTO items (name) VALUES ('round {round_number}')")
        run_markfs(data_dir, "refresh", "shop/main/items")
        assert f"round {round_number}".encode() in csv_path.read_bytes(), round_number


def test_a_tag_given_by_the_cli_is_listed_at_once(tables: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "manage", "shop/main/items")
    tags = tables.parent / "tags"
    os.listdir(tags)
    for round_number in range(10):
        run_markfs(data_dir, "tag", "add", f"t{round_number}", "/tables/shop/main/items")
        assert os.listdir(tags / f"t{round_number}") == ["items"], round_number
