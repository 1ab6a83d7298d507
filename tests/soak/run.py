"""The soak run: a real `cowork serve --no-worker` and `cowork worker` on a
scratch SQLite file, the fake Slack Web API and fake Bot Connector with the
published rate limits switched on, signed Slack mentions in one channel and
Teams activities in one conversation, one soak task each, for the whole
duration. Then the figures: 429s the bot received, card staleness, messages
per method, outbox backlog."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text

from tests.fakes.bot_connector import CHANNEL, FakeBotConnector, running_connector, teams_activity
from tests.fakes.rate_limits import slack_limits, teams_limits
from tests.fakes.slack_api import FakeSlack, fake_slack, mention_event, signed_headers
from tests.faults.fleet import Fleet, base_env, wait_http
from tests.soak.measure import Change, Seen, card_level, changes, counts, summarize
from tests.soak.workload import Workload, playbook, schedule

SECRET = "soak-signing-secret"
TOKEN = "xoxb-soak-token"
SLACK_CHANNEL = "CSOAK"
TEAMS_ROOT = "1700000000000"
TEAMS_THREAD = f"{CHANNEL};messageid={TEAMS_ROOT}"


def epoch(value: Any) -> float:
    """Seconds since the epoch of a stored time (SQLite keeps it naive, in UTC)."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class Platforms:
    """The fakes and how to start a task on each."""

    def __init__(self, slack: FakeSlack | None, teams: FakeBotConnector | None, http: aiohttp.ClientSession):
        self.slack, self.teams, self.http = slack, teams, http
        self.acks: dict[str, int] = {}

    async def start(self, url: str, i: int, command: str) -> None:
        if self.slack is not None:
            ts = f"1700000001.{i:06d}"
            body = json.dumps(mention_event(command, event_id=f"EvSoak{i}", user=f"U{i:03d}",
                                            channel=SLACK_CHANNEL, ts=ts))  # fmt: skip
            await self._post(f"{url}/slack/events", body, signed_headers(body, SECRET), "slack")
        if self.teams is not None:
            activity = teams_activity(self.teams.service_url, id=f"17000000{i:05d}", text=command,
                                      conversation_id=TEAMS_THREAD, user=f"29:user{i}", aad=f"aad-{i}",
                                      user_name=f"User {i}")  # fmt: skip
            body = json.dumps(activity)
            await self._post(f"{url}/api/messages", body, {"Content-Type": "application/json"}, "teams")

    async def _post(self, url: str, body: str, headers: dict[str, str], platform: str) -> None:
        async with self.http.post(url, data=body.encode(), headers=headers) as r:
            await r.read()
            key = f"{platform}:{r.status}"
            self.acks[key] = self.acks.get(key, 0) + 1

    def seen(self, steps: int) -> dict[str, list[Seen]]:
        """Every task card each fake accepted, with its level."""
        out: dict[str, list[Seen]] = {}
        if self.slack is not None:
            out["slack"] = [
                Seen(*got, c.at)
                for c in self.slack.calls
                if c.method in ("chat.postMessage", "chat.update") and c.status == 200
                and (got := card_level(str(c.args.get("text", "")), c.args.get("blocks"), steps))
            ]  # fmt: skip
        if self.teams is not None:
            out["teams"] = [
                Seen(*got, s.at)
                for s in self.teams.sent
                if (got := card_level(str(s.activity.get("summary") or ""), s.activity.get("attachments"), steps))
            ]  # fmt: skip
        return out

    def traffic(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.slack is not None:
            s = self.slack
            out["slack"] = {
                "calls": counts(c.method for c in s.calls if c.status == 200),
                "429s_sent": counts(c.method for c in s.calls if c.status == 429),
            }
        if self.teams is not None:
            t = self.teams
            out["teams"] = {"calls": counts(x.method for x in t.sent), "429s_sent": counts(m for _, m in t.throttled)}
        return out


class Database:
    """Read-only looks at the scratch database while the bot runs."""

    def __init__(self, url: str):
        self.engine = create_engine(url)

    def _rows(self, sql: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql)))

    async def backlog(self) -> dict[str, int]:
        sql = "SELECT platform, count(*) FROM outbox WHERE state IN ('pending', 'sending') GROUP BY platform"
        return {str(p): int(n) for p, n in await asyncio.to_thread(self._rows, sql)}

    async def open_tasks(self) -> int:
        sql = "SELECT count(*) FROM task WHERE state NOT IN ('succeeded', 'failed', 'cancelled', 'expired')"
        return int((await asyncio.to_thread(self._rows, sql))[0][0])

    def timeline(self, steps: int) -> dict[str, list[Change]]:
        rows = self._rows("SELECT t.platform, e.task_id, e.kind, e.at FROM event e JOIN task t ON t.id = e.task_id "
                          "ORDER BY e.at, e.id")  # fmt: skip
        out: dict[str, list[Change]] = {}
        for platform in {str(r[0]) for r in rows}:
            out[platform] = changes(((int(r[1]), str(r[2]), epoch(r[3])) for r in rows if r[0] == platform), steps)
        return out

    def outbox(self) -> dict[str, int]:
        rows = self._rows("SELECT platform || ':' || kind || ':' || state, count(*) FROM outbox GROUP BY 1")
        return {str(k): int(n) for k, n in rows}

    def tasks(self) -> dict[str, int]:
        return {f"{p}:{s}": int(n) for p, s, n in self._rows(
            "SELECT platform, state, count(*) FROM task GROUP BY 1, 2")}  # fmt: skip


