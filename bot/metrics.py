"""GET /metrics in Prometheus text format.

Read from the database, so every web process shows the whole deployment:
tasks by state, outbox rows by state, the queue depth (tasks a worker could
claim now), approvals waiting, a histogram of effectful step latency (intent
to outcome) by skill, and tokens and dollars spent. Kept by this process:
deliveries by platform and outcome, and rate-limit answers (429s and our own
pacing) by platform, and rows pruned past their retention.

The database figures are a snapshot (`SnapshotReader`) read on a connection
and thread of their own, never on the group-commit thread that serves intake
and acks: a scrape answers at once with the latest snapshot, fresh when it can
be read within a few milliseconds, else the one before (its age is a metric),
and starts the next read; at most one read runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from sqlalchemy import Connection, Engine, case, func, or_, select

from tasks.clock import utcnow
from tasks.db import is_sqlite, make_engine
from tasks.models import READY, Approval, Outbox, Step, Task

TASK = Task.__table__  # type: ignore[attr-defined]
STEP = Step.__table__  # type: ignore[attr-defined]
APPROVAL = Approval.__table__  # type: ignore[attr-defined]
OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Snapshot:
    """What one scrape read from the database."""

    tasks: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    runnable: int = 0
    approvals_pending: int = 0
    tokens: int = 0
    dollars: float = 0.0
    # skill -> (cumulative counts per bucket, count, sum of seconds)
    step_seconds: dict[str, tuple[list[int], int, float]] = field(default_factory=dict)


def _step_seconds(sqlite: bool) -> Any:
    if sqlite:
        return (func.julianday(STEP.c.finished_at) - func.julianday(STEP.c.started_at)) * 86400.0
    return func.extract("epoch", STEP.c.finished_at - STEP.c.started_at)


def read_snapshot(conn: Connection, sqlite: bool, now: datetime) -> Snapshot:
    """Every database figure of a scrape, in one transaction: one pass over the
    task table, one over the outbox, the steps for the histogram."""
    snap = Snapshot()
    rows = conn.execute(select(TASK.c.state, func.count(), func.sum(TASK.c.tokens), func.sum(TASK.c.cost))
                        .group_by(TASK.c.state))  # fmt: skip
    for state, n, tokens, dollars in rows:
        snap.tasks[str(state)] = int(n)
        snap.tokens += int(tokens or 0)
        snap.dollars += float(dollars or 0.0)
    snap.outbox = {str(s): int(n) for s, n in conn.execute(select(OUTBOX.c.state, func.count())
                                                           .group_by(OUTBOX.c.state))}  # fmt: skip
    snap.runnable = int(conn.execute(select(func.count()).select_from(TASK).where(
        READY, TASK.c.run_after <= now,
        or_(TASK.c.lease_holder.is_(None), TASK.c.lease_expires_at < now),
    )).scalar_one())  # fmt: skip
    snap.approvals_pending = int(conn.execute(
        select(func.count()).select_from(APPROVAL).where(APPROVAL.c.state == "pending")
    ).scalar_one())  # fmt: skip
    snap.step_seconds = _histogram(conn, sqlite)
    return snap


def _histogram(conn: Connection, sqlite: bool) -> dict[str, tuple[list[int], int, float]]:
    """Steps by skill and by the first bucket their latency fits, in one pass;
    made cumulative here."""
    timed = (
        select(STEP.c.skill, _step_seconds(sqlite).label("seconds"))
        .where(STEP.c.started_at.is_not(None), STEP.c.finished_at.is_not(None))
        .subquery()
    )
    bucket = case(*((timed.c.seconds <= b, i) for i, b in enumerate(BUCKETS)), else_=len(BUCKETS)).label("bucket")
    rows = conn.execute(select(timed.c.skill, bucket, func.count(), func.sum(timed.c.seconds))
                        .group_by(timed.c.skill, bucket))  # fmt: skip
    out: dict[str, tuple[list[int], int, float]] = {}
    for skill, i, n, total in rows:
        counts, count, seconds = out.get(str(skill), ([0] * len(BUCKETS), 0, 0.0))
        for j in range(int(i), len(BUCKETS)):
            counts[j] += int(n)
        out[str(skill)] = (counts, count + int(n), seconds + float(total or 0.0))
    return out


class SnapshotReader:
    """Reads `Snapshot`s on a connection and thread of its own (see the module)."""

    def __init__(self, url: str, *, min_interval: float = 2.0, budget: float = 0.005):
        self.url = url
        self.sqlite = is_sqlite(url)
        self.min_interval = min_interval  # seconds between reads, at least
        self.budget = budget  # how long a scrape waits for a fresh read
        self.snapshot: Snapshot | None = None
        self.read_at = -math.inf  # time.monotonic() when the last read ended
        self.error: Exception | None = None
        self._reading: asyncio.Task[None] | None = None
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def current(self, now: datetime) -> Snapshot:
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

    async def refresh(self, now: datetime) -> Snapshot:
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

    def _read_sync(self, now: datetime) -> Snapshot:
        if self._engine is None:
            self._engine = make_engine(self.url, reader=True)
        with self._engine.connect() as conn, conn.begin():
            return read_snapshot(conn, self.sqlite, now)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._engine is not None:
            self._engine.dispose()


class DatabaseCollector:
    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.age = 0.0

    def collect(self) -> Any:
        s = self.snapshot
        for name, help_text, values in (("tasks", "Tasks by state", s.tasks),
                                        ("outbox", "Outbox rows by state", s.outbox)):  # fmt: skip
            g = GaugeMetricFamily(f"cowork_{name}", help_text, labels=["state"])
            for state, n in sorted(values.items()):
                g.add_metric([state], n)
            yield g
        yield GaugeMetricFamily("cowork_queue_depth", "Tasks a worker could claim now", value=s.runnable)
        yield GaugeMetricFamily("cowork_approvals_waiting", "Approval requests waiting for a person",
                                value=s.approvals_pending)  # fmt: skip
        yield CounterMetricFamily("cowork_tokens", "LLM tokens spent by all tasks", value=s.tokens)
        yield CounterMetricFamily("cowork_cost_dollars", "Dollars spent by all tasks", value=s.dollars)
        h = HistogramMetricFamily("cowork_step_seconds", "Effectful step latency, intent to outcome",
                                  labels=["skill"])  # fmt: skip
        for skill, (cumulative, count, total) in sorted(s.step_seconds.items()):
            buckets = [(str(b), n) for b, n in zip(BUCKETS, cumulative, strict=True)]
            h.add_metric([skill], [*buckets, ("+Inf", count)], total)
        yield h
        yield GaugeMetricFamily("cowork_metrics_age_seconds", "How long ago the database figures above were read",
                                value=self.age)  # fmt: skip


class PrunedCollector:
    """Rows this process's background prune removed, by table."""

    def __init__(self, removed: Mapping[str, int]) -> None:
        self.removed = removed

    def collect(self) -> Any:
        c = CounterMetricFamily("cowork_pruned_rows", "Rows pruned past their retention by this process",
                                labels=["table"])  # fmt: skip
        for table, n in sorted(self.removed.items()):
            c.add_metric([table], n)
        yield c


