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
from sqlalchemy import Engine

from tasks.rules.clock import utcnow
from tasks.store.db import make_engine
from tasks.store.dialects import dialect_of
from tasks.store.store import outbox_counts, read_figures
from tasks.store.views import Figures

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Snapshot(Figures):
    """What one read took: the store's figures, and the outbox rows by state."""

    outbox: dict[str, int] = field(default_factory=dict)


class SnapshotReader:
    """Reads `Snapshot`s on a connection and thread of its own (see the module)."""

    def __init__(self, url: str, *, min_interval: float = 2.0, budget: float = 0.005):
        self.url = url
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
            figures = read_figures(conn, dialect_of(self.url), now, BUCKETS)
            return Snapshot(outbox=outbox_counts(conn), **vars(figures))

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
