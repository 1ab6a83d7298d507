"""Observability: /metrics in Prometheus format with the figures an operator
watches, /healthz liveness and readiness, request and task ids on log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, update

from adapters.chat import ConversationRef, DeliveryError, Inbound
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.ops.logs import JsonFormatter
from bot.web.metrics import BUCKETS, SnapshotReader
from bot.web.observability import HEADER, observe, request_id_from, task_context
from bot.web.server import make_app
from tasks.rules.coalescing import FIRST_POST_WAIT
from tasks.skills.base import Skill, StepContext, StepResult
from tasks.store.db import Database
from tasks.store.models import TASK, Step
from tests.conftest import PG_ADMIN, Clock
from tests.fakes.engine_harness import Harness
from tests.fakes.recording import RecordingAdapter
from tests.fakes.slack_api import fake_slack, mention_event, signed_headers

POLICY = """\
defaults: {approval_effects: []}
scopes:
  - match: {channel: needs-ok}
    approval_effects: [write]
"""


@pytest.fixture
async def rt(db_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Runtime]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    settings = Settings(DATABASE_URL=db_url, COWORK_POLICY=str(tmp_path / "policy.yaml"))
    runtime = Runtime(settings, clock=clock, adapters={"console": RecordingAdapter()})
    yield runtime
    runtime.close()


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = make_app(rt, console=False)
    observe(app)
    async with TestClient(TestServer(app)) as c:
        yield c


def ask(text: str, event_id: str, channel: str = "general") -> Inbound:
    conv = ConversationRef("console", "t1", channel, thread=f"root-{event_id}")
    return Inbound("console", "t1", event_id, "alice", text, conv, user_name="Alice")


async def scrape(client: TestClient[web.Request, web.Application]) -> dict[str, dict[tuple[str, ...], float]]:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(f"{k}={v}" for k, v in sorted(s.labels.items()))] = s.value
    return out


async def test_metrics_show_tasks_queue_approvals_step_latency_and_spend(
    rt: Runtime, client: TestClient[web.Request, web.Application], clock: Clock
) -> None:
    await rt.conversation.handle_message(ask("run announce channel=eng text=hi", "e1"))
    await rt.conversation.handle_message(ask("run announce channel=eng text=ok", "e2", "needs-ok"))
    await rt.engine.drain()
    await rt.delivery.drain()  # the post is accepted,
    await rt.engine.drain()  # so its step ends the task
    await rt.conversation.handle_message(ask("run announce channel=eng text=later", "e3"))
    await rt.db.run(lambda tx: tx.conn.execute(update(TASK).where(TASK.c.id == 1)
                                               .values(tokens=1200, cost=0.42)))  # fmt: skip
    m = await scrape(client)
    assert m["cowork_tasks"] == {("state=queued",): 1, ("state=succeeded",): 1, ("state=waiting_approval",): 1}
    assert m["cowork_queue_depth"][()] == 1
    assert m["cowork_approvals_waiting"][()] == 1
    assert m["cowork_step_seconds_count"] == {("skill=chat.post",): 1}
    assert m["cowork_step_seconds_bucket"][("le=0.01", "skill=chat.post")] == 1
    assert m["cowork_tokens_total"][()] == 1200
    assert m["cowork_cost_dollars_total"][()] == pytest.approx(0.42)
    assert m["cowork_outbox"][("state=pending",)] >= 3


async def test_metrics_follow_the_database_a_read_at_a_time(
    rt: Runtime, client: TestClient[web.Request, web.Application], clock: Clock
) -> None:
    await rt.conversation.handle_message(ask("run announce channel=eng text=hi", "e1"))
    first = await scrape(client)
    assert first["cowork_tasks"] == {("state=queued",): 1} and first["cowork_queue_depth"][()] == 1
    await rt.conversation.handle_message(ask("run announce channel=eng text=again", "e2"))
    await rt.engine.drain()
    reader = rt.metrics.reader  # type: ignore[attr-defined]
    reader.min_interval = 3600.0  # no new read until asked: the scrape shows the snapshot it has, and its age
    assert (await scrape(client))["cowork_tasks"] == {("state=queued",): 1}
    assert (await scrape(client))["cowork_metrics_age_seconds"][()] >= 0
    await reader.refresh(clock())
    now = await scrape(client)
    assert now["cowork_tasks"] == {("state=running",): 2} and now["cowork_queue_depth"][()] == 0
    assert now["cowork_outbox"][("state=pending",)] >= 4


async def test_step_latency_histogram_counts_each_step_in_every_bucket_it_fits(db_url: str, clock: Clock) -> None:
    db = Database(db_url)
    h = Harness(db, clock)
    task_id = await h.submit("t", steps=[{"key": f"s{i}", "skill": "wait", "args": {}} for i in range(4)])
    start = clock()
    for i, seconds in enumerate((0.005, 0.2, 100.0, 1000.0)):
        await db.run(lambda tx, i=i, seconds=seconds: tx.conn.execute(
            insert(Step.__table__).values(task_id=task_id, key=f"s{i}", skill="wait", position=i, state="succeeded",
                                          attempts=1, tokens=0, cost=0.0, started_at=start,
                                          finished_at=start + timedelta(seconds=seconds))))  # fmt: skip
    db.close()
    reader = SnapshotReader(db_url)
    try:
        snap = await reader.refresh(clock())
    finally:
        reader.close()
    cumulative, count, total = snap.step_seconds["wait"]
    assert dict(zip(BUCKETS, cumulative, strict=True)) == {
        0.01: 1,
        0.05: 1,
        0.1: 1,
        0.25: 2,
        0.5: 2,
        1.0: 2,
        2.5: 2,
        5.0: 2,
        10.0: 2,
        30.0: 2,
        60.0: 2,
        300.0: 3,
    }
    assert count == 4 and total == pytest.approx(1100.205, abs=0.01)
    assert snap.tasks == {"queued": 1}


async def test_metrics_answer_while_the_intake_database_thread_is_busy(
    rt: Runtime, client: TestClient[web.Request, web.Application]
) -> None:
    await rt.conversation.handle_message(ask("run announce channel=eng text=hi", "e1"))
    gate = threading.Event()
    busy = asyncio.ensure_future(rt.db.run(lambda tx: gate.wait(30)))  # holds the group-commit thread
    try:
        m = await asyncio.wait_for(scrape(client), 10)
        assert m["cowork_tasks"] == {("state=queued",): 1}
        assert not busy.done()  # answered while intake's thread was still held
    finally:
        gate.set()
        await busy


async def test_deliveries_and_rate_limit_answers_are_counted(
    rt: Runtime, client: TestClient[web.Request, web.Application], clock: Clock
) -> None:
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    chat.fail_next = [DeliveryError("console: ratelimited", retry_after=5.0)]
    await rt.conversation.handle_message(ask("run announce channel=eng text=hi", "e1"))
    clock.advance(FIRST_POST_WAIT)  # the new task's card waits a moment for its plan
    await rt.delivery.drain()
    clock.advance(10)
    await rt.delivery.drain()
    m = await scrape(client)
    assert m["cowork_rate_limited_total"] == {("platform=console",): 1}
    assert m["cowork_deliveries_total"][("outcome=throttled", "platform=console")] == 1
    assert m["cowork_deliveries_total"][("outcome=sent", "platform=console")] == 1
    assert m["cowork_delivery_role"][()] == 0  # burst mode (drain) asks for no role
    await rt.delivery.lead()
    assert (await scrape(client))["cowork_delivery_role"][()] == 1


async def test_healthz_answers_liveness_and_readiness(client: TestClient[web.Request, web.Application]) -> None:
    live = await client.get("/healthz")
    ready = await client.get("/healthz?ready=1")
    assert (live.status, await live.json()) == (200, {"status": "ok"})
    assert (ready.status, await ready.json()) == (200, {"status": "ok", "database": "ok"})


def _refuse_connections(name: str, refuse: bool) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')  # type: ignore[arg-type]
        if refuse:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@pytest.mark.postgres
async def test_readiness_is_503_while_the_database_is_down_and_200_once_it_is_back(pg_url: str, clock: Clock) -> None:
    runtime = Runtime(Settings(DATABASE_URL=pg_url), clock=clock)
    name = pg_url.rsplit("/", 1)[1]
    try:
        async with TestClient(TestServer(make_app(runtime, console=False))) as c:
            assert (await c.get("/healthz?ready=1")).status == 200
            _refuse_connections(name, True)
            down = await c.get("/healthz?ready=1")
            assert down.status == 503 and (await down.json())["status"] == "unavailable"
            assert (await c.get("/healthz")).status == 200  # alive all the same: do not restart it
            assert (await c.get("/metrics")).status == 503
            _refuse_connections(name, False)
            assert (await c.get("/healthz?ready=1")).status == 200
    finally:
        _refuse_connections(name, False)
        runtime.close()


def test_request_id_from_the_caller_is_kept_only_when_it_is_a_plain_token() -> None:
    assert request_id_from("abc-123.x") == "abc-123.x"
    for bad in (None, "", "a b", "x" * 65, "id\u2028evil", '"><script>'):
        got = request_id_from(bad)
        assert len(got) == 32 and got != bad


@pytest.mark.postgres
async def test_slack_events_get_503_while_the_database_is_down_and_make_one_task_when_sent_again(
    pg_url: str, clock: Clock
) -> None:
    async with fake_slack() as slack:
        settings = Settings(DATABASE_URL=pg_url, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="shh",
                            SLACK_API_URL=slack.base_url)  # fmt: skip
        runtime = Runtime(settings, clock=clock)
        name = pg_url.rsplit("/", 1)[1]
        body = json.dumps(mention_event("run noop", event_id="EvDown"))
        try:
            async with TestClient(TestServer(make_app(runtime, console=False))) as c:
                _refuse_connections(name, True)
                down = await c.post("/slack/events", data=body, headers=signed_headers(body, "shh"))
                assert down.status == 503 and down.headers["Retry-After"] == "1"
                _refuse_connections(name, False)
                again = await c.post("/slack/events", data=body, headers=signed_headers(body, "shh"))  # Slack's retry
                assert again.status == 200
            tasks = await runtime.store.list_tasks()
            assert [t.dedupe_key for t in tasks] == ["EvDown"]
        finally:
            _refuse_connections(name, False)
            runtime.close()


class Lines:
    """JSON log lines, as an operator's collector would get them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())

    def __enter__(self) -> Lines:
        root = logging.getLogger()
        root.addHandler(self.handler)
        self.level = root.level
        root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)
        logging.getLogger().setLevel(self.level)

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


