"""What every outage scenario shares: a steady stream of people's requests
(signed Slack events or Teams activities) that keeps coming through the fault
and is redelivered until acknowledged, as the platforms do; the timeline of
faults; and the verdict read from the database and from what the fake
platform received.

Pass means: every acknowledged request has exactly one task, every task ended
and its final card and summary were delivered (a person can see how it ended),
no step effect and no message was made or delivered twice, and the bot was
back at work within `RECOVERY_LIMIT` seconds of each fault ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text

from tasks.store.db import normalize_url
from tests.fakes.bot_connector import FakeBotConnector, teams_activity
from tests.fakes.slack_api import FakeSlack, mention_event, signed_headers
from tests.faults.audit import read_books
from tests.faults.fleet import Fleet, base_env, wait_http
from tests.faults.scaleout import PING, SECRET, TOKEN

RECOVERY_LIMIT = 5.0
Send = Callable[[int, int], Awaitable[int]]  # (request number, redelivery number) -> HTTP status
DELIVERED_AFTER = ("SELECT min(extract(epoch FROM sent_at)) FROM outbox WHERE attempts > 1"
                   " AND extract(epoch FROM sent_at) >= :since")  # fmt: skip
WORK = "('plan.ready', 'step.intent', 'step.succeeded', 'step.retry', 'step.failed')"
WORK_AFTER = f"SELECT min(extract(epoch FROM at)) FROM event WHERE kind IN {WORK} AND extract(epoch FROM at) >= :since"


def write_ping(folder: Path) -> dict[str, str]:
    books = folder / "playbooks"
    books.mkdir(parents=True, exist_ok=True)
    (books / "ping.yaml").write_text(PING)
    (folder / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    return {"COWORK_POLICY": str(folder / "policy.yaml"), "COWORK_PLAYBOOKS": str(books)}


def slack_env(folder: Path, url: str, api_url: str, **extra: str) -> dict[str, str]:
    return base_env(DATABASE_URL=url, SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=api_url,
                    **write_ping(folder), **extra)  # fmt: skip


def teams_env(folder: Path, url: str, **extra: str) -> dict[str, str]:
    return base_env(DATABASE_URL=url, COWORK_TEAMS="1", **write_ping(folder), **extra)


async def start_bot(fleet: Fleet, workers: int) -> str:
    """One web process (endpoints and delivery) and `workers` worker processes."""
    web = fleet.web("web")
    for i in range(workers):
        fleet.worker(f"w{i}")
    await wait_http(f"{web}/healthz?ready=1", 60)
    return web


def slack_sender(http: aiohttp.ClientSession, web: str, say: Callable[[int], str]) -> Send:
    async def send(i: int, retry: int) -> int:
        body = json.dumps(mention_event(say(i), event_id=f"Ev{i}", channel=f"C{i}", ts=f"1700000000.{i:06d}"))
        headers = signed_headers(body, SECRET)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_error"}
        async with http.post(f"{web}/slack/events", data=body.encode(), headers=headers) as r:
            await r.read()
            return r.status

    return send


def teams_id(i: int) -> str:
    return str(1700000000000 + i)


def teams_sender(http: aiohttp.ClientSession, web: str, service_url: str, say: Callable[[int], str]) -> Send:
    async def send(i: int, retry: int) -> int:
        activity = teams_activity(service_url, id=teams_id(i), text=say(i))
        async with http.post(f"{web}/api/messages", json=activity) as r:
            await r.read()
            return r.status

    return send


@dataclass
class Feed:
    """People asking the bot for work at a steady `rate`; a request that is not
    acknowledged with 200 is redelivered (as Slack and Teams do) until it is."""

    send: Send
    rate: float
    statuses: Counter[int] = field(default_factory=Counter)
    acked: set[int] = field(default_factory=set)
    redeliveries: int = 0
    sent: int = 0
    _jobs: list[asyncio.Task[None]] = field(default_factory=list)
    _runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """No new requests; redeliveries of the unacknowledged ones go on."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def settle(self, within: float) -> None:
        async with asyncio.timeout(within):
            await asyncio.gather(*self._jobs)

    async def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            self._jobs.append(asyncio.create_task(self._one(self.sent)))
            self.sent += 1
            await asyncio.sleep(max(0.0, t0 + self.sent / self.rate - time.monotonic()))

    async def _one(self, i: int) -> None:
        retry = 0
        while True:
            try:
                status = await self.send(i, retry)
            except (aiohttp.ClientError, OSError):
                status = 0
            self.statuses[status] += 1
            if status == 200:
                self.acked.add(i)
                return
            retry += 1
            self.redeliveries += 1
            await asyncio.sleep(min(2.0, 0.25 * 2**retry))


