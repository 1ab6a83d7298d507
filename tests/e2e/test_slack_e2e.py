"""End to end over real HTTP: the whole bot (bot.web.server app with the Slack
wiring, engine, delivery loop, SQLite) against the fake Slack Web API.

A mention runs the `announce` playbook; the task card and the approval card
appear in the mention's thread; the wrong user's click is refused privately;
the requester approves; the announcement is posted once; the approval card
shows who decided, without buttons; the summary lands in the thread."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.models.blocks import Block

from adapters.slack import SlackAdapter
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tests.conftest import Clock
from tests.fakes.moved_time import MovedTime
from tests.fakes.slack_api import (
    FakeSlack,
    click_payload,
    fake_slack,
    mention_event,
    signed_headers,
)

SECRET = "e2e-secret"
THREAD = "1699999999.000100"


@dataclass
class Bot:
    url: str
    http: aiohttp.ClientSession
    runtime: Runtime
    slack: FakeSlack

    async def post(self, body: str, content_type: str, **headers: str) -> int:
        signed = signed_headers(body, SECRET, content_type=content_type)
        async with self.http.post(self.url, data=body.encode(), headers={**signed, **headers}) as r:
            await r.read()
            return r.status

    async def mention(self, text: str, event_id: str = "Ev1", **headers: str) -> int:
        return await self.post(
            json.dumps(mention_event(text, event_id=event_id, ts=THREAD)),
            "application/json",
            **headers,
        )

    async def click(self, action: str, value: dict[str, Any], user: str, message_ts: str) -> int:
        payload = click_payload(action, json.dumps(value), user=user, message_ts=message_ts, thread_ts=THREAD)
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def settle(self) -> None:
        for _ in range(5):
            await self.runtime.engine.drain()
            await self.runtime.delivery.drain()

    def thread(self) -> list[dict[str, Any]]:
        return self.slack.thread("C1", THREAD)


@pytest.fixture
async def bot(sqlite_url: str, clock: Clock) -> AsyncIterator[Bot]:
    async with fake_slack() as slack:
        settings = Settings(
            DATABASE_URL=sqlite_url,
            SLACK_BOT_TOKEN="xoxb-e2e",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.base_url,
            COWORK_PUBLIC_URL="https://cowork.example",
        )
        runtime = Runtime(settings, clock=clock)
        app = make_app(runtime)
        adapter = runtime.adapters["slack"]
        assert isinstance(adapter, SlackAdapter)
        moved = MovedTime()
        adapter.clock, adapter.sleep = moved, moved.sleep
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            yield Bot(f"http://127.0.0.1:{port}/slack/events", http, runtime, slack)
        await runner.cleanup()
        runtime.close()


def _actions(message: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def _approval(bot: Bot) -> dict[str, Any]:
    return next(m for m in bot.thread() if "approve" in _actions(m))


async def test_a_mention_runs_announce_through_approval_to_summary(bot: Bot) -> None:
    assert await bot.mention("run announce channel=#eng text=hi") == 200
    assert await bot.mention("run announce channel=#eng text=hi", **{"X-Slack-Retry-Num": "1"}) == 200
    await bot.settle()
    assert len(await bot.runtime.store.list_tasks()) == 1  # the redelivery made no second task

    card = _approval(bot)
    value = json.loads(
        next(
            e["value"]
            for b in card["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == "approve"
        )
    )
    assert bot.slack.messages.get("#eng") is None  # nothing posted before approval

    assert await bot.click("approve", value, "U2", card["ts"]) == 200
    await bot.settle()
    whisper = bot.slack.called("chat.postEphemeral")
    assert [(c.args["user"], c.args["channel"]) for c in whisper] == [("U2", "C1")]
    assert bot.slack.messages.get("#eng") is None

    assert await bot.click("approve", value, "U1", card["ts"]) == 200
    await bot.settle()
    posted = bot.slack.messages["#eng"]
    assert [m["text"] for m in posted] == ["hi"]  # the effect, once

    assert not any("approve" in _actions(m) for m in bot.thread())  # the buttons are gone
    texts = json.dumps([m.get("blocks") for m in bot.thread()])
    assert "Approved by U1" in texts
    summary = bot.thread()[-1]
    assert summary["text"].startswith("Task #1 done")
    assert "posted a message to #eng" in json.dumps(summary["blocks"])
    assert all(m["metadata"]["event_type"] == "cowork_outbox" for m in bot.thread())


async def test_a_40000_character_mention_is_cut_to_fit_on_its_cards(bot: Bot) -> None:
    text = "run announce channel=#eng text=" + "x" * (40_000 - 31)
    assert await bot.mention(text) == 200
    await bot.settle()
    card = _approval(bot)
    assert "truncated, see task page" in json.dumps(card["blocks"])
    assert all(Block.parse(b) is not None for b in card["blocks"])  # Slack would accept it


async def test_an_empty_mention_gets_help(bot: Bot) -> None:
    assert await bot.mention("") == 200
    await bot.settle()
    assert "help" in bot.thread()[0]["text"].lower()


async def test_the_app_home_shows_the_approval_waiting_for_the_person(bot: Bot) -> None:
    assert await bot.mention("run announce channel=#eng text=hi") == 200
    await bot.settle()
    home = mention_event("")
    home["event"] = {"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"}
    assert await bot.post(json.dumps(home), "application/json") == 200
    view = (await bot.slack.wait_for("views.publish"))[0].args["view"]
    assert view["type"] == "home"
    assert "approve" in [e.get("action_id") for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert all(Block.parse(b) is not None for b in view["blocks"])


async def test_slash_command_status_replies_in_the_channel(bot: Bot) -> None:
    assert await bot.mention("run announce channel=#eng text=hi") == 200
    await bot.settle()
    form = {
        "command": "/cowork",
        "text": "status 1",
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "user_name": "al",
        "trigger_id": "trig.1",
    }
    assert await bot.post(urlencode(form), "application/x-www-form-urlencoded") == 200
    await bot.settle()
    top_level = [m for m in bot.slack.messages["C1"] if "thread_ts" not in m]
    assert [m["text"].split(" · ")[0] for m in top_level] == ["Task #1: run announce"]


async def test_a_command_in_a_private_channel_without_the_bot_is_answered_privately(bot: Bot) -> None:
    form = {
        "command": "/cowork", "text": "help", "team_id": "T1", "channel_id": "GPRIVATE", "user_id": "U1",
        "user_name": "al", "trigger_id": "trig.2", "response_url": bot.slack.response_url("c2"),
    }  # fmt: skip
    bot.slack.fail("chat.postMessage", "not_in_channel")  # the bot is not a member of GPRIVATE
    assert await bot.post(urlencode(form), "application/x-www-form-urlencoded") == 200
    await bot.settle()
    (answer,) = bot.slack.responses
    assert answer["hook"] == "c2" and answer["response_type"] == "ephemeral"
    assert "help" in answer["text"].lower() and answer["blocks"] and answer["replace_original"] is False
    assert "GPRIVATE" not in bot.slack.messages  # nothing in the channel itself


async def test_events_are_taken_while_slacks_web_api_is_unreachable(sqlite_url: str, clock: Clock) -> None:
    settings = Settings(
        DATABASE_URL=sqlite_url,
        SLACK_BOT_TOKEN="xoxb-e2e",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL="http://127.0.0.1:9/api/",
    )  # nothing listens on the discard port
    runtime = Runtime(settings, clock=clock)
    runner = web.AppRunner(make_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            bot = Bot(f"http://127.0.0.1:{port}/slack/events", http, runtime, None)  # type: ignore[arg-type]
            assert await bot.mention("run noop", event_id="EvDown") == 200
        (task,) = await runtime.store.list_tasks()
        assert task.dedupe_key == "EvDown"
        await runtime.engine.drain()
        await runtime.delivery.drain()  # Slack is still down: the card waits in the outbox
        rows = await runtime.outboxes.rows(task.id)
        assert rows and all(r.state in ("pending", "superseded") for r in rows)
    finally:
        await runner.cleanup()
        runtime.close()


async def test_a_post_to_a_channel_slack_does_not_know_is_refused_before_anyone_approves(bot: Bot) -> None:
    assert await bot.mention("run announce channel=#nowhere text=hi") == 200
    await bot.settle()
    assert not any("approve" in _actions(m) for m in bot.thread())  # nobody is asked in vain
    task = (await bot.runtime.store.list_tasks())[0]
    assert task.state == "failed" and "Slack has no channel #nowhere" in (task.error or "")
    summary = bot.thread()[-1]
    assert summary["text"].startswith("Task #1 failed")
    assert "channel_not_found" in json.dumps(summary["blocks"])
    assert bot.slack.called("conversations.list") and "#nowhere" not in bot.slack.messages


async def test_a_post_slack_refuses_fails_the_step_with_slacks_reason(bot: Bot) -> None:
    bot.slack.fail("conversations.list", "missing_scope")  # the check cannot tell: approval is asked
    assert await bot.mention("run announce channel=#nowhere text=hi") == 200
    await bot.settle()
    card = _approval(bot)
    value = json.loads(next(e["value"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
                            if e["action_id"] == "approve"))  # fmt: skip
    assert await bot.click("approve", value, "U1", card["ts"]) == 200
    await bot.settle()
    view = await bot.runtime.store.view(1)
    assert view.task.state == "failed" and view.steps[0].state == "failed"
    assert "#nowhere refused the message: slack: channel_not_found" in (view.task.error or "")
    summary = bot.thread()[-1]
    assert summary["text"].startswith("Task #1 failed")
    blocks = json.dumps(summary["blocks"])
    assert "channel_not_found" in blocks and "posted a message" not in blocks
    # The channel is made; the requester retries: the refused message is sent again, once.
    bot.slack.channels.append({"id": "C0NOWHERE", "name": "nowhere", "is_member": True, "is_private": False})
    assert await bot.mention("retry 1", event_id="Ev2") == 200
    await bot.settle()
    assert (await bot.runtime.store.get_task(1)).state == "succeeded"  # type: ignore[union-attr]
    assert [m["text"] for m in bot.slack.messages["#nowhere"]] == ["hi"]


async def test_a_post_to_a_private_channel_without_the_bot_is_refused_before_approval(bot: Bot) -> None:
    assert await bot.mention("run announce channel=#secret text=hi") == 200
    assert await bot.mention("run announce channel=C0SECRET text=hi", event_id="Ev2") == 200
    await bot.settle()
    errors = [t.error or "" for t in await bot.runtime.store.list_tasks()]
    assert len(errors) == 2 and all("not a member of the private channel" in e for e in errors)
    assert bot.slack.called("conversations.info") and not any("approve" in _actions(m) for m in bot.thread())