async def sample_until(deadline: float, every: float, db: Database, samples: list[dict[str, int]],
                       done: Callable[[], Awaitable[bool]] | None = None) -> None:  # fmt: skip
    """Backlog samples every `every` seconds until `deadline` (or `done()`)."""
    while time.monotonic() < deadline:
        samples.append(await db.backlog())
        if done is not None and await done():
            return
        await asyncio.sleep(min(every, max(0.0, deadline - time.monotonic())))


def backlog_figures(samples: list[dict[str, int]], platform: str) -> dict[str, Any]:
    values = sorted(s.get(platform, 0) for s in samples)
    if not values:
        return {}
    return {"samples": len(values), "p50": values[len(values) // 2], "max": values[-1],
            "last": samples[-1].get(platform, 0)}  # fmt: skip


@contextlib.asynccontextmanager
async def fakes(platforms: set[str], scale: float) -> AsyncIterator[tuple[FakeSlack | None, FakeBotConnector | None]]:
    async with contextlib.AsyncExitStack() as stack:
        slack = teams = None
        if "slack" in platforms:
            slack = await stack.enter_async_context(fake_slack())
            slack.limits = slack_limits(scale)
        if "teams" in platforms:
            teams = await stack.enter_async_context(running_connector())
            teams.limits = teams_limits(scale)
        yield slack, teams


def bot_env(folder: Path, url: str, w: Workload, slack: FakeSlack | None, teams: bool, **extra: str) -> dict[str, str]:
    books = folder / "playbooks"
    books.mkdir(parents=True, exist_ok=True)
    (books / "soak.yaml").write_text(playbook(w))
    (folder / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    env = base_env(DATABASE_URL=url, COWORK_POLICY=str(folder / "policy.yaml"), COWORK_PLAYBOOKS=str(books),
                   COWORK_LOG_LEVEL="WARNING", **extra)  # fmt: skip
    if slack is not None:
        env.update(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.base_url)
    if teams:
        env.update(COWORK_TEAMS="1")
    return env


async def run_soak(folder: Path, platforms: set[str], w: Workload, *, scale: float = 1.0,
                   settle: float = 120.0, every: float = 5.0) -> dict[str, Any]:  # fmt: skip
    """Start the bot, the tasks, keep sampling (every `every` seconds); then measure.
    `settle`: how long to wait after the duration for the last tasks and cards."""
    url = f"sqlite:///{folder / 'soak.db'}"
    async with fakes(platforms, scale) as (slack, teams), aiohttp.ClientSession() as http:
        fleet = Fleet(folder, bot_env(folder, url, w, slack, teams is not None))
        try:
            web = fleet.web("web")
            fleet.worker("worker")
            await wait_http(f"{web}/healthz?ready=1", 60)
            return await _drive(web, Database(url), Platforms(slack, teams, http), w, settle, every)
        finally:
            fleet.stop()


async def _drive(web: str, db: Database, fakes: Platforms, w: Workload, settle: float,
                 every: float) -> dict[str, Any]:  # fmt: skip
    t0 = time.monotonic()
    samples: list[dict[str, int]] = []
    sampler = asyncio.create_task(sample_until(t0 + w.seconds, every, db, samples))
    for i, (at, command) in enumerate(schedule(w)):
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        await fakes.start(web, i, command)
    await sampler

    async def finished() -> bool:
        return await db.open_tasks() == 0 and not any((await db.backlog()).values())

    await sample_until(time.monotonic() + settle, every, db, samples, finished)
    end = time.time()
    steps = w.steps + 1  # the waits and `say`
    timeline, seen = db.timeline(steps), fakes.seen(steps)
    return {
        "workload": {"tasks_per_platform": w.tasks, "seconds": w.seconds, "ramp_seconds": w.ramp,
                     "gap_seconds": list(w.gap), "steps_per_task": steps},
        "ran_seconds": round(time.monotonic() - t0, 1),
        "acks": fakes.acks, "tasks": db.tasks(), "outbox": db.outbox(),
        "traffic": fakes.traffic(),
        "staleness_seconds": {p: summarize(timeline.get(p, []), seen[p], end) for p in seen},
        "backlog": {p: backlog_figures(samples, p) for p in seen},
    }  # fmt: skip
