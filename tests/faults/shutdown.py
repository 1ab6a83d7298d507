"""A stop in the middle of paced posts: a real `cowork serve` on a scratch SQLite
file with a backlog of messages to one Slack channel (the fake Slack enforcing
the published 1-a-second pace), SIGTERM once a few are out, then a second
`cowork serve` that takes over the outbox. Used by tests/e2e/test_shutdown.py and
benchmarks/shutdown.py (which also times the exit)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from tasks.store.rows import outbox_row
from tasks.store.schema import upgrade
from tasks.store.store import OUTBOX
from tests.fakes.rate_limits import slack_limits
from tests.fakes.slack_api import FakeSlack, fake_slack
from tests.faults.fleet import Fleet, base_env, wait_http

SECRET = "shutdown-signing-secret"
CHANNEL = "CBACKLOG"


@dataclass
class Stopped:
    """What the scenario saw: posts by text, the outbox after the first process exited."""

    rows: int
    sent_before_stop: int = 0
    exit_code: int | None = None
    exit_seconds: float = 0.0
    after_exit: dict[str, int] = field(default_factory=dict)
    posts: Counter[str] = field(default_factory=Counter)
    final: dict[str, int] = field(default_factory=dict)


def backlog(url: str, rows: int) -> None:
    """`rows` messages waiting in the outbox for one Slack channel."""
    conv = {"platform": "slack", "tenant": "T1", "channel": CHANNEL}
    now = datetime.now(UTC)
    engine = create_engine(url)
    with engine.begin() as conn:
        for i in range(rows):
            conn.execute(insert(OUTBOX).values(**outbox_row(
                task_id=None, platform="slack", kind="message", conversation=conv, now=now,
                payload={"text": f"backlog {i:03d}"})))  # fmt: skip
    engine.dispose()


def outbox_states(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {str(s): int(n) for s, n in conn.execute(text("SELECT state, count(*) FROM outbox GROUP BY state"))}
    engine.dispose()
    return found


def posted(slack: FakeSlack) -> Counter[str]:
    return Counter(str(c.args.get("text", "")) for c in slack.called("chat.postMessage") if c.status == 200)


async def until(check: object, within: float, every: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the condition was not met in time")
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def scenario(folder: Path, **extra: str) -> AsyncIterator[tuple[FakeSlack, Fleet, str]]:
    url = f"sqlite:///{folder / 'shutdown.db'}"
    upgrade(url)
    async with fake_slack() as slack:
        slack.limits = slack_limits(1.0)
        env = base_env(DATABASE_URL=url, SLACK_BOT_TOKEN="xoxb-shutdown", SLACK_SIGNING_SECRET=SECRET,
                       SLACK_API_URL=slack.base_url, COWORK_LOG_LEVEL="INFO", **extra)  # fmt: skip
        fleet = Fleet(folder, env)
        try:
            yield slack, fleet, url
        finally:
            fleet.stop()


async def stop_mid_backlog(folder: Path, rows: int = 20, sent_first: int = 3, within: float = 120.0) -> Stopped:
    """Serve, SIGTERM after `sent_first` posts, wait for the exit, serve again until all is sent."""
    async with scenario(folder) as (slack, fleet, url):
        backlog(url, rows)
        out = Stopped(rows)
        web = fleet.web("first", worker=True)
        await wait_http(f"{web}/healthz", 60)
        await until(lambda: sum(posted(slack).values()) >= sent_first, within)
        proc = fleet.procs["first"]
        out.sent_before_stop = sum(posted(slack).values())
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await until(lambda: proc.poll() is not None, within, every=0.01)
        out.exit_seconds = time.monotonic() - start
        out.exit_code = proc.returncode
        out.after_exit = outbox_states(url)
        out.posts = posted(slack)
        fleet.web("second", worker=True)
        await until(lambda: outbox_states(url).get("sent", 0) == rows, within, every=0.25)
        out.posts = posted(slack)
        out.final = outbox_states(url)
        return out
