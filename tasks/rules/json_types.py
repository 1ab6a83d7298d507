"""The shape of JSON values: what JSON columns hold, what steps take as arguments and give
back as output. One alias, so signatures say "a JSON value" instead of `Any`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | None | list[JSON] | dict[str, JSON]"
"""Any value `json.dumps` writes and `json.loads` gives back."""

JSONMapping: TypeAlias = Mapping[str, object]
"""A JSON object as a read-only input: the caller may pass any mapping of plain values."""


def whole(value: JSON, default: int) -> int:
    """`int(value or default)` of an argument its schema checked to be an integer (which
    JSON may write as 3.0); a list or an object raises TypeError, as `int` does."""
    if isinstance(value, list | dict):
        raise TypeError(f"not a number: {type(value).__name__}")
    return int(value or default)
