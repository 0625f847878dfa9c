"""Render benchmark (not a test): a 1M-row x 10-column SQLite table to each format.

    .venv/bin/python tools/bench/render_bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import apsw

from markfs.render.writers import FORMATS, render
from markfs.sources.sqlite import SqliteSource, arrow_schema, stream_batches


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="markfs-render-") as tmp:
        db = Path(tmp) / "facts.db"
        make_table(db, args.rows)
        source = SqliteSource(db)
        schema = arrow_schema(source.columns("main", "facts"))
        print("| format | rows | seconds | rows/s | MB |\n|---|---|---|---|---|")
        for fmt in FORMATS:
            out = Path(tmp) / f"data.{fmt}"
            start = time.perf_counter()
            rows = render(stream_batches(source, "facts", schema), schema, fmt, out)
            seconds = time.perf_counter() - start
            print(f"| {fmt} | {rows} | {seconds:.2f} | {rows / seconds:,.0f} | "
                  f"{out.stat().st_size / 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
