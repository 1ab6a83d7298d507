"""The production layout runs what `cowork serve` runs (issue 12): the same
end-to-end Slack flows in one process (`cowork serve`) and in the Procfile's
layout (`cowork serve --no-worker` + `cowork worker`) on PostgreSQL, against the
fake Slack Web API on loopback. Worker processes read chat (`chat.history`) and
check a post's target through their own Slack client; only the web process
delivers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.fakes.slack_api import FakeSlack, click_payload, fake_slack, mention_event, signed_headers
from tests.faults.fleet import Fleet, base_env, wait_http

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SECRET = "layout-secret"
THREAD = "1699999999.000100"
RECAP = """\
name: recap
description: read this thread and say how many messages it has
params: {}
steps:
  - {key: read, skill: chat.history, args: {limit: 50}}
  - {key: say, skill: chat.post, args: {text: "I read: {{ steps.read.text }}"}, depends_on: [read]}
"""


@dataclass
class Deployment:
    url: str
    http: aiohttp.ClientSession
    slack: FakeSlack

    async def send(self, body: str, content_type: str) -> int:
        headers = signed_headers(body, SECRET, content_type=content_type)
        async with self.http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as r:
            return r.status

    async def mention(self, text: str, event_id: str) -> int:
        return await self.send(json.dumps(mention_event(text, event_id=event_id, ts=THREAD)), "application/json")

    async def click(self, action: str, value: dict[str, Any], user: str, message_ts: str) -> int:
        payload = click_payload(action, json.dumps(value), user=user, message_ts=message_ts, thread_ts=THREAD)
        return await self.send(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def approve(self, task_id: int) -> None:
        card = await self.said(f"Approval needed for task #{task_id}")
        value = next(json.loads(e["value"]) for b in card["blocks"] if b["type"] == "actions"
                     for e in b["elements"] if e["action_id"] == "approve")  # fmt: skip
        assert await self.click("approve", value, "U1", card["ts"]) == 200

    def thread(self) -> list[dict[str, Any]]:
        return self.slack.thread("C1", THREAD)

    async def said(self, words: str, within: float = 60.0) -> dict[str, Any]:
        """The first message of the thread whose text or blocks carry `words`, once it is there."""

        def found() -> dict[str, Any] | None:
            return next((m for m in self.thread() if words in json.dumps([m["text"], m.get("blocks")])), None)

        try:
            await self.slack.until(lambda: found() is not None, within=within)
        except TimeoutError:
            raise AssertionError(f"no {words!r} in {[c.method for c in self.slack.calls]} {self.thread()}") from None
        message = found()
        assert message is not None
        return message


@pytest.fixture(params=["one process", "web + worker"])
async def deployment(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "recap.yaml").write_text(RECAP)
    async with fake_slack() as slack:
        slack.messages["C1"] = [{"type": "message", "ts": THREAD, "user": "U1", "text": "the launch is friday"}]
        env = base_env(DATABASE_URL=pg_url, SLACK_BOT_TOKEN="xoxb-layout", SLACK_SIGNING_SECRET=SECRET,
                       SLACK_API_URL=slack.base_url, COWORK_PLAYBOOKS=str(books))  # fmt: skip
        fleet = Fleet(tmp_path, env)
        try:
            port_url = fleet.web("web", worker=request.param == "one process")
            if request.param == "web + worker":
                fleet.worker("w0")
            await wait_http(f"{port_url}/healthz")
            async with aiohttp.ClientSession() as http:
                yield Deployment(port_url, http, slack)
        finally:
            fleet.stop()


async def test_chat_history_reads_the_thread_in_either_layout(deployment: Deployment) -> None:
    assert await deployment.mention("run recap", "Ev1") == 200
    await deployment.approve(1)
    summary = await deployment.said("Task #1 done")
    (said,) = [m["text"] for m in deployment.thread() if m["text"].startswith("I read:")]
    assert said == "I read: U1: the launch is friday"
    assert "reading messages is not available" not in json.dumps(summary)


async def test_an_approved_post_is_delivered_and_a_missing_channel_refused_in_either_layout(
    deployment: Deployment,
) -> None:
    assert await deployment.mention("run announce channel=#nowhere text=hi", "Ev1") == 200
    refused = await deployment.said("Task #1 failed")
    assert "Slack has no channel #nowhere" in json.dumps(refused["blocks"])
    assert await deployment.mention("run announce channel=#general text=hello", "Ev2") == 200
    await deployment.approve(2)
    summary = await deployment.said("Task #2 done")
    assert "posted a message to #general" in json.dumps(summary["blocks"])
    assert [m["text"] for m in deployment.slack.messages["#general"]] == ["hello"]
