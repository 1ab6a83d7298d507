"""The console over real HTTP: the page's JSON API, the live event stream and the
task pages, with the engine and the delivery loop drained by hand."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.chat import Card, ConversationRef
from adapters.console import ConsoleAdapter, Hub
from adapters.console.client import FEED_OVERLAP
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tasks.store.db import Database
from tasks.store.models import ChatMessage
from tasks.store.transcript import Transcript
from tests.conftest import Clock

ANNOUNCE = "@cowork run announce channel=#eng text=hello"


@dataclass
class Console:
    runtime: Runtime
    client: TestClient[Any, Any]

    async def say(self, text: str, *, user: str = "alice", channel: str = "general", **kw: Any) -> Any:
        resp = await self.client.post(
            "/api/console/messages", json={"channel": channel, "user": user, "text": text, **kw}
        )
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def messages(self, channel: str = "general", user: str = "alice") -> list[dict[str, Any]]:
        resp = await self.client.get("/api/console/messages", params={"channel": channel, "user": user})
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["messages"])

    async def click(self, message: dict[str, Any], user: str, action: str = "approve") -> Any:
        value = json.loads(_between(message["html"], 'data-value="', '"').replace("&quot;", '"'))
        body = {"user": user, "action": action, "value": value, "message_id": message["id"]}
        resp = await self.client.post("/api/console/actions", json=body)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def settle(self) -> None:
        # deliver first, as the live loop does within milliseconds of the mention
        for _ in range(5):
            await self.runtime.delivery.drain()
            await self.runtime.engine.drain()
        await self.runtime.delivery.drain()


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


async def _console(db_url: str, clock: Clock, **settings: Any) -> AsyncIterator[Console]:
    runtime = Runtime(Settings(DATABASE_URL=db_url, **settings), clock=clock)
    client = TestClient(TestServer(make_app(runtime, console=True)))
    await client.start_server()
    try:
        yield Console(runtime, client)
    finally:
        await client.close()
        runtime.close()


@pytest.fixture
async def console(db_url: str, clock: Clock) -> AsyncIterator[Console]:
    async for c in _console(db_url, clock):
        yield c


@pytest.fixture
async def lite(sqlite_url: str, clock: Clock) -> AsyncIterator[Console]:
    """For checks of input and HTTP that do not depend on the database engine."""
    async for c in _console(sqlite_url, clock):
        yield c


async def test_mention_starts_a_thread_where_the_bot_answers_with_its_task_card(
    console: Console,
) -> None:
    out = await console.say(ANNOUNCE)
    assert out["for_bot"] and out["handled"]["kind"] == "task"
    await console.settle()
    root, *replies = await console.messages()
    assert root["user"] == "alice" and root["thread"] is None
    assert replies and all(m["thread"] == str(root["id"]) and m["bot"] for m in replies)
    assert "Task #1: run announce" in replies[0]["html"]
    assert 'href="http://127.0.0.1:3978/tasks/1"' in replies[0]["html"]
    approval = next(m for m in replies if m["buttons"])
    assert "Approval needed for task #1" in approval["html"] and "hello" in approval["html"]


async def test_only_the_allowed_approver_can_approve_and_the_refusal_is_private(
    console: Console,
) -> None:
    await console.say(ANNOUNCE)
    await console.settle()
    approval = next(m for m in await console.messages() if m["buttons"])
    refused = await console.click(approval, "bob")
    assert refused == {
        "accepted": False,
        "text": "Not done: you are not allowed to decide this approval.",
    }
    await console.settle()
    bob_sees = [m for m in await console.messages(user="bob") if m["private"]]
    assert [m["text"] for m in bob_sees] == ["Not done: you are not allowed to decide this approval."]
    assert bob_sees[0]["thread"] == approval["thread"]
    assert not [m for m in await console.messages(user="alice") if m["private"]]
    assert await console.messages("eng") == []

    assert (await console.click(approval, "alice"))["accepted"] is True
    await console.settle()
    assert [m["text"] for m in await console.messages("eng")] == ["hello"]
    general = await console.messages()
    decided = next(m for m in general if m["id"] == approval["id"])
    assert not decided["buttons"] and "Approved by alice" in decided["html"]
    assert any("Task #1 done" in m["html"] and "posted a message to #eng" in m["html"] for m in general)
    card = next(m for m in general if "Task #1: run announce" in m["html"])
    assert "Done" in card["html"]


async def test_user_text_with_markup_is_shown_as_text(lite: Console) -> None:
    await lite.say('<script>alert("x")</script> <img src=x onerror=alert(1)>')
    (message,) = await lite.messages()
    assert "<script" not in message["html"] and "<img" not in message["html"]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in message["html"]
    assert message["text"] == '<script>alert("x")</script> <img src=x onerror=alert(1)>'


async def test_bot_echoes_of_user_text_are_escaped_too(lite: Console) -> None:
    await lite.say("@cowork run announce channel=#eng text=<b>bold</b>")
    await lite.settle()
    approval = next(m for m in await lite.messages() if m["buttons"])
    assert "<b>" not in approval["html"] and "&lt;b&gt;bold&lt;/b&gt;" in approval["html"]


async def test_message_without_mention_is_only_chat(lite: Console) -> None:
    out = await lite.say("morning all, who broke the build?")
    await lite.settle()
    assert out["for_bot"] is False and "handled" not in out
    assert [m["user"] for m in await lite.messages()] == ["alice"]


async def test_direct_message_needs_no_mention_and_is_private(console: Console) -> None:
    out = await console.say("help", channel="dm-alice")
    assert out["handled"]["kind"] == "command"
    await console.settle()
    texts = [m["html"] for m in await console.messages("dm-alice")]
    assert len(texts) == 2 and "Cowork help" in texts[1]
    resp = await console.client.get("/api/console/messages", params={"channel": "dm-alice", "user": "bob"})
    assert resp.status == 403


async def test_commands_answer_in_the_thread(console: Console) -> None:
    await console.say("@cowork run noop")
    await console.settle()
    await console.say("@cowork status 1", thread="1")
    await console.say("@cowork cancel 99")
    await console.settle()
    general = await console.messages()
    status = [m for m in general if m["thread"] == "1" and "Task #1" in m["html"]]
    assert len(status) >= 2
    assert any("There is no task #99 here." in m["text"] for m in general)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"channel": "general", "user": "alice"}', "`text` is required"),
        ('{"channel": "general", "text": "hi"}', "`user`"),
        ('{"channel": "nowhere", "user": "alice", "text": "hi"}', "no channel `nowhere`"),
        ('{"channel": "dm-bob", "user": "alice", "text": "hi"}', "belongs to its owner"),
        ('{"channel": "general", "user": "alice", "text": "hi", "thread": "x"}', "`thread`"),
        ('{"channel": "general", "user": "cowork", "text": "hi"}', "is the bot"),
    ],
)
async def test_malformed_message_is_a_400_with_a_reason(lite: Console, body: str, error: str) -> None:
    resp = await lite.client.post("/api/console/messages", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert error in (await resp.json())["error"]
    assert await lite.messages() == []


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("nope", 400, "not valid JSON"),
        ('{"user": "bob", "action": "approve", "value": {}}', 400, "`message_id`"),
        ('{"user": "bob", "action": "approve", "value": [], "message_id": 1}', 400, "`value`"),
        ('{"user": "bob", "action": "approve", "value": {}, "message_id": 42}', 404, "no card 42"),
    ],
)
async def test_malformed_action_is_refused(lite: Console, body: str, status: int, error: str) -> None:
    resp = await lite.client.post("/api/console/actions", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    assert error in (await resp.json())["error"]


async def test_event_stream_shows_new_messages_live_and_private_ones_only_to_their_owner(
    lite: Console,
) -> None:
    bob = await lite.client.get("/api/console/events", params={"user": "bob"})
    assert bob.headers["Content-Type"].startswith("text/event-stream")
    assert (await _next_event(bob))["type"] == "hello"
    await lite.say("@cowork help", user="alice", channel="dm-alice")
    await lite.say("hi bob", user="alice")
    event = await _next_event(bob)
    assert event["type"] == "message" and event["message"]["text"] == "hi bob"
    bob.close()


async def _next_event(resp: Any) -> dict[str, Any]:
    while True:
        line = (await resp.content.readline()).decode()
        if line.startswith("data: "):
            return dict(json.loads(line[6:]))


async def test_conversation_survives_a_restart(db_url: str, clock: Clock) -> None:
    async for first in _console(db_url, clock):
        await first.say(ANNOUNCE)
        await first.settle()
        before = await first.messages()
    async for second in _console(db_url, clock):
        assert await second.messages() == before
        assert len(before) >= 3


async def test_task_page_shows_plan_approvals_timeline_and_cost(console: Console) -> None:
    await console.say(ANNOUNCE)
    await console.settle()
    approval = next(m for m in await console.messages() if m["buttons"])
    await console.click(approval, "alice")
    await console.settle()
    data = await (await console.client.get("/api/tasks/1")).json()
    assert data["task"]["state"] == "succeeded" and data["task"]["cost_text"] == "$0.0000"
    assert [(s["key"], s["state"], s["attempts"]) for s in data["steps"]] == [("post", "succeeded", 1)]
    assert data["steps"][0]["result"]["text"] == "hello"
    assert [(a["state"], a["decided_by"]) for a in data["approvals"]] == [("approved", "alice")]
    kinds = [e["kind"] for e in data["events"]]
    assert kinds[0] == "task.created" and "step.succeeded" in kinds
    page = await console.client.get("/tasks/1")
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert "Task #1: run announce" in html and "approved" in html and "step.succeeded" in html
    listing = await (await console.client.get("/tasks")).text()
    assert 'href="/tasks/1"' in listing


async def test_unknown_task_is_a_404(lite: Console) -> None:
    assert (await lite.client.get("/tasks/999")).status == 404
    assert (await lite.client.get("/tasks/abc")).status == 404
    resp = await lite.client.get("/api/tasks/999")
    assert resp.status == 404 and "no task #999" in (await resp.json())["error"]


async def test_page_and_its_assets_are_served_from_the_package(lite: Console) -> None:
    page = await lite.client.get("/")
    assert page.status == 200 and "/static/console.js" in await page.text()
    for asset in ("console.js", "console.css"):
        assert (await lite.client.get(f"/static/{asset}")).status == 200
    assert (await lite.client.get("/static/nothing.js")).status == 404
    assert (await lite.client.get("/static/%2e%2e/adapter.py")).status in (403, 404)


async def test_console_warns_when_not_bound_to_loopback(
    sqlite_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.wiring.console"):
        async for _ in _console(sqlite_url, clock, COWORK_HOST="0.0.0.0"):
            pass
    assert any("has no login" in r.getMessage() for r in caplog.records)
    caplog.clear()
    async for _ in _console(sqlite_url, clock):
        pass
    assert not any("has no login" in r.getMessage() for r in caplog.records)


async def test_chat_history_reads_the_thread_without_private_notices(console: Console) -> None:
    await console.say("before the thread")
    root = await console.say("@cowork run noop")
    await console.say("a reply by bob", user="bob", thread=str(root["id"]))
    await console.settle()
    await console.runtime.adapters["console"].notify(
        ConversationRef("console", "local", "general", thread=str(root["id"])), "bob", "psst"
    )
    read = console.runtime.chat_reader
    conversation = {"platform": "console", "channel": "general", "thread": str(root["id"])}
    got = await read(conversation, 50)
    assert [m["user"] for m in got][:2] == ["alice", "bob"]
    assert got[0]["text"] == "@cowork run noop" and all(m["text"] != "psst" for m in got)
    assert any(m["user"] == "cowork" and m["text"].startswith("Task #1") for m in got)
    whole = await read({**conversation, "thread": None}, 2)
    assert len(whole) == 2 and whole[0]["text"] != "before the thread"


async def test_a_page_on_one_web_process_sees_what_another_wrote_once(db_url: str, clock: Clock) -> None:
    async for a in _console(db_url, clock):
        async for b in _console(db_url, clock):
            bob = await b.client.get("/api/console/events", params={"user": "bob"})  # bob's page is on b
            assert (await _next_event(bob))["type"] == "hello"
            await a.say("hi bob", user="alice")  # alice's message is taken by a
            await a.say(ANNOUNCE, user="alice")
            await a.settle()  # a delivers the task's cards
            seen: dict[int, list[str]] = {}
            async with asyncio.timeout(30):  # the feed looks every 0.5 s; this bounds a hang
                while len(seen) < len(await a.messages(user="bob")):
                    event = await _next_event(bob)
                    if event["type"] in ("message", "update"):
                        seen.setdefault(event["message"]["id"], []).append(event["message"]["text"])
            first = min(seen)
            assert seen[first] == ["hi bob"]  # sent once, not again on each look
            bob.close()


async def test_the_feed_sends_each_version_of_a_message_once(db: Database, clock: Clock) -> None:
    here = ConsoleAdapter(Transcript(db), Hub(), clock=clock)
    there = ConsoleAdapter(Transcript(db), Hub(), clock=clock)  # another web process, same database
    conv = ConversationRef("console", "", "general", thread=None)
    with here.hub.subscribe("bob") as page:
        assert await here.catch_up() == 0
        await here.post(conv, Card(title="", text="mine"), key="k1")  # sent to the page at once
        assert await here.catch_up() == 0  # and not again
        clock.advance(1)
        ref = await there.post(conv, Card(title="", text="theirs"), key="k2")
        assert await here.catch_up() == 1 and await here.catch_up() == 0
        clock.advance(1)
        await there.update(conv, ref, Card(title="", text="theirs, edited"))
        assert await here.catch_up() == 1
        events = [page.queue.get_nowait() for _ in range(page.queue.qsize())]
    assert [(e["type"], e["message"]["text"]) for e in events if e] == [
        ("message", "mine"), ("message", "theirs"), ("update", "theirs, edited")
    ]  # fmt: skip


class Watched(Transcript):
    """The transcript, noting from when each look at its changes starts."""

    looks: list[datetime]

    async def changed_since(self, since: datetime, limit: int = 500) -> list[ChatMessage]:
        self.looks.append(since)
        return await super().changed_since(since, limit)


async def test_the_feed_window_follows_this_processes_own_writes_too(db: Database, clock: Clock) -> None:
    transcript = Watched(db)
    transcript.looks = []
    here = ConsoleAdapter(transcript, Hub(), clock=clock)
    conv = ConversationRef("console", "", "general", thread=None)
    with here.hub.subscribe("bob"):
        for i in range(3):
            clock.advance(60)
            await here.post(conv, Card(title="", text=f"mine {i}"), key=f"k{i}")
            assert await here.catch_up() == 0
    # each look starts shortly before the last change seen (a minute ago), not when the page opened
    assert transcript.looks[-1] == clock() - timedelta(seconds=60 + FEED_OVERLAP)
