"""JSON lines rendered a column at a time are byte for byte what json.dumps writes."""

from __future__ import annotations

import datetime
import decimal
import io
import json
import math
import random

import pyarrow as pa
import pytest

from markfs.render.jsonlines import write_batch
from markfs.values import json_default


def reference(batch: pa.RecordBatch) -> bytes:
    """The row-at-a-time rendering markfs used before (and json.dumps's definition)."""
    return "".join(json.dumps(row, ensure_ascii=False, default=json_default, allow_nan=False)
                   + "\n" for row in batch.to_pylist()).encode()


def columnar(batch: pa.RecordBatch) -> bytes:
    out = io.BytesIO()
    write_batch(batch, out)
    return out.getvalue()


def with_nulls(values: list[object], every: int = 7) -> list[object]:
    return [None if i % every == 3 else v for i, v in enumerate(values)]


def test_numbers_booleans_and_nulls() -> None:
    rng = random.Random(7)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(500)] + [
        rng.random() * 10 ** rng.randint(-30, 30) for _ in range(500)] + [
        0.0, -0.0, 1e16, 1e15, 1e-5, 1e-4, 100.0, 5e-324, 1.7976931348623157e308]
    n = len(floats)
    batch = pa.RecordBatch.from_pydict({
        "i": pa.array(with_nulls([rng.randint(-2**63, 2**63 - 1) for _ in range(n)]),
                      pa.int64()),
        "u": pa.array([rng.randint(0, 2**64 - 1) for _ in range(n)], pa.uint64()),
        "f": pa.array(with_nulls(list(floats)), pa.float64()),
        "g": pa.array([rng.random() for _ in range(n)], pa.float32()),
        "b": pa.array(with_nulls([rng.random() < 0.5 for _ in range(n)]), pa.bool_()),
        "z": pa.array([None] * n, pa.null()),
    })
    assert columnar(batch) == reference(batch)


def test_strings_with_every_character_json_escapes() -> None:
    specials = [chr(c) for c in range(0x20)] + ['"', "\\", "/", "\u2028", "é", "😀", "\x7f"]
    rng = random.Random(3)
    values = ["".join(rng.choice(specials + list("abc xyz")) for _ in range(rng.randint(0, 12)))
              for _ in range(2000)]
    batch = pa.RecordBatch.from_pydict({"s": pa.array(with_nulls(values), pa.string()),
                                        "plain": pa.array(["ok"] * 2000, pa.string())})
    assert columnar(batch) == reference(batch)


def test_keys_that_need_escapes_and_many_columns() -> None:
    names = ['a "quoted" name', "back\\slash", "new\nline", "ünïcode", "x"]
    batch = pa.RecordBatch.from_pydict({name: pa.array([1, None, 3]) for name in names})
    assert columnar(batch) == reference(batch)


def test_decimals_dates_times_and_bytes_are_written_as_json_default_says() -> None:
    batch = pa.RecordBatch.from_pydict({
        "d": pa.array([decimal.Decimal("12.500"), None, decimal.Decimal("-0.001")],
                      pa.decimal128(10, 3)),
        "day": pa.array([datetime.date(2024, 1, 2), None, datetime.date(1, 1, 1)]),
        "at": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5, 6), None,
                        datetime.datetime(2024, 1, 2)], pa.timestamp("us")),
        "t": pa.array([datetime.time(1, 2, 3), None, datetime.time(0)]),
        "raw": pa.array([b"\x00\xff", None, b""]),
        "list": pa.array([[1, 2], None, []]),
    })
    assert columnar(batch) == reference(batch)


def test_a_sliced_batch_writes_only_its_rows() -> None:
    batch = pa.RecordBatch.from_pydict({"n": pa.array(range(100)),
                                        "s": pa.array([f"v{i}" for i in range(100)])})
    part = batch.slice(37, 20)
    assert columnar(part) == reference(part)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_fail_as_json_dumps_does(bad: float) -> None:
    batch = pa.RecordBatch.from_pydict({"f": pa.array([1.0, bad])})
    with pytest.raises(ValueError, match="not JSON compliant"):
        columnar(batch)
