"""JSON lines from Arrow batches, a column at a time (no Python object per row).

The output is byte for byte what `json.dumps(row, ensure_ascii=False,
default=values.json_default, allow_nan=False)` writes for each row, one per line:
keys in column order, `", "` and `": "` between them. Each column becomes an
array of JSON texts — integers and dates cast by Arrow, strings quoted (escaped
only where a value needs it), floats by Python's own `repr` (Arrow's shortest
form places exponents differently) — and Arrow joins the texts of a row with
its keys. Types Arrow cannot spell the way `json.dumps` does (decimals,
timestamps, times, bytes, nested values) take the per-value path of
`json_default`, for that column only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from markfs.values import json_default

NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}


def write_batch(batch: pa.RecordBatch, out: IO[bytes]) -> None:
    """Append the batch's rows to `out` as JSON lines."""
    if batch.num_rows == 0:
        return
    parts: list[pa.Array | str] = []
    for position, (name, column) in enumerate(zip(batch.schema.names, batch.columns,
                                                  strict=True)):
        key = json.dumps(name, ensure_ascii=False)
        parts += [("{" if position == 0 else ", ") + key + ": ", _texts(column)]
    if not parts:
        out.write(b"{}\n" * batch.num_rows)
        return
    parts.append("}\n")
    lines = pc.binary_join_element_wise(*parts, "")
    out.write(_joined_bytes(lines))


def _joined_bytes(lines: pa.Array) -> bytes:
    """The values of a string array, back to back (its data buffer, as sliced)."""
    offsets = lines.buffers()[1]
    first = int.from_bytes(offsets[lines.offset * 4 : lines.offset * 4 + 4], "little",
                           signed=True)
    end_at = (lines.offset + len(lines)) * 4
    last = int.from_bytes(offsets[end_at : end_at + 4], "little", signed=True)
    return bytes(lines.buffers()[2][first:last].to_pybytes())


def _texts(column: pa.Array) -> pa.Array:
    """JSON texts of a column's values ("null" for nulls), as a string array."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_date32(kind) or pa.types.is_date64(kind):
        texts = pc.cast(column, pa.string())
        if not pa.types.is_integer(kind):
            texts = pc.binary_join_element_wise('"', texts, '"', "")
    elif pa.types.is_boolean(kind):
        texts = pc.if_else(column, "true", "false")
    elif pa.types.is_floating(kind):
        texts = _floats(column)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = _strings(pc.cast(column, pa.string()))
    elif pa.types.is_null(kind):
        return pa.array(["null"] * len(column), pa.string())
    else:
        texts = pa.array([None if v is None else json.dumps(
            v, ensure_ascii=False, default=json_default, allow_nan=False)
            for v in column.to_pylist()], pa.string())
    return pc.fill_null(texts, "null")


def _floats(column: pa.Array) -> pa.Array:
    """Python's repr of each value. Arrow writes the same shortest digits but lays some
    out differently: integral values lack Python's ".0" (added here), and where Arrow
    uses an exponent or more than four leading zeros Python's layout may differ — those
    values (rare in most tables) are formatted by Python itself."""
    if not pc.all(pc.or_kleene(pc.is_finite(column), pc.is_null(column))).as_py():
        raise ValueError("Out of range float values are not JSON compliant")
    doubles = pc.cast(column, pa.float64())
    texts = pc.cast(doubles, pa.string())
    has_dot = pc.match_substring(texts, ".")
    digits = pc.binary_length(pc.utf8_ltrim(texts, "-"))
    long_integral = pc.and_(pc.invert(has_dot), pc.greater(digits, 16))
    other = pc.or_(pc.or_(pc.match_substring(texts, "e"), long_integral),
                   pc.or_(pc.starts_with(texts, "0.0000"), pc.starts_with(texts, "-0.0000")))
    other = pc.and_kleene(other, pc.is_valid(doubles))
    texts = pc.if_else(pc.or_(has_dot, other), texts,
                       pc.binary_join_element_wise(texts, ".0", ""))
    if pc.any(other).as_py():
        odd = pc.filter(doubles, other).to_pylist()
        texts = pc.replace_with_mask(texts, other, pa.array(map(float.__repr__, odd),
                                                            pa.string()))
    return texts


def _strings(column: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(column, NEEDS_ESCAPE)).as_py():
        column = _escaped(column)
    return pc.binary_join_element_wise('"', column, '"', "")


def _escaped(column: pa.Array) -> pa.Array:
    """What json.dumps writes inside the quotes (backslash first: it escapes the rest)."""
    for char, escape in SHORT_ESCAPES.items():
        column = pc.replace_substring(column, char, escape)
    for code in range(0x20):
        char = chr(code)
        if char not in SHORT_ESCAPES:
            column = pc.replace_substring(column, char, f"\\u{code:04x}")
    return column


def render_jsonl(batches: Iterable[pa.RecordBatch], out: Path) -> int:
    """Every batch into `out`; the number of rows."""
    rows = 0
    with open(out, "wb") as f:
        for batch in batches:
            write_batch(batch, f)
            rows += batch.num_rows
    return rows