async def test_every_request_gets_an_id_on_its_answer_and_its_log_lines(rt: Runtime, clock: Clock) -> None:
    app = make_app(rt, console=False)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app.router.add_get("/broken", broken)
    observe(app)
    with Lines() as lines:
        async with TestClient(TestServer(app)) as c:
            mine = await c.get("/broken", headers={HEADER: "req-7"})
            fresh = await c.get("/nowhere")
    assert mine.status == 500 and mine.headers[HEADER] == "req-7"
    assert fresh.status == 404 and len(fresh.headers[HEADER]) == 32
    by_id = [r for r in lines.records() if r.get("request_id") == "req-7"]
    assert {r["logger"] for r in by_id} == {"bot.web.server", "cowork.http"}
    assert any(r["msg"] == "GET /broken 500" or str(r["msg"]).startswith("GET /broken 500 ") for r in by_id)
    assert any(r.get("request_id") == fresh.headers[HEADER] for r in lines.records())


class Chatty(Skill):
    """Logs from inside a step, as a skill's library would."""

    name = "test.chatty"

    async def run(self, ctx: StepContext, args: dict[str, Any]) -> StepResult:
        await asyncio.sleep(0)  # let the sibling step start: the two run concurrently
        logging.getLogger("some.library").warning("step %s says hello", ctx.step_key)
        return StepResult(output={})


async def test_log_lines_of_a_turn_and_of_its_concurrent_steps_carry_its_task_id(db: Database, clock: Clock) -> None:
    observe(web.Application())
    h = Harness(db, clock, extra=[Chatty()])
    steps = [{"key": k, "skill": "test.chatty"} for k in ("a", "b")]
    first = await h.submit("one", steps=steps, key="k1")
    second = await h.submit("two", steps=steps, key="k2")
    with Lines() as lines:
        await h.drain()
        with task_context(7):
            logging.getLogger("x").warning("bound by hand")
        logging.getLogger("x").warning("outside")
    got = {r["msg"]: r.get("task_id") for r in lines.records()}
    by_task = sorted((r["msg"], r.get("task_id")) for r in lines.records() if str(r["msg"]).startswith("step"))
    assert by_task == sorted((f"step {k} says hello", t) for k in ("a", "b") for t in (first, second))
    assert got["bound by hand"] == 7 and got["outside"] is None
