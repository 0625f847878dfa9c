"""Scans of file sources: folders with object counts and sizes, structured files described."""

from __future__ import annotations

import io
import itertools
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import run_markfs
from remote_helpers import s3_source
from servers import S3Server

_buckets = itertools.count(1)


def parquet_bytes(rows: int) -> bytes:
    table = pa.table({"id": list(range(rows)), "city": [f"city{i % 7}" for i in range(rows)],
                      "amount": [None if i % 10 == 0 else i * 0.5 for i in range(rows)]})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=1000)
    return out.getvalue()


def seed(root: Path) -> None:
    (root / "raw" / "2024").mkdir(parents=True)
    (root / "raw" / "2024" / "sales.parquet").write_bytes(parquet_bytes(2500))
    (root / "raw" / "notes.txt").write_text("hello")
    (root / "exports").mkdir()
    (root / "exports" / "people.csv").write_text(
        "name,age,email\nann,31,a@x\nbob,,b@x\n\u00e9lodie,45,\n")
    (root / "exports" / "events.jsonl").write_text(
        "\n".join(json.dumps({"kind": "click", "n": i}) for i in range(50)) + "\n")
    (root / "exports" / "broken.parquet").write_bytes(b"not parquet at all" * 10)
    (root / "top.json").write_text(json.dumps([{"a": 1}, {"a": 2}]))


def tables_lines(data_dir: Path, source: str) -> dict[str, str]:
    out = run_markfs(data_dir, "tables", source).stdout.splitlines()
    # path -> the fields after it, without the size (the last one)
    return {line.split("\t", 1)[0]: line.split("\t", 1)[1].rsplit("\t", 1)[0] for line in out}


def test_level1_scan_counts_objects_and_bytes_and_finds_structured_files(
        data_dir: Path, backing: Path) -> None:
    seed(backing)
    out = run_markfs(data_dir, "scan", "loc").stdout
    assert "loc: 6 files" in out and "5 structured (0 deprecated)" in out
    assert "  raw/\t2 files\t" in out and "  exports/\t3 files\t" in out
    assert "  (root)\t1 files\t" in out
    lines = tables_lines(data_dir, "loc")
    assert lines["/sources/loc/raw/2024/sales.parquet"] == "parquet file\t? rows\t? columns\t-"


def test_deep_scan_reads_the_parquet_footer_and_samples_text_formats(
        data_dir: Path, backing: Path) -> None:
    seed(backing)
    out = run_markfs(data_dir, "scan", "loc", "--deep").stdout
    assert "4 files described, 0 unchanged, 1 unreadable" in out
    lines = tables_lines(data_dir, "loc")
    assert lines["/sources/loc/raw/2024/sales.parquet"] == "parquet file\t2500 rows\t3 columns\t-"
    assert lines["/sources/loc/exports/people.csv"] == "csv file\t3 rows\t3 columns\t-"
    assert lines["/sources/loc/exports/events.jsonl"] == "jsonl file\t50 rows\t2 columns\t-"
    assert lines["/sources/loc/top.json"] == "json file\t2 rows\t1 columns\t-"
    assert "unreadable: not readable as parquet" in lines["/sources/loc/exports/broken.parquet"]


def test_unchanged_files_are_not_read_again_and_vanished_ones_are_deprecated(
        data_dir: Path, backing: Path) -> None:
    seed(backing)
    run_markfs(data_dir, "scan", "loc", "--deep")
    (backing / "exports" / "people.csv").write_text("name,age\nzed,1\n")
    os.unlink(backing / "top.json")
    out = run_markfs(data_dir, "scan", "loc", "--deep").stdout
    assert "(1 deprecated)" in out
    assert "1 files described, 3 unchanged, 0 unreadable" in out  # broken one: not retried
    lines = tables_lines(data_dir, "loc")
    assert lines["/sources/loc/exports/people.csv"] == "csv file\t1 rows\t2 columns\t-"
    assert lines["/sources/loc/top.json"].endswith("\tdeprecated")


def test_search_finds_files_by_name_and_by_column(data_dir: Path, backing: Path) -> None:
    seed(backing)
    run_markfs(data_dir, "scan", "loc", "--deep")
    assert "/sources/loc/raw/2024/sales.parquet\tfile" in run_markfs(
        data_dir, "search", "sales").stdout
    run_markfs(data_dir, "scan", "loc")  # column words join the index at the next scan
    assert "/sources/loc/exports/people.csv\tfile" in run_markfs(
        data_dir, "search", "email").stdout


def test_s3_parquet_is_described_from_its_footer(data_dir: Path, s3: S3Server) -> None:
    bucket = f"scan{next(_buckets)}"
    remote = s3_source(s3, bucket)
    remote.put("big/sales.parquet", parquet_bytes(20_000))
    remote.put("big/more/x.bin", b"\0" * 1000)
    run_markfs(data_dir, "source", "add", "s3src", remote.url)
    out = run_markfs(data_dir, "scan", "s3src", "--deep").stdout
    assert "s3src: 2 files" in out and "1 files described" in out
    lines = tables_lines(data_dir, "s3src")
    assert lines["/sources/s3src/big/sales.parquet"] == "parquet file\t20000 rows\t3 columns\t-"


