"""Render benchmark (not a test): a 1M-row x 10-column SQLite table, in three parts.

1. each format rendered straight from the source (`SqliteSource.read_table`), rows/s;
2. a whole snapshot as `markfs manage` takes it (Parquet + statistics from the source,
   CSV and JSONL from the Parquet file, schema/stats/preview), seconds;
3. `cp` of the managed table's files out of a real mount (page cache dropped), MB/s.

    .venv/bin/python tools/bench/render_bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import apsw
import pyarrow as pa

from markfs.render.writers import FORMATS, render
from markfs.sql.sqlite import SqliteSource
from markfs.values import json_default

MARKFS = [sys.executable, "-m", "markfs"]


def make_table(path: Path, rows: int) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE facts (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, "
                 "c REAL, d REAL, e TEXT, f TEXT, g INTEGER, h REAL, i TEXT)")
    rng = random.Random(7)
    with conn:
        conn.executemany("INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
            (n, rng.randrange(1 << 30), n % 97, rng.random(), n * 0.5, f"name {n % 1000}",
             rng.choice(("north", "south", "east", "west")), n // 7, rng.random() * 100,
             f"comment number {n}") for n in range(rows)))
    conn.close()


def formats(db: Path, tmp: Path) -> None:
    source = SqliteSource(db)
    columns = source.columns("main", "facts")
    print("| format | rows | seconds | rows/s | MB |\n|---|---|---|---|---|")
    for fmt in FORMATS:
        out = tmp / f"data.{fmt}"
        start = time.perf_counter()
        schema, batches = source.read_table("main", "facts", columns)
        rows = render(batches, schema, fmt, out)
        seconds = time.perf_counter() - start
        print(f"| {fmt} | {rows} | {seconds:.2f} | {rows / seconds:,.0f} | "
              f"{out.stat().st_size / 1e6:.1f} |", flush=True)
    reference = tmp / "rows.jsonl"
    start = time.perf_counter()
    schema, batches = source.read_table("main", "facts", columns)
    rows = jsonl_row_by_row(batches, reference)
    seconds = time.perf_counter() - start
    same = reference.read_bytes() == (tmp / "data.jsonl").read_bytes()
    print(f"| jsonl, row by row (json.dumps per row: the writer before issue 11) | {rows} | "
          f"{seconds:.2f} | {rows / seconds:,.0f} | {reference.stat().st_size / 1e6:.1f} |")
    print(f"\ncolumnar JSON lines byte-identical to row-by-row: {same}", flush=True)
    source.close()


def jsonl_row_by_row(batches: Iterable[pa.RecordBatch], out: Path) -> int:
    """The JSON lines writer markfs had before: a dict and a json.dumps per row."""
    rows = 0
    with open(out, "w", encoding="utf-8") as f:
        for batch in batches:
            for row in batch.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False, default=json_default,
                                   allow_nan=False) + "\n")
            rows += batch.num_rows
    return rows


def markfs(data: Path, *args: str) -> None:
    subprocess.run([*MARKFS, "--data-dir", str(data), *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mounted_copy(db: Path, tmp: Path) -> None:
    data, point = tmp / "data", tmp / "mnt"
    point.mkdir()
    markfs(data, "init")
    markfs(data, "source", "add", "bench", f"sqlite://{db}")
    start = time.perf_counter()
    markfs(data, "manage", "bench/main/facts")
    print(f"\nwhole snapshot (`markfs manage`, incl. statistics and all six files): "
          f"{time.perf_counter() - start:.2f} s\n")
    markfs(data, "mount", str(point))
    try:
        print("| file | MB | seconds | MB/s |\n|---|---|---|---|")
        for name in ("data.parquet", "data.csv", "data.jsonl"):
            src = point / "tables" / "bench" / "main" / "facts" / name
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            start = time.perf_counter()
            subprocess.run(["cp", str(src), str(tmp / name)], check=True)
            seconds = time.perf_counter() - start
            size = os.path.getsize(tmp / name) / 1e6
            print(f"| {name} | {size:.1f} | {seconds:.2f} | {size / seconds:,.0f} |",
                  flush=True)
    finally:
        markfs(data, "umount", str(point))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="markfs-render-") as name:
        tmp = Path(name)
        db = tmp / "facts.db"
        make_table(db, args.rows)
        formats(db, tmp)
        mounted_copy(db, tmp)


if __name__ == "__main__":
    main()