@dataclass(frozen=True)
class Pace:
    """How a scenario is paced: requests per second (through the faults), worker
    processes, seconds of normal work around the faults, seconds to settle."""

    rate: float = 2.0
    workers: int = 2
    calm: float = 3.0
    within: float = 120.0


async def begin(feed: Feed, db: Db, calm: float) -> None:
    """Requests start coming; once a worker has done some of them (the
    processes are up, which takes a while on a loaded machine), `calm`
    seconds of normal work before the first fault."""
    feed.start()
    await db.until(f"SELECT EXISTS (SELECT 1 FROM event WHERE kind IN {WORK})", 90)
    await asyncio.sleep(calm)


async def finish(feed: Feed, db: Db, pace: Pace) -> bool:
    """`calm` seconds of normal work after the last fault, then no new requests;
    whether every request was taken and every task ended and was delivered."""
    await asyncio.sleep(pace.calm)
    await feed.stop()
    try:
        await feed.settle(pace.within)
        await db.settled(len(feed.acked), pace.within)
    except TimeoutError:
        return False
    return True


@dataclass
class Timeline:
    """When each fault ended (wall clock, comparable with the database's times)."""

    ends: dict[str, float] = field(default_factory=dict)

    def ended(self, name: str) -> None:
        self.ends[name] = time.time()


class Db:
    """Read-only questions to the scenario's database, from the harness."""

    def __init__(self, url: str):
        self.engine = create_engine(normalize_url(url), pool_pre_ping=True)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    async def until(self, sql: str, within: float, **params: Any) -> float:
        """Seconds until `sql` gives a true value; errors (database down) count as false."""
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                if await asyncio.to_thread(self.scalar, sql, **params):
                    return time.monotonic() - t0
            if time.monotonic() - t0 > within:
                raise TimeoutError(f"not within {within:g}s: {sql}")
            await asyncio.sleep(0.2)

    async def settled(self, tasks: int, within: float) -> float:
        """Until `tasks` tasks exist, all ended, and nothing is left to deliver."""
        return await self.until(
            "SELECT (SELECT count(*) FROM task) >= :n"
            " AND NOT EXISTS (SELECT 1 FROM task WHERE state NOT IN ('succeeded', 'failed', 'cancelled'))"
            " AND NOT EXISTS (SELECT 1 FROM outbox WHERE state IN ('pending', 'sending'))",
            within, n=tasks,
        )  # fmt: skip

    def first_after(self, sql: str, since: float) -> float | None:
        """Seconds from `since` to the earliest epoch time `sql` selects at or after it."""
        got = self.scalar(sql, since=since)
        return None if got is None else round(float(got) - since, 2)

    def work_after(self, since: float) -> float | None:
        """A worker made progress: the first step or plan checkpoint after `since`."""
        return self.first_after(WORK_AFTER, since)

    def delivery_after(self, since: float) -> float | None:
        """A row held back by a failed delivery was delivered after `since`."""
        return self.first_after(DELIVERED_AFTER, since)

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Delivered:
    """What the platform fake shows a person: posts per conversation, and (Slack)
    per outbox key named in the message metadata."""

    by_conversation: Counter[str]
    by_key: Counter[str] | None
    effects: Counter[str]  # texts of chat.post effect messages, as posted


def slack_delivered(slack: FakeSlack, effect: Callable[[str], str | None]) -> Delivered:
    by_conv: Counter[str] = Counter()
    by_key: Counter[str] = Counter()
    effects: Counter[str] = Counter()
    for channel, msgs in slack.messages.items():
        for m in msgs:
            by_conv[channel] += 1
            by_key[str(((m.get("metadata") or {}).get("event_payload") or {}).get("outbox_key"))] += 1
            if (e := effect(str(m.get("text", "")))) is not None:
                effects[e] += 1
    return Delivered(by_conv, by_key, effects)


def teams_delivered(connector: FakeBotConnector, effect: Callable[[str], str | None]) -> Delivered:
    by_conv: Counter[str] = Counter()
    effects: Counter[str] = Counter()
    for s in connector.posted():
        by_conv[s.conversation] += 1
        if (e := effect(str(s.activity.get("summary", "")))) is not None:
            effects[e] += 1
    return Delivered(by_conv, None, effects)


def slack_conversation(conv: dict[str, Any]) -> str:
    return str(conv.get("channel", ""))


