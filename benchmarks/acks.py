"""`python -m benchmarks.acks [--slack-rate 500] [--teams-rate 200] [--seconds 10] [--backlog 20000]`:
ack latency of a full `cowork serve` while it drains a backlog, beside a bare app
measured in the same run; prints JSON.

For each platform: first a bare app in its own process (slack-bolt's AsyncApp
that only acks; botbuilder's CloudAdapter with a bot that does nothing), then a
real `cowork serve` (SQLite, engine and delivery running) started on a database
holding `backlog` queued tasks (the `noop` playbook, in console threads, so their
cards are delivered too), loaded at the same rate as soon as it answers. The
load starts once the engine has begun draining (a child engine process has
started). The requests are signed Slack `app_mention` events and Teams channel mentions that
each make a task (`run announce channel=… text=hello-N`). Open loop: a slow answer
does not slow the sender. The tasks still queued when the load starts and ends
are reported, so the figures say whether the backlog was draining meanwhile."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from benchmarks import slack as bench_slack
from benchmarks import teams as bench_teams
from bot.assembly.runtime import prepare_database
from tasks.rules.clock import utcnow
from tasks.store.db import Database
from tasks.store.store import NewTask, Store
from tests.fakes.slack_api import fake_slack
from tests.faults.fleet import Fleet, base_env, wait_http

CONVERSATION = {"platform": "console", "tenant": "console", "channel": "backlog"}


async def fill(url: str, tasks: int) -> None:
    """`tasks` queued `noop` tasks, each in its own console thread."""
    store = Store(Database(url))
    try:
        for start in range(0, tasks, 500):
            await asyncio.gather(*(store.create_task(NewTask(
                platform="console", tenant="console", dedupe_key=f"backlog-{i}", requester="bench",
                conversation={**CONVERSATION, "thread": f"b{i}"}, text="run noop", playbook="noop", params={}),
                utcnow())
                for i in range(start, min(tasks, start + 500))))  # fmt: skip
    finally:
        store.db.close()


def queued(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM task WHERE state IN ('queued', 'planning', 'running')")).scalar()
    engine.dispose()
    return int(n or 0)


async def draining(url: str, backlog: int, within: float = 120.0) -> None:
    """Until the engine has taken its first tasks (an engine process has started, imports and all)."""
    for _ in range(int(within / 0.2)):
        if queued(url) < backlog:
            return
        await asyncio.sleep(0.2)


async def full_serve(platform: str, rate: float, seconds: float, backlog: int, *,
                     engine_process: bool = True) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        url = f"sqlite:///{folder / 'acks.db'}"
        prepare_database(url)
        await fill(url, backlog)
        async with fake_slack() as slack:
            env = base_env(DATABASE_URL=url, COWORK_CONSOLE="1", COWORK_LOG_LEVEL="WARNING",
                           COWORK_LEASE_SECONDS="30", COWORK_ENGINE_PROCESS="1" if engine_process else "0")  # fmt: skip
            if platform == "slack":
                env.update(SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=bench_slack.SECRET,
                           SLACK_API_URL=slack.base_url)  # fmt: skip
            else:
                env.update(COWORK_TEAMS="1")
            fleet = Fleet(folder, env)
            try:
                web = fleet.web("serve", worker=True)
                await wait_http(f"{web}/healthz", 60)
                await draining(url, backlog)
                before = queued(url)
                if platform == "slack":
                    got = await bench_slack.load(f"{web}/slack/events", rate, seconds, "full")
                else:
                    got = await bench_teams.load(f"{web}/api/messages", rate, seconds, "full")
                got["backlog_queued_at_start"], got["backlog_queued_at_end"] = before, queued(url)
                return got
            finally:
                fleet.stop()


async def side_by_side(platform: str, rate: float, seconds: float, backlog: int,
                       one_process: bool) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'bare.db'}"
        if platform == "slack":
            bare = await bench_slack.measure("bare", rate, seconds, url, 0.0)
        else:
            bare = await bench_teams.measure("bare", rate, seconds, url)
    full = await full_serve(platform, rate, seconds, backlog)
    ratio = round(full["p99_ms"] / bare["p99_ms"], 1) if bare["p99_ms"] else None
    out = {"rate_per_s": rate, "seconds": seconds, "bare": bare, "cowork_serve_draining_backlog": full,
           "p99_ratio_to_bare": ratio, "target": "p99 <= 50 ms and <= 5x bare",
           "met": full["p99_ms"] <= 50 and ratio is not None and ratio <= 5 and full["errors"] == 0}  # fmt: skip
    if one_process:  # the engine in the web process, as before COWORK_ENGINE_PROCESS
        out["cowork_serve_one_process"] = await full_serve(platform, rate, seconds, backlog, engine_process=False)
    return out


async def run(slack_rate: float, teams_rate: float, seconds: float, backlog: int,
              one_process: bool = False) -> dict[str, Any]:  # fmt: skip
    started = time.time()
    out: dict[str, Any] = {"backlog_tasks": backlog, "database": "sqlite", "cpus": os.cpu_count(),
                           "load_average_at_start": os.getloadavg()}  # fmt: skip
    out["slack"] = await side_by_side("slack", slack_rate, seconds, backlog, one_process)
    out["teams"] = await side_by_side("teams", teams_rate, seconds, backlog, one_process)
    out["load_average_at_end"] = os.getloadavg()
    out["ran_seconds"] = round(time.time() - started, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.acks")
    p.add_argument("--slack-rate", type=float, default=500.0)
    p.add_argument("--teams-rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--backlog", type=int, default=20_000)
    p.add_argument("--one-process", action="store_true", help="also measure serve with its engine in-process")
    a = p.parse_args(argv)
    print(json.dumps(asyncio.run(run(a.slack_rate, a.teams_rate, a.seconds, a.backlog, a.one_process)), indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
