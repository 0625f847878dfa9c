"""How database and Arrow values that JSON has no type for are written as JSON text."""

from __future__ import annotations

import base64
import datetime
import decimal
from typing import Any


def json_default(value: Any) -> Any:
    """bytes as base64, decimals as strings (no float rounding), dates as ISO 8601."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
