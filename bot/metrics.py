"""GET /metrics in Prometheus text format: gauges read from the database at
scrape time (tasks by state, outbox rows by state, approvals waiting) and
counters kept by this process (deliveries by outcome)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily


class DatabaseCollector:
    def __init__(self) -> None:
        self.snapshot: dict[str, dict[str, int]] = {}

    def collect(self) -> Any:
        for name, help_text in (("tasks", "Tasks by state"), ("outbox", "Outbox rows by state")):
            g = GaugeMetricFamily(f"cowork_{name}", help_text, labels=["state"])
            for state, n in sorted(self.snapshot.get(name, {}).items()):
                g.add_metric([state], n)
            yield g
        yield GaugeMetricFamily("cowork_approvals_waiting", "Tasks waiting for approval",
                                value=self.snapshot.get("tasks", {}).get("waiting_approval", 0))  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.db = DatabaseCollector()
        self.registry.register(self.db)  # type: ignore[arg-type]
        self.deliveries = Counter("cowork_deliveries", "Outbox deliveries by platform and outcome",
                                  ["platform", "outcome"], registry=self.registry)  # fmt: skip

    def delivered(self, platform: str, outcome: str) -> None:
        self.deliveries.labels(platform, outcome).inc()


def mount_metrics(app: web.Application, runtime: Any) -> Metrics:
    metrics = Metrics()
    runtime.metrics = metrics
    runtime.delivery.on_result = metrics.delivered

    async def handler(request: web.Request) -> web.Response:
        metrics.db.snapshot = {
            "tasks": await runtime.store.counts_by_state(),
            "outbox": await runtime.outboxes.stats(),
        }
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", handler)
    return metrics