def teams_conversation(conv: dict[str, Any]) -> str:
    from adapters.chat import ConversationRef
    from adapters.teams.inbound import conversation_id

    return conversation_id(ConversationRef.from_json(conv))


def delivery_problems(db: Db, seen: Delivered, where: Callable[[dict[str, Any]], str]) -> list[str]:
    """Every card posted once (then edited), every other row posted once, nothing
    left undelivered or given up on."""
    expected: dict[str, set[str]] = {}
    out: list[str] = []
    for oid, kind, card_key, conv, state, error in db.rows(
        "SELECT id, kind, card_key, conversation, state, error FROM outbox"
    ):
        if state in ("dead", "pending", "sending"):
            out.append(f"outbox row {oid} ({kind}) {state}: {error}")
        if kind != "notice":
            conv = json.loads(conv) if isinstance(conv, str) else conv
            expected.setdefault(where(conv or {}), set()).add(card_key or f"outbox:{oid}")
    for conv, keys in expected.items():
        if seen.by_conversation[conv] != len(keys):
            out.append(f"{conv}: {seen.by_conversation[conv]} messages posted for {len(keys)} cards and messages")
    extra = set(seen.by_conversation) - set(expected)
    out += [f"{conv}: {seen.by_conversation[conv]} messages posted, none expected" for conv in sorted(extra)]
    if seen.by_key is not None:
        out += [f"{key} posted {n} times" for key, n in sorted(seen.by_key.items()) if n > 1]
    out += [f"effect {e!r} posted {n} times" for e, n in sorted(seen.effects.items()) if n > 1]
    return out


def verdict(url: str, feed: Feed, db: Db, seen: Delivered, where: Callable[[dict[str, Any]], str],
            recovery: dict[str, float | None], settled: bool,
            webhook_hits: Mapping[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """The JSON figures and the problems list of one scenario."""
    books = read_books(url, len(feed.acked))
    reasons = Counter(str(e)[:90] for (e,) in db.rows("SELECT error FROM task WHERE state = 'failed'"))
    problems = books.problems(webhook_hits) + delivery_problems(db, seen, where)
    if feed.sent != len(feed.acked):
        problems.append(f"{feed.sent - len(feed.acked)} requests never acknowledged")
    missing = sorted(set(range(feed.sent)) - {i for (i,) in _request_numbers(db)})
    problems += [f"request {i} has no task" for i in missing[:20]]
    late = {k: v for k, v in recovery.items() if v is None or v > RECOVERY_LIMIT}
    problems += [f"not back at work within {RECOVERY_LIMIT:g}s after {k}: {v}" for k, v in late.items()]
    if not settled:
        problems.append("tasks or deliveries still unfinished at the end")
    return {
        "tasks": books.tasks, "requests": feed.sent, "requests_acked": len(feed.acked),
        "redeliveries": feed.redeliveries, "ack_statuses": {str(k): v for k, v in sorted(feed.statuses.items())},
        "ended_by_state": dict(sorted(books.states.items())), "failed_reasons": dict(reasons),
        "lost": len(missing) + books.unfinished(),
        "duplicate_effects": sum(1 for n in books.succeeded.values() if n > 1)
        + sum(1 for n in books.messages.values() if n > 1),
        "duplicate_messages": sum(n - 1 for n in seen.effects.values() if n > 1)
        + sum(n - 1 for n in (seen.by_key or Counter()).values() if n > 1),
        "messages_posted": sum(seen.by_conversation.values()),
        "effect_messages_posted": sum(seen.effects.values()),
        "rows_retried": int(db.scalar("SELECT count(*) FROM outbox WHERE attempts > 1")),
        "outbox": dict(Counter(str(s) for (s,) in db.rows("SELECT state FROM outbox"))),
        "slowest_task_seconds": round(float(db.scalar(
            "SELECT coalesce(max(extract(epoch FROM finished_at - created_at)), 0) FROM task") or 0), 1),
        "recovery_seconds": recovery,
        "problems": problems[:40] + ([f"... and {len(problems) - 40} more"] if len(problems) > 40 else []),
    }  # fmt: skip


def _request_numbers(db: Db) -> Iterable[tuple[int]]:
    """The request number of each task, from its dedupe key (Slack Ev<i>, Teams activity id)."""
    for (key,) in db.rows("SELECT dedupe_key FROM task"):
        digits = "".join(ch for ch in str(key).rsplit(":", 1)[-1] if ch.isdigit())
        n = int(digits) if digits else -1
        yield (n - 1700000000000 if n >= 1700000000000 else n,)
