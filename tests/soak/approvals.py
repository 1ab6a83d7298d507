"""The approval soak: how many approval-needing tasks a Slack workspace sees
per minute. A real `cowork serve --no-worker` and `cowork worker` on a scratch
SQLite file, the fake Slack enforcing the published limits (300 posts a minute
per workspace, about 1 a second per channel, 50 edits a minute), and signed
mentions starting `tasks` tasks spread over `channels` channels, each a
playbook whose only step posts in its thread and so asks its requester first.

A task is visible once Slack has accepted a message (a post or an edit) that
carries its Approve button: what a person needs to act. Nobody clicks: the
figures are the pace at which approvals reach people, and what it cost in posts
and edits."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.rate_limits import slack_limits
from tests.fakes.slack_api import FakeSlack, fake_slack, mention_event, signed_headers
from tests.faults.fleet import Fleet, base_env, wait_http
from tests.soak.measure import counts

SECRET = "soak-signing-secret"
PLAYBOOK = """name: ask
description: one post in the thread, which its requester approves first; for the approval soak
params:
  text: {type: string}
steps:
  - {key: say, skill: chat.post, args: {text: "{{ text }}"}}
"""


def approve_buttons(blocks: Any) -> list[int]:
    """The task ids whose Approve button a message's blocks carry."""
    out = []
    for b in blocks or []:
        for e in b.get("elements", []) if b.get("type") == "actions" else []:
            if str(e.get("action_id", "")).startswith("approve"):
                out.append(int(json.loads(e.get("value") or "{}").get("task_id", 0)))
    return out


def visible_at(slack: FakeSlack, t0: float) -> dict[int, float]:
    """Seconds after `t0` at which each task's Approve button first reached Slack."""
    seen: dict[int, float] = {}
    for c in slack.calls:
        if c.method in ("chat.postMessage", "chat.update") and c.status == 200:
            blocks = c.args.get("blocks")
            for task in approve_buttons(json.loads(blocks) if isinstance(blocks, str) else blocks):
                seen.setdefault(task, round(c.at - t0, 3))
    return seen


def figures(seen: dict[int, float], tasks: int, seconds: float) -> dict[str, Any]:
    times = sorted(seen.values())

    def by(t: float) -> int:
        return sum(1 for s in times if s <= t)

    out: dict[str, Any] = {"visible": len(times), "of": tasks, "first_minute": by(60.0)}
    out["per_minute"] = round(len(times) / (times[-1] / 60.0), 1) if times and times[-1] > 0 else None
    out["by_second"] = {str(t): by(t) for t in (10, 30, 60, 90, 120, 180, 240, 300) if t <= seconds}
    if len(times) == tasks:
        out["all_visible_after_seconds"] = times[-1]
    return out


async def mention(http: aiohttp.ClientSession, url: str, i: int, channels: int) -> int:
    channel = f"CSOAK{i % channels:03d}"
    body = json.dumps(mention_event(f"run ask text=approval-{i}", event_id=f"EvAsk{i}", user=f"U{i % 50:02d}",
                                    channel=channel, ts=f"1700000002.{i:06d}"))  # fmt: skip
    async with http.post(f"{url}/slack/events", data=body.encode(), headers=signed_headers(body, SECRET)) as r:
        await r.read()
        return r.status


async def run_approvals(folder: Path, *, tasks: int, channels: int, seconds: float) -> dict[str, Any]:
    books = folder / "playbooks"
    books.mkdir(parents=True, exist_ok=True)
    (books / "ask.yaml").write_text(PLAYBOOK)
    url = f"sqlite:///{folder / 'approvals.db'}"
    async with fake_slack() as slack, aiohttp.ClientSession() as http:
        slack.limits = slack_limits(1.0)
        env = base_env(DATABASE_URL=url, COWORK_PLAYBOOKS=str(books), COWORK_LOG_LEVEL="WARNING",
                       SLACK_BOT_TOKEN="xoxb-soak", SLACK_SIGNING_SECRET=SECRET,
                       SLACK_API_URL=slack.base_url)  # fmt: skip
        fleet = Fleet(folder, env)
        try:
            web = fleet.web("web")
            fleet.worker("worker")
            await wait_http(f"{web}/healthz?ready=1", 60)
            t0 = time.time()
            acks = counts(str(s) for s in await asyncio.gather(*(mention(http, web, i, channels)
                                                                  for i in range(tasks))))  # fmt: skip
            for _ in range(int(seconds)):  # a look a second: reading every call at every request would load the fake
                if len(visible_at(slack, t0)) >= tasks:
                    break
                await asyncio.sleep(1.0)
            ran = time.time() - t0
        finally:
            fleet.stop()
        calls = [c for c in slack.calls if c.at - t0 <= ran]
        seen = visible_at(slack, t0)
        posts = sum(1 for c in calls if c.method == "chat.postMessage" and c.status == 200)
        return {
            "workload": {"tasks": tasks, "channels": channels, "workspaces": 1, "seconds": round(ran, 1)},
            "acks": acks,
            "approvals_visible": figures(seen, tasks, seconds),
            "calls": counts(c.method for c in calls if c.status == 200),
            "429s_sent": counts(c.method for c in calls if c.status == 429),
            "posts_per_visible_task": round(posts / len(seen), 2) if seen else None,
        }
