"""One snapshot of a table: its six files rendered into the snapshot store.

The source is read once: its batches stream into `data.parquet` while column
statistics and the preview rows are gathered on the way. `data.csv` and
`data.jsonl` are then rendered from that Parquet file, so all three hold
exactly the same rows even if the source changes meanwhile, and the source is
not queried three times. Memory stays bounded by one batch throughout.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from markfs.cache.snapshots import SnapshotStore
from markfs.render.writers import render
from markfs.scan.stats import ColumnStats, TableStats
from markfs.values import json_default

PREVIEW_ROWS = 100
SAMPLE_ROWS = 10
FILE_NAMES = ("data.parquet", "data.csv", "data.jsonl", "schema.json", "stats.json",
              "preview.csv")


@dataclass(frozen=True)
class ColumnMeta:
    """What the catalog knows of a column beyond its Arrow type."""

    name: str
    source_type: str
    nullable: bool
    primary_key: bool
    comment: str | None


@dataclass(frozen=True)
class TableMeta:
    source: str
    schema: str
    table: str
    change_token: str
    columns: list[ColumnMeta]


@dataclass(frozen=True)
class RenderedFile:
    name: str
    digest: str  # xxh3-128 hex
    size: int
    rows: int


@dataclass(frozen=True)
class Snapshot:
    files: list[RenderedFile]
    rows: int
    stats: list[ColumnStats]
    sample: list[dict[str, Any]]
    taken_ns: int


RowProgress = Callable[[int], None]


def render_snapshot(meta: TableMeta, schema: pa.Schema, batches: Iterator[pa.RecordBatch],
                    store: SnapshotStore, progress: RowProgress | None = None) -> Snapshot:
    taken = time.time_ns()
    stats = TableStats(schema)
    preview: list[pa.RecordBatch] = []
    temps: list[Path] = []
    try:
        parquet = _temp(store, temps, ".parquet")
        render(_watch(stats.observe(batches), preview, progress), schema, "parquet", parquet)
        rendered = [_add(store, "data.parquet", parquet, stats.rows)]
        for fmt in ("csv", "jsonl"):
            out = _temp(store, temps, f".{fmt}")
            rows = render(_parquet_batches(store.path(rendered[0].digest)), schema, fmt, out)
            rendered.append(_add(store, f"data.{fmt}", out, rows))
        head = pa.Table.from_batches(preview, schema=schema).slice(0, PREVIEW_ROWS)
        sample = head.slice(0, SAMPLE_ROWS).to_pylist()
        docs = {"schema.json": _schema_doc(meta, schema, taken),
                "stats.json": _stats_doc(meta, stats, sample, taken)}
        for name, doc in docs.items():
            out = _temp(store, temps, ".json")
            out.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=json_default)
                           + "\n", encoding="utf-8")
            rendered.append(_add(store, name, out, stats.rows))
        out = _temp(store, temps, ".csv")
        render(iter(head.to_batches()), schema, "csv", out)
        rendered.append(_add(store, "preview.csv", out, head.num_rows))
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return Snapshot(rendered, stats.rows, stats.columns(), sample, taken)


def _temp(store: SnapshotStore, temps: list[Path], suffix: str) -> Path:
    path = store.temp_file(suffix)
    temps.append(path)
    return path


def _add(store: SnapshotStore, name: str, path: Path, rows: int) -> RenderedFile:
    digest, size = store.add(path)
    return RenderedFile(name, digest, size, rows)


def _watch(batches: Iterator[pa.RecordBatch], preview: list[pa.RecordBatch],
           progress: RowProgress | None) -> Iterator[pa.RecordBatch]:
    """Keep the first PREVIEW_ROWS rows and report progress as batches go by."""
    kept = 0
    for batch in batches:
        if kept < PREVIEW_ROWS:
            preview.append(batch.slice(0, PREVIEW_ROWS - kept))
            kept += min(batch.num_rows, PREVIEW_ROWS - kept)
        if progress is not None:
            progress(batch.num_rows)
        yield batch


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with pq.ParquetFile(path) as f:
        yield from f.iter_batches(batch_size=65_536)


def _schema_doc(meta: TableMeta, schema: pa.Schema, taken_ns: int) -> dict[str, Any]:
    return {
        "source": meta.source, "schema": meta.schema, "table": meta.table,
        "snapshot_ns": taken_ns,
        "columns": [{**asdict(c), "arrow_type": str(f.type)}
                    for c, f in zip(meta.columns, schema, strict=True)],
    }


def _stats_doc(meta: TableMeta, stats: TableStats, sample: list[dict[str, Any]],
               taken_ns: int) -> dict[str, Any]:
    return {
        "source": meta.source, "schema": meta.schema, "table": meta.table,
        "snapshot_ns": taken_ns, "rows": stats.rows, "rows_exact": True,
        "columns": [asdict(c) | {"null_ratio": (c.null_count / stats.rows) if stats.rows
                                  else 0.0} for c in stats.columns()],
        "sample": sample,
    }
