"""Column statistics of a stream of Arrow record batches, in one pass and bounded memory.

The same code serves every table source and every structured file: whatever
can be read as record batches gets the same level-2 statistics. Distinct
counts use a k-minimum-values sketch over 64-bit hashes: exact while a column
has fewer than `SKETCH_SIZE` distinct values, an estimate (about 1.6 % error)
above, and flagged accordingly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

SKETCH_SIZE = 4096
_HASH_SPACE = float(2**64)


@dataclass(frozen=True)
class ColumnStats:
    name: str
    type: str  # Arrow type
    null_count: int
    distinct_count: int
    distinct_exact: bool
    min_value: str | None
    max_value: str | None
    min_length: int | None  # text/binary columns only
    max_length: int | None
    avg_length: float | None


class _DistinctSketch:
    """The k smallest distinct 64-bit hashes seen (k-minimum-values)."""

    def __init__(self) -> None:
        self.smallest: list[int] = []
        self.members: set[int] = set()

    def add(self, values: Iterable[Any]) -> None:
        for value in values:
            h = xxhash.xxh3_64_intdigest(value if isinstance(value, bytes)
                                         else repr(value).encode())
            if h in self.members:
                continue
            if len(self.smallest) < SKETCH_SIZE:
                bisect.insort(self.smallest, h)
                self.members.add(h)
            elif h < self.smallest[-1]:
                self.members.discard(self.smallest.pop())
                bisect.insort(self.smallest, h)
                self.members.add(h)

    def estimate(self) -> tuple[int, bool]:
        if len(self.smallest) < SKETCH_SIZE:
            return len(self.smallest), True
        return round((SKETCH_SIZE - 1) * _HASH_SPACE / (self.smallest[-1] + 1)), False


class _ColumnAccumulator:
    def __init__(self, field: pa.Field) -> None:
        self.field = field
        self.nulls = 0
        self.low: Any = None
        self.high: Any = None
        self.sketch = _DistinctSketch()
        self.sized = pa.types.is_string(field.type) or pa.types.is_large_string(
            field.type) or pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)
        self.len_min: int | None = None
        self.len_max: int | None = None
        self.len_sum = 0
        self.len_count = 0

    def add(self, column: pa.Array) -> None:
        self.nulls += column.null_count
        if column.null_count == len(column):
            return
        if _orderable(self.field.type):
            bounds = pc.min_max(column).as_py()
            self._bound(bounds["min"], bounds["max"])
        self.sketch.add(pc.unique(column.drop_null()).to_pylist())
        if self.sized:
            lengths = (pc.utf8_length(column) if pa.types.is_string(self.field.type)
                       or pa.types.is_large_string(self.field.type)
                       else pc.binary_length(column))
            span = pc.min_max(lengths).as_py()
            self.len_min = span["min"] if self.len_min is None else min(self.len_min, span["min"])
            self.len_max = span["max"] if self.len_max is None else max(self.len_max, span["max"])
            self.len_sum += int(pc.sum(lengths).as_py() or 0)
            self.len_count += len(column) - column.null_count

    def _bound(self, low: Any, high: Any) -> None:
        if low is not None and (self.low is None or low < self.low):
            self.low = low
        if high is not None and (self.high is None or high > self.high):
            self.high = high

    def result(self) -> ColumnStats:
        distinct, exact = self.sketch.estimate()
        return ColumnStats(
            name=self.field.name, type=str(self.field.type), null_count=self.nulls,
            distinct_count=distinct, distinct_exact=exact, min_value=_text(self.low),
            max_value=_text(self.high), min_length=self.len_min, max_length=self.len_max,
            avg_length=(self.len_sum / self.len_count) if self.len_count else None)


def _orderable(kind: pa.DataType) -> bool:
    return not (pa.types.is_nested(kind) or pa.types.is_null(kind)
                or pa.types.is_dictionary(kind))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


class TableStats:
    """Feed batches with `add`; `columns()` then has one ColumnStats per field."""

    def __init__(self, schema: pa.Schema) -> None:
        self.rows = 0
        self._columns = [_ColumnAccumulator(f) for f in schema]

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for acc, column in zip(self._columns, batch.columns, strict=True):
            acc.add(column)

    def columns(self) -> list[ColumnStats]:
        return [acc.result() for acc in self._columns]

    def observe(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass batches through unchanged, counting each on the way (for a render)."""
        for batch in batches:
            self.add(batch)
            yield batch