class Metrics:
    def __init__(self) -> None:
        self.reader: SnapshotReader | None = None
        self.registry = CollectorRegistry()
        self.db = DatabaseCollector()
        self.registry.register(self.db)
        self.deliveries = Counter("cowork_deliveries", "Outbox deliveries by platform and outcome",
                                  ["platform", "outcome"], registry=self.registry)  # fmt: skip
        self.throttled = Counter("cowork_rate_limited", "Deliveries told to wait (429, Retry-After, pacing)",
                                 ["platform"], registry=self.registry)  # fmt: skip
        self.delivery_role = Gauge("cowork_delivery_role", "1 while this process delivers to the rate-limited"
                                   " platforms for every process", registry=self.registry)  # fmt: skip

    def delivered(self, platform: str, outcome: str) -> None:
        self.deliveries.labels(platform, outcome).inc()
        if outcome == "throttled":
            self.throttled.labels(platform).inc()

    async def scrape(self, reader: SnapshotReader, now: datetime) -> bytes:
        self.db.snapshot = await reader.current(now)
        self.db.age = max(0.0, time.monotonic() - reader.read_at)
        return generate_latest(self.registry)


def mount_metrics(app: web.Application, runtime: Any) -> Metrics:
    metrics = Metrics()
    runtime.metrics = metrics
    runtime.delivery.on_result = metrics.delivered
    metrics.delivery_role.set_function(lambda: float(runtime.delivery.leading))
    pruner = getattr(runtime, "pruner", None)
    if pruner is not None:
        metrics.registry.register(PrunedCollector(pruner.removed))

    reader = metrics.reader = SnapshotReader(runtime.db.url)

    async def close(_app: web.Application) -> None:
        await asyncio.to_thread(reader.close)

    app.on_cleanup.append(close)

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await metrics.scrape(reader, getattr(runtime, "clock", utcnow)())
        except Exception as e:  # the database is down: say so, the way /healthz?ready=1 does
            return web.json_response({"status": "unavailable", "database": str(e)[:200]}, status=503)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", handler)
    return metrics
