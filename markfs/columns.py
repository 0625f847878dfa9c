"""A value read from an SQLite column, as the type the code expects: checked, where a
cast (`int(value)`) would accept what the column should never hold and hide it from the
type checker. SQLite's values are int, float, str, bytes or None; a column that holds
another type than its schema says is damage, reported as ValueError. Bottom layer: the
catalog and the SQL sources read their rows through it.
"""

from __future__ import annotations


def integer(value: object) -> int:
    if isinstance(value, int):
        return value
    raise ValueError(f"an integer column holds {type(value).__name__}")


def maybe_integer(value: object) -> int | None:
    return None if value is None else integer(value)


def text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"a text column holds {type(value).__name__}")


def maybe_text(value: object) -> str | None:
    return None if value is None else text(value)


def blob(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    raise ValueError(f"a blob column holds {type(value).__name__}")
