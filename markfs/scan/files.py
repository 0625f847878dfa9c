"""Structured files read through a backend: schema, row count and statistics.

Parquet is read from its footer alone, with ranged reads (the row count, the
schema and each row group's min/max/null counts are all there); CSV and JSON
lines are inferred from their first `SAMPLE_BYTES`, with the row count exact
when the whole file fits in the sample and an estimate (flagged) otherwise; a
JSON document (an array of objects) is read whole up to the same limit.
Everything blocks: callers run it in worker threads.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from markfs.backends.base import Backend
from markfs.scan.stats import TableStats
from markfs.values import json_default

SAMPLE_BYTES = 1024 * 1024
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "json"}


def format_of(path: str) -> str | None:
    lower = path.lower()
    return next((fmt for ext, fmt in FORMATS.items() if lower.endswith(ext)), None)


@dataclass(frozen=True)
class FileFacts:
    rows: int
    rows_exact: bool
    schema: list[dict[str, str]]
    stats: list[dict[str, Any]]


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over a backend's ranged reads (for Parquet's footer)."""

    def __init__(self, backend: Backend, path: bytes, size: int, etag: bytes | None) -> None:
        self.backend, self.path, self.size, self.etag = backend, path, size, etag
        self.pos = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        data = self.backend.read_range(self.path, self.pos, want, self.etag)
        self.requests += 1
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def describe(backend: Backend, path: bytes, size: int, etag: bytes | None,
             fmt: str) -> FileFacts:
    """What a structured file holds; ValueError if it is not what its name says."""
    try:
        if fmt == "parquet":
            return _parquet(RangedFile(backend, path, size, etag))
        head = backend.read_range(path, 0, min(size, SAMPLE_BYTES), etag)
        return _sampled(head, size, fmt)
    except (pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not readable as {fmt}: {str(exc).splitlines()[0]}") from None


def _parquet(file: RangedFile) -> FileFacts:
    meta = pq.read_metadata(file)
    schema = meta.schema.to_arrow_schema()
    stats = []
    for col in range(meta.num_columns):
        nulls, low, high, known = 0, None, None, True
        for rg in range(meta.num_row_groups):
            st = meta.row_group(rg).column(col).statistics
            if st is None or not st.has_min_max:
                known = False
                continue
            nulls += st.null_count or 0
            low = st.min if low is None or st.min < low else low
            high = st.max if high is None or st.max > high else high
        stats.append({"name": schema.field(col).name, "null_count": nulls if known else None,
                      "min_value": _text(low), "max_value": _text(high),
                      "distinct_count": None, "from": "parquet footer"})
    return FileFacts(meta.num_rows, True, _fields(schema), stats)


def _sampled(head: bytes, size: int, fmt: str) -> FileFacts:
    whole = len(head) >= size
    if not whole:  # cut at the last complete line
        head = head[: head.rfind(b"\n") + 1]
        if fmt == "json" or not head:
            raise ValueError(f"larger than the {SAMPLE_BYTES} byte sample limit")
    if fmt == "csv":
        table = pacsv.read_csv(io.BytesIO(head))
    elif fmt == "jsonl":
        table = pajson.read_json(io.BytesIO(head))
    else:
        doc = json.loads(head)
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise ValueError("a JSON file must hold an array of objects to be described")
        table = pa.Table.from_pylist(doc)
    rows = table.num_rows if whole else round(table.num_rows * size / max(len(head), 1))
    stats = TableStats(table.schema)
    for batch in table.to_batches():
        stats.add(batch)
    return FileFacts(rows, whole, _fields(table.schema),
                     [asdict(c) | {"from": "whole file" if whole else "sample"}
                      for c in stats.columns()])


def _fields(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(json_default(value)) if hasattr(value, "isoformat") else str(value)
