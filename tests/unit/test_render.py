"""Rendering SQLite tables into Parquet, CSV and JSON lines, read back and compared."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import apsw
import pyarrow.parquet as pq
import pytest

from markfs.render.writers import render
from markfs.sql.sqlite import SqliteSource, arrow_schema, stream_batches

ROWS = [
    (1, "plain", 1.5, b"\x00\x01", "12.50"),
    (2, None, None, None, None),
    (3, "ünïcødé, \"quoted\"\nnewline", -0.25, b"\xff" * 10, "0.001"),
]


@pytest.fixture
def source(tmp_path: Path) -> SqliteSource:
    path = tmp_path / "t.db"
    conn = apsw.Connection(str(path))
    conn.execute('CREATE TABLE "odd table" (id INTEGER PRIMARY KEY, "a name" TEXT, '
                 'score REAL, data BLOB, amount DECIMAL(10,3))')
    conn.executemany('INSERT INTO "odd table" VALUES (?, ?, ?, ?, ?)', ROWS)
    conn.execute("CREATE TABLE empty (x INTEGER, y TEXT)")
    conn.execute("CREATE TABLE big (n INTEGER, s TEXT)")
    with conn:  # one transaction, not 200,000
        conn.executemany("INSERT INTO big VALUES (?, ?)",
                         [(i, f"row {i}") for i in range(200_000)])
    conn.close()
    return SqliteSource(path)


def rendered(source: SqliteSource, table: str, fmt: str, out: Path,
             batch_rows: int = 65_536) -> int:
    schema = arrow_schema(source.columns("main", table))
    return render(stream_batches(source, table, schema, batch_rows), schema, fmt, out)


def test_parquet_holds_every_row_and_type(source: SqliteSource, tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    assert rendered(source, "odd table", "parquet", out) == 3
    table = pq.read_table(out)
    assert table.column_names == ["id", "a name", "score", "data", "amount"]
    stored = source.database.execute('SELECT * FROM "odd table" ORDER BY id').fetchall()
    # DECIMAL has NUMERIC affinity: SQLite itself stores '12.50' as the number 12.5,
    # and the string column keeps exactly what SQLite holds
    assert table.to_pylist() == [
        {"id": r[0], "a name": r[1], "score": r[2], "data": r[3],
         "amount": None if r[4] is None else str(r[4])} for r in stored]


def test_csv_reads_back_with_nulls_empty_and_bytes_as_base64(
        source: SqliteSource, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    rendered(source, "odd table", "csv", out)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[2]["a name"] == ROWS[2][1]
    assert rows[0]["data"] == base64.b64encode(b"\x00\x01").decode()
    assert rows[1]["a name"] == "" and rows[1]["score"] == ""


def test_jsonl_has_one_object_per_row(source: SqliteSource, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    rendered(source, "odd table", "jsonl", out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[1] == {"id": 2, "a name": None, "score": None, "data": None, "amount": None}
    assert rows[2]["a name"] == ROWS[2][1] and rows[2]["amount"] == "0.001"
    assert rows[0]["amount"] == "12.5"
    assert base64.b64decode(rows[2]["data"]) == b"\xff" * 10


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_an_empty_table_renders_a_valid_file(source: SqliteSource, tmp_path: Path,
                                             fmt: str) -> None:
    out = tmp_path / f"e.{fmt}"
    assert rendered(source, "empty", fmt, out) == 0
    if fmt == "parquet":
        assert pq.read_table(out).num_rows == 0
    if fmt == "csv":
        assert out.read_text().strip() == '"x","y"'


def test_many_batches_keep_every_row_in_order(source: SqliteSource, tmp_path: Path) -> None:
    out = tmp_path / "big.parquet"
    assert rendered(source, "big", "parquet", out, batch_rows=7_000) == 200_000
    column = pq.read_table(out, columns=["n"]).column("n").to_pylist()
    assert column == list(range(200_000))


def test_rendering_is_deterministic(source: SqliteSource, tmp_path: Path) -> None:
    for fmt in ("parquet", "csv", "jsonl"):
        rendered(source, "odd table", fmt, tmp_path / f"1.{fmt}")
        rendered(source, "odd table", fmt, tmp_path / f"2.{fmt}")
        assert (tmp_path / f"1.{fmt}").read_bytes() == (tmp_path / f"2.{fmt}").read_bytes()


def test_values_that_do_not_fit_the_declared_type_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "mixed.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE m (n INTEGER)")
    conn.executemany("INSERT INTO m VALUES (?)", [(1,), ("not a number",)])
    conn.close()
    source = SqliteSource(path)
    with pytest.raises(ValueError, match="column 'n' holds values"):
        rendered(source, "m", "parquet", tmp_path / "m.parquet")
