"""The deployment's figures for /metrics, read on a connection and thread of their own.

Never on the group-commit thread that serves intake and acks: `SnapshotReader.current`
answers at once with the latest snapshot, fresh when it can be read within a few
milliseconds (`budget`), else the one before (its age is a metric), and starts the
next read; at most one read runs at a time. The statements are in
`tasks.store.statements`; the task table is read in one pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import Connection, Engine

from tasks.store import statements
from tasks.store.db import make_engine
from tasks.store.dialects import Dialect, dialect_of, normalize_url
from tasks.store.views import Figures


def read_figures(conn: Connection, dialect: Dialect, now: datetime, buckets: Sequence[float]) -> Figures:
    """Every database figure of a scrape, in one transaction; step latency counted into `buckets`."""
    figures = Figures()
    for state, n, tokens, dollars in conn.execute(statements.TASKS_BY_STATE):
        figures.tasks[str(state)] = int(n)
        figures.tokens += int(tokens or 0)
        figures.dollars += float(dollars or 0.0)
    figures.outbox = {str(s): int(n) for s, n in conn.execute(statements.OUTBOX_BY_STATE)}
    figures.runnable = int(conn.execute(statements.runnable(now)).scalar_one())
    figures.approvals_pending = int(conn.execute(statements.APPROVALS_WAITING).scalar_one())
    rows = conn.execute(statements.step_seconds(dialect, buckets))
    figures.step_seconds = {str(r[0]): ([int(v or 0) for v in r[3:]], int(r[1]), float(r[2] or 0.0)) for r in rows}
    return figures


class SnapshotReader:
    """Reads `Figures` on a connection and thread of its own (see the module)."""

    def __init__(self, url: str, buckets: Sequence[float], *, min_interval: float = 2.0, budget: float = 0.005):
        self.url = normalize_url(url)
        self.dialect = dialect_of(self.url)
        self.buckets = tuple(buckets)
        self.min_interval = min_interval  # seconds between reads, at least
        self.budget = budget  # how long a scrape waits for a fresh read
        self.snapshot: Figures | None = None
        self.read_at = -math.inf  # time.monotonic() when the last read ended
        self.error: Exception | None = None
        self._reading: asyncio.Task[None] | None = None
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def current(self, now: datetime) -> Figures:
        """The latest snapshot (waiting for the first); raises the last read's error."""
        if self._reading is None and time.monotonic() - self.read_at >= self.min_interval:
            self._reading = asyncio.create_task(self._read(now))
        if self._reading is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reading), None if self.snapshot is None else self.budget)
        if self.error is not None:
            raise self.error
        assert self.snapshot is not None
        return self.snapshot

    async def refresh(self, now: datetime) -> Figures:
        """Read a snapshot now (after any read under way)."""
        if self._reading is not None:
            await asyncio.shield(self._reading)
        self._reading = asyncio.create_task(self._read(now))
        await asyncio.shield(self._reading)
        return await self.current(now)

    async def _read(self, now: datetime) -> None:
        try:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="cowork-metrics")
            snap = await asyncio.get_running_loop().run_in_executor(self._thread, self._read_sync, now)
        except Exception as e:
            self.error = e
        else:
            self.snapshot, self.error = snap, None
        finally:
            self.read_at = time.monotonic()
            self._reading = None

    def _read_sync(self, now: datetime) -> Figures:
        if self._engine is None:
            self._engine = make_engine(self.url, reader=True)
        with self._engine.connect() as conn, conn.begin():
            return read_figures(conn, self.dialect, now, self.buckets)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._engine is not None:
            self._engine.dispose()
