"""Throwaway databases for the benchmarks, and the arithmetic they report with."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert

from tasks.store.db import Database
from tasks.store.models import TASK
from tasks.store.schema import upgrade
from tasks.store.tx import Tx

POSTGRES = os.environ.get("COWORK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "load_1min": round(load, 2) if load is not None else None}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else 0.0


@contextlib.contextmanager
def fresh_postgres(admin_url: str = POSTGRES) -> Iterator[str]:
    """A new PostgreSQL database at the current schema, dropped afterwards."""
    name = f"cowork_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'bench.db'}"
        upgrade(url)
        yield url


def queue_tasks(db: Database, n: int, tag: str, now: datetime) -> None:
    """`n` queued tasks written straight to the table (intake's cost is not what is measured)."""
    rows: list[dict[str, Any]] = [
        {"platform": "bench", "tenant": "", "dedupe_key": f"{tag}-{i}", "requester": "bench",
         "requester_name": "", "conversation": None, "text": "", "playbook": "noop", "params": {},
         "state": "queued", "created_at": now, "updated_at": now, "run_after": now, "tokens": 0,
         "cost": 0.0, "steps_run": 0, "version": 0}
        for i in range(n)
    ]  # fmt: skip
    for start in range(0, n, 5000):
        chunk = rows[start : start + 5000]
        db.run_sync(partial(_insert, chunk))


def _insert(rows: list[dict[str, Any]], tx: Tx) -> None:
    tx.conn.execute(insert(TASK), rows)
