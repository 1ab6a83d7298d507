"""The chat platform misbehaving while people keep asking for work: the fake
Slack Web API answering 429 (with Retry-After) and 500, or the fake Bot
Connector answering 412, 502 and 504, each for a while; then the platform
gone altogether (connection refused) for `outage` seconds.

The bot is a web process (endpoints and the delivery loop) and worker
processes on PostgreSQL; it reaches the platform through a loopback `Gate`,
closed for the outage. Every card and message must reach the platform exactly
once in the end, and delivery must resume within seconds of each fault ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.fakes.bot_connector import FakeBotConnector, running_connector
from tests.fakes.bot_connector import Fault as TeamsFault
from tests.fakes.slack_api import FakeSlack, fake_slack
from tests.fakes.slack_api import Fault as SlackFault
from tests.faults import outage
from tests.faults.fleet import Fleet
from tests.faults.gate import Gate, gate

EFFECT = re.compile(r"ping-(\d+)-x")
SLACK_METHODS = ("chat.postMessage", "chat.update", "conversations.replies", "chat.postEphemeral")
MANY = 10_000  # "every call until told otherwise": the queue is cleared when the fault ends


@dataclass(frozen=True)
class OutagePlan(outage.Pace):
    outage: float = 60.0  # seconds the platform is gone
    errors: float = 8.0  # seconds of each kind of error answer
    retry_after: int = 1  # Slack's Retry-After on 429


def effect_of(text: str) -> str | None:
    return text.strip() if EFFECT.fullmatch(text.strip()) else None


def say(i: int) -> str:
    return f"run ping text=ping-{i}-x"


class Platform:
    """The knobs of one fake platform: what an error phase does, and how to read it."""

    name: str
    errors: tuple[str, ...]

    def fail(self, error: str) -> None: ...
    def heal(self) -> None: ...
    def delivered(self) -> outage.Delivered: ...
    def where(self, conv: dict[str, Any]) -> str: ...


class SlackPlatform(Platform):
    name, errors = "slack", ("429", "500")

    def __init__(self, fake: FakeSlack, retry_after: int):
        self.fake, self.retry_after = fake, retry_after

    def fail(self, error: str) -> None:
        fault = (SlackFault("ratelimited", 429, self.retry_after) if error == "429"
                 else SlackFault("internal_error", int(error)))  # fmt: skip
        for method in SLACK_METHODS:
            self.fake.faults[method] = [fault] * MANY

    def heal(self) -> None:
        self.fake.faults.clear()

    def delivered(self) -> outage.Delivered:
        return outage.slack_delivered(self.fake, effect_of)

    def where(self, conv: dict[str, Any]) -> str:
        return outage.slack_conversation(conv)


class TeamsPlatform(Platform):
    name, errors = "teams", ("412", "502", "504")

    def __init__(self, fake: FakeBotConnector):
        self.fake = fake

    def fail(self, error: str) -> None:
        self.fake.faults[:] = [TeamsFault(int(error))] * MANY

    def heal(self) -> None:
        self.fake.faults.clear()

    def delivered(self) -> outage.Delivered:
        return outage.teams_delivered(self.fake, effect_of)

    def where(self, conv: dict[str, Any]) -> str:
        return outage.teams_conversation(conv)


async def run_outage(platform: str, url: str, folder: Path, plan: OutagePlan) -> dict[str, Any]:
    opened = _slack if platform == "slack" else _teams
    async with opened(url, folder, plan) as (fake, fleet, g, make_send):
        fleet_web = await outage.start_bot(fleet, plan.workers)
        db = outage.Db(url)
        try:
            async with aiohttp.ClientSession() as http:
                return await _scenario(fake, g, outage.Feed(make_send(http, fleet_web), plan.rate), db, url, plan)
        finally:
            fleet.stop()
            db.close()


Opened = tuple[Platform, Fleet, Gate, Callable[[aiohttp.ClientSession, str], Any]]


@asynccontextmanager
async def _slack(url: str, folder: Path, plan: OutagePlan) -> AsyncIterator[Opened]:
    async with fake_slack() as slack, gate(int(urlsplit(slack.base_url).port or 0)) as g:
        fleet = Fleet(folder, outage.slack_env(folder, url, g.url("/api/")))
        yield SlackPlatform(slack, plan.retry_after), fleet, g, lambda http, web: outage.slack_sender(http, web, say)


@asynccontextmanager
async def _teams(url: str, folder: Path, plan: OutagePlan) -> AsyncIterator[Opened]:
    async with running_connector() as connector, gate(int(urlsplit(connector.service_url).port or 0)) as g:
        fleet = Fleet(folder, outage.teams_env(folder, url))
        yield TeamsPlatform(connector), fleet, g, lambda http, web: outage.teams_sender(http, web, g.url("/"), say)


async def _scenario(platform: Platform, g: Gate, feed: outage.Feed, db: outage.Db, url: str,
                    plan: OutagePlan) -> dict[str, Any]:  # fmt: skip
    timeline = outage.Timeline()
    t0 = time.monotonic()
    await outage.begin(feed, db, plan.calm)
    for error in platform.errors:
        await _window(lambda e=error: platform.fail(e), platform.heal, plan.errors)
        await _recovered(db, timeline, error)
    await _window(g.close, g.open, plan.outage)
    await _recovered(db, timeline, "gone")
    settled = await outage.finish(feed, db, plan)
    recovery = {k: await asyncio.to_thread(db.delivery_after, t) for k, t in timeline.ends.items()}
    out = outage.verdict(url, feed, db, platform.delivered(), platform.where, recovery, settled)
    return {"platform": platform.name, "outage_seconds": plan.outage, "error_seconds": plan.errors,
            **out, "gate_connections": g.connections, "seconds": round(time.monotonic() - t0, 1)}  # fmt: skip


async def _recovered(db: outage.Db, timeline: outage.Timeline, fault: str) -> None:
    """After a fault, until a delivery held back by it went out (the next fault
    must not start before), or twice the allowed time."""
    timeline.ended(fault)
    with contextlib.suppress(TimeoutError):
        await db.until(outage.DELIVERED_AFTER, 2 * outage.RECOVERY_LIMIT, since=timeline.ends[fault])


async def _window(start: Callable[[], Any], end: Callable[[], Any], seconds: float) -> None:
    for step in (start, None, end):
        if step is None:
            await asyncio.sleep(seconds)
            continue
        got = step()
        if isinstance(got, Awaitable):
            await got
