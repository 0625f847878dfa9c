"""Render a stream of Arrow record batches into one file, in bounded memory.

Each writer consumes batches one at a time and keeps none of them, so a table
of any size renders with memory for one batch. The output is deterministic for
the same rows, which is what makes a rendered snapshot's size exact and stable.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from markfs.render.jsonlines import render_jsonl

FORMATS = ("parquet", "csv", "jsonl")


def render(batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: str,
           out: Path) -> int:
    """Write all batches to `out` in format `fmt`; returns the number of rows."""
    if fmt == "parquet":
        return _parquet(batches, schema, out)
    if fmt == "csv":
        return _csv(batches, schema, out)
    if fmt == "jsonl":
        return render_jsonl(batches, out)
    raise ValueError(f"unknown format {fmt!r}")


def _parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema, out: Path) -> int:
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema, out: Path) -> int:
    rows = 0
    # binary columns become base64 text: CSV has no bytes
    text_schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_binary(f.type)
                             else f for f in schema])
    with pacsv.CSVWriter(out, text_schema) as writer:
        for batch in batches:
            writer.write_batch(_binary_as_base64(batch, text_schema))
            rows += batch.num_rows
    return rows


def _binary_as_base64(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = []
    for column, field in zip(batch.columns, batch.schema, strict=True):
        if pa.types.is_binary(field.type):
            column = pa.array([None if v is None else base64.b64encode(v).decode()
                               for v in column.to_pylist()], type=pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)
