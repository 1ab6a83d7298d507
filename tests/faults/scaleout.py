"""Scale-out on PostgreSQL: web processes (`cowork serve --no-worker`) take
signed Slack events, worker processes (`cowork worker`) run the tasks, the
web processes deliver to a fake Slack Web API on loopback. Every task must run
exactly once end to end: one task per event (redeliveries included), one
effect post per task, one step intent per step.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.slack_api import FakeSlack, fake_slack, mention_event, signed_headers
from tests.faults.audit import read_books
from tests.faults.crash import Progress
from tests.faults.fleet import Fleet, base_env, wait_http

SECRET = "load-signing-secret"
TOKEN = "xoxb-load-test-token"
PING = """\
name: ping
description: post one message in the thread
params:
  text: {type: string}
steps:
  - {key: post, skill: chat.post, args: {text: "{{ text }}"}}
"""
EFFECT = re.compile(r"ping-(\d+)-x")


@dataclass(frozen=True)
class LoadPlan:
    tasks: int = 300
    webs: int = 2
    workers: int = 3
    concurrency: int = 16
    redeliver_every: int = 10  # every n-th event is sent twice, as Slack retries do
    within: float = 300.0


def slack_env(folder: Path, url: str, slack: FakeSlack) -> dict[str, str]:
    books = folder / "playbooks"
    books.mkdir(parents=True, exist_ok=True)
    (books / "ping.yaml").write_text(PING)
    (folder / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    return base_env(
        DATABASE_URL=url, SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.base_url, COWORK_POLICY=str(folder / "policy.yaml"),
        COWORK_PLAYBOOKS=str(books),
    )  # fmt: skip


async def start_fleet(fleet: Fleet, webs: int, workers: int) -> list[str]:
    urls = [fleet.web(f"web{i}") for i in range(webs)]
    for i in range(workers):
        fleet.worker(f"w{i}")
    await asyncio.gather(*(wait_http(f"{u}/healthz?ready=1", 60) for u in urls))
    return urls


class Sender:
    """Signed Slack events to the web processes, round robin, with ack timings."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str]):
        self.http, self.urls = http, urls
        self.acks: list[float] = []
        self.statuses: dict[int, int] = {}

    async def mention(self, i: int, text: str, *, retry: int = 0) -> int:
        body = json.dumps(mention_event(text, event_id=f"Ev{i}", channel=f"C{i}", ts=f"1700000000.{i:06d}"))
        headers = signed_headers(body, SECRET)
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        t0 = time.perf_counter()
        async with self.http.post(f"{self.urls[(i + retry) % len(self.urls)]}/slack/events",
                                  data=body.encode(), headers=headers) as r:  # fmt: skip
            await r.read()
            self.acks.append(time.perf_counter() - t0)
        self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
        return r.status


async def bounded(n: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await job(i)

    await asyncio.gather(*(one(i) for i in range(n)))


def effect_posts(slack: FakeSlack) -> dict[int, int]:
    """Posts of each task's effect message (not its card or summary)."""
    out: dict[int, int] = {}
    for call in slack.called("chat.postMessage"):
        m = EFFECT.fullmatch(str(call.args.get("text", "")).strip())
        if m:
            out[int(m.group(1))] = out.get(int(m.group(1)), 0) + 1
    return out


async def until(pred: Callable[[], Awaitable[bool] | bool], within: float) -> float:
    t0 = time.monotonic()
    while True:
        got = pred()
        if await got if isinstance(got, Awaitable) else got:
            return time.monotonic() - t0
        if time.monotonic() - t0 > within:
            raise TimeoutError(f"not done within {within:g}s")
        await asyncio.sleep(0.1)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 1) if s else 0.0


async def run_load(url: str, folder: Path, plan: LoadPlan) -> dict[str, Any]:
    async with fake_slack() as slack:
        fleet = Fleet(folder, slack_env(folder, url, slack))
        progress = Progress(url)
        try:
            urls = await start_fleet(fleet, plan.webs, plan.workers)
            return await _load(slack, urls, progress, plan, url)
        finally:
            fleet.stop()
            progress.close()


async def _load(slack: FakeSlack, urls: list[str], progress: Progress, plan: LoadPlan,
                url: str) -> dict[str, Any]:  # fmt: skip
    async with aiohttp.ClientSession() as http:
        sender = Sender(http, urls)

        async def send(i: int) -> None:
            await sender.mention(i, f"run ping text=ping-{i}-x")
            if plan.redeliver_every and i % plan.redeliver_every == 0:
                await sender.mention(i, f"run ping text=ping-{i}-x", retry=1)

        t0 = time.monotonic()
        await bounded(plan.tasks, plan.concurrency, send)
        sent = time.monotonic() - t0
        timed_out = False
        try:
            await until(lambda: len(effect_posts(slack)) >= plan.tasks, plan.within)
            await progress.until_done(plan.within)
        except TimeoutError:
            timed_out = True
        done = time.monotonic() - t0
    books = read_books(url, plan.tasks)
    outbox = await outbox_states(url)
    posts = effect_posts(slack)
    return {
        "tasks": plan.tasks, "web_processes": plan.webs, "worker_processes": plan.workers,
        "events_sent": len(sender.acks), "ack_statuses": sender.statuses,
        "ack_p50_ms": pct(sender.acks, 0.5), "ack_p99_ms": pct(sender.acks, 0.99),
        "send_seconds": round(sent, 2), "end_to_end_seconds": round(done, 2),
        "tasks_per_second": round(plan.tasks / done, 1),
        "tasks_in_db": books.tasks, "states": dict(books.states),
        "effect_posts": sum(posts.values()), "tasks_posted_twice": sum(1 for n in posts.values() if n > 1),
        "steps_with_repeated_intent": sum(1 for n in books.intents.values() if n > 1),
        "outbox": outbox, "timed_out": timed_out,
        "slack_calls": dict(Counter(c.method for c in slack.calls)),
        "problems": books.problems() + (["timed out"] if timed_out else []),
    }  # fmt: skip


async def outbox_states(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    from tasks.store.db import normalize_url

    def q() -> dict[str, int]:
        engine = create_engine(normalize_url(url))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind || ':' || state, count(*) FROM outbox GROUP BY 1"))
            got = {str(k): int(n) for k, n in rows}
        engine.dispose()
        return got

    return await asyncio.to_thread(q)
