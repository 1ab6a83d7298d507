"""GET /metrics in Prometheus text format.

Read from the database (through the store) at scrape time, so every web process shows the whole
deployment: tasks by state, outbox rows by state, the queue depth (tasks a
worker could claim now), approvals waiting, a histogram of effectful step
latency (intent to outcome) by skill, and tokens and dollars spent. Kept by
this process: deliveries by platform and outcome, and rate-limit answers
(429s and our own pacing) by platform, and rows pruned past their retention.
"""

from __future__ import annotations

from collections.abc import Mapping
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

from tasks.rules.clock import utcnow
from tasks.store.store import Store
from tasks.store.views import Figures

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Snapshot(Figures):
    """What one scrape read: the store's figures, and the outbox rows by state."""

    outbox: dict[str, int] = field(default_factory=dict)


class DatabaseCollector:
    def __init__(self) -> None:
        self.snapshot = Snapshot()

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

    async def scrape(self, store: Store, outbox: dict[str, int], now: datetime) -> bytes:
        figures = await store.figures(now, BUCKETS)
        self.db.snapshot = Snapshot(outbox=outbox, **vars(figures))
        return generate_latest(self.registry)


def mount_metrics(app: web.Application, runtime: Any) -> Metrics:
    metrics = Metrics()
    runtime.metrics = metrics
    runtime.delivery.on_result = metrics.delivered
    metrics.delivery_role.set_function(lambda: float(runtime.delivery.leading))
    pruner = getattr(runtime, "pruner", None)
    if pruner is not None:
        metrics.registry.register(PrunedCollector(pruner.removed))

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await metrics.scrape(runtime.store, await runtime.outboxes.stats(), utcnow())
        except Exception as e:  # the database is down: say so, the way /healthz?ready=1 does
            return web.json_response({"status": "unavailable", "database": str(e)[:200]}, status=503)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", handler)
    return metrics
