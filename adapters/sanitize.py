"""What arrives from outside, made storable. Pure functions, used at the edges.

- `db_id`: an id as the database can hold it, or None. Python ints have no bound;
  the id columns are INTEGER, which is 64 bits on SQLite but 32 on PostgreSQL
  (2**31 - 1 at most), and a float such as 1e308 or Infinity is no id at all.
- `text` and `deep`: NUL (PostgreSQL refuses it in text) and lone surrogates (no
  UTF-8 encoding exists for them; `json.loads` makes them from `"\\ud800"`) become
  U+FFFD, so the message is stored and answered instead of failing the request.
- `sanitized`: a frozen dataclass (an `Inbound`, a `Click`) with every string in it,
  nested ones included, made storable.
- `loads`: `json.loads` whose failure on hostile nesting is a ValueError like any
  other bad JSON (Python's parser raises RecursionError past about 1,000 levels,
  and what walks the result recursively, bolt's deepcopy or `deep`, fails sooner):
  no platform nests its payloads anywhere near `MAX_DEPTH` levels.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, TypeVar

MAX_DEPTH = 64
MAX_ID = 2**31 - 1  # an INTEGER id column on PostgreSQL (SQLite's holds more)
REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
T = TypeVar("T")


def db_id(value: Any) -> int | None:
    """A positive id within the id columns' range on every database, from an int,
    an integral float or a string of ASCII digits; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        digits = value.strip().lstrip("#")
        value = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 10 else None
    if not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_ID else None


def text(value: str) -> str:
    return _UNSTORABLE.sub(REPLACEMENT, value)


def deep(value: Any) -> Any:
    """Strings made storable inside dicts and lists (keys too)."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {deep(k): deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(deep(v) for v in value)
    return value


def sanitized(record: T) -> T:
    """The dataclass with every string field (and nested dataclass) made storable."""
    changes = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        clean = sanitized(value) if dataclasses.is_dataclass(value) else deep(value)
        if clean != value:
            changes[f.name] = clean
    return dataclasses.replace(record, **changes) if changes else record  # type: ignore[type-var]


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and dicts nest more than `limit` levels (walked without recursion)."""
    level: list[Any] = [value]
    for _ in range(limit):
        children = (c for v in level for c in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()))
        level = [c for c in children if isinstance(c, dict | list)]
        if not level:
            return False
    return True


def loads(raw: str | bytes) -> Any:
    try:
        value = json.loads(raw)
    except RecursionError as e:
        raise ValueError("the JSON is nested too deeply") from e
    if too_deep(value):
        raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
    return value
