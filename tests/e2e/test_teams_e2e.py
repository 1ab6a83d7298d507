"""End to end over real HTTP: the whole bot (bot.web.server app with the Teams
wiring, engine, delivery loop, SQLite) against the fake Bot Connector.

A channel mention runs the `announce` playbook; a redelivery makes no second
task; the task card and the approval card appear in the mention's reply chain
as Adaptive Cards; a wrong approver's Action.Execute is refused (the card
answer tells only them); the requester approves and is answered with the
refreshed card; the announcement is posted once; the summary lands in the
thread. Every card sent is a valid Adaptive Card 1.5."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web

from adapters.teams import TeamsAdapter
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tests.conftest import SCHEMAS, Clock
from tests.fakes.bot_connector import (
    BOT_ID,
    CHANNEL,
    FakeBotConnector,
    execute_invoke,
    running_connector,
    submit_message,
    teams_activity,
)
from tests.fakes.moved_time import MovedTime

CARDS = jsonschema.Draft6Validator(json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text()))
ROOT = "1700000000100"
THREAD = f"{CHANNEL};messageid={ROOT}"
ENG = "19:eng@thread.tacv2"


@dataclass
class Bot:
    url: str
    http: aiohttp.ClientSession
    runtime: Runtime
    connector: FakeBotConnector

    async def send(self, activity: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(self.url, json=activity) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def settle(self) -> None:
        for _ in range(5):
            await self.runtime.engine.drain()
            await self.runtime.delivery.drain()

    def in_thread(self) -> list[dict[str, Any]]:
        return [s.activity for s in self.connector.posted() if s.conversation == THREAD]


@pytest.fixture
async def bot(sqlite_url: str, clock: Clock) -> AsyncIterator[Bot]:
    async with running_connector() as connector:
        settings = Settings(DATABASE_URL=sqlite_url, COWORK_TEAMS=True,
                            COWORK_PUBLIC_URL="https://cowork.example")  # fmt: skip
        runtime = Runtime(settings, clock=clock)
        app = make_app(runtime)
        adapter = runtime.adapters["teams"]
        assert isinstance(adapter, TeamsAdapter)
        moved = MovedTime()
        adapter.clock, adapter.sleep = moved, moved.sleep
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/messages"
        async with aiohttp.ClientSession() as http:
            yield Bot(url, http, runtime, connector)
        await runner.cleanup()
        runtime.close()


def approval_data(bot: Bot) -> dict[str, Any]:
    for card in bot.connector.cards():
        for action in card.get("actions", []):
            if action.get("verb") == "approve":
                return dict(action["data"])
    raise AssertionError("no approval card was posted")


def card_texts(activity: dict[str, Any]) -> str:
    content = activity["attachments"][0]["content"]
    return json.dumps(content)


async def test_a_mention_runs_announce_through_approval_to_summary(bot: Bot) -> None:
    mention = teams_activity(bot.connector.service_url, id=ROOT, text=f"run announce channel={ENG} text=hi")
    assert (await bot.send(mention))[0] == 200
    assert (await bot.send(mention))[0] == 200
    await bot.settle()
    assert len(await bot.runtime.store.list_tasks()) == 1  # the redelivery made no second task
    assert len(bot.in_thread()) >= 2  # task card + approval card, in the reply chain
    data = approval_data(bot)
    assert not [s for s in bot.connector.posted() if s.conversation == ENG]

    wrong = execute_invoke(bot.connector.service_url, "approve", data, id="inv-bob",
                           conversation_id=THREAD, aad="aad-bob", user="29:bob",
                           user_name="Bob")  # fmt: skip
    status, body = await bot.send(wrong)
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert body["value"]["body"][-1]["text"].startswith("Not done")
    await bot.settle()
    assert not [s for s in bot.connector.posted() if s.conversation == ENG]
    # Action.Execute answered Bob alone with the card; nobody else is told.
    assert not [a for a in bot.in_thread() if "Not done" in a.get("text", "")]

    right = execute_invoke(bot.connector.service_url, "approve", data, id="inv-alice",
                           conversation_id=THREAD)  # fmt: skip
    status, body = await bot.send(right)
    assert status == 200
    assert "Alice" in json.dumps(body["value"])  # the refreshed card says who decided
    assert not [a for a in body["value"].get("actions", []) if a.get("verb")]
    await bot.settle()

    effects = [s for s in bot.connector.posted() if s.conversation == ENG]
    assert len(effects) == 1 and "hi" in card_texts(effects[0].activity)  # the effect, once
    assert bot.connector.updated()  # the cards in the thread were brought up to date
    for card in bot.connector.cards():
        assert [e.message for e in CARDS.iter_errors(card)] == []


async def test_an_over_long_message_gets_a_clear_reply(bot: Bot) -> None:
    long = teams_activity(bot.connector.service_url, id="long-1", text="x" * 40_001,
                          conversation_type="personal", mention_bot=False)  # fmt: skip
    assert (await bot.send(long))[0] == 200
    await bot.settle()
    [reply] = [s.activity for s in bot.connector.posted()]
    assert "40,001 characters" in card_texts(reply)
    assert await bot.runtime.store.list_tasks() == []


async def test_adding_the_bot_to_a_team_posts_the_help_card(bot: Bot) -> None:
    added = teams_activity(bot.connector.service_url, type="conversationUpdate", id="cu-1",
                           conversation_id=CHANNEL, membersAdded=[{"id": BOT_ID}])  # fmt: skip
    assert (await bot.send(added))[0] == 200
    await bot.settle()
    [welcome] = bot.connector.posted()
    assert welcome.conversation == CHANNEL
    assert "help" in card_texts(welcome.activity).lower()


async def test_a_refusal_is_answered_in_the_card_for_execute_and_by_a_mention_for_the_submit_fallback(
    bot: Bot,
) -> None:
    """Action.Execute: the invoke's card answer is the refusal, seen by the clicker alone; nobody
    else is told. The Action.Submit fallback has no card answer, so the clicker is @mentioned."""
    mention = teams_activity(bot.connector.service_url, id=ROOT, text=f"run announce channel={ENG} text=hi")
    assert (await bot.send(mention))[0] == 200
    await bot.settle()
    data = approval_data(bot)
    bob = {"conversation_id": THREAD, "aad": "aad-bob", "user": "29:bob", "user_name": "Bob"}
    status, body = await bot.send(execute_invoke(bot.connector.service_url, "approve", data, id="inv-b", **bob))
    assert status == 200 and body["value"]["body"][-1]["text"].startswith("Not done")
    await bot.settle()
    assert not [a for a in bot.in_thread() if a.get("entities") and "Not done" in a.get("text", "")]
    assert (await bot.send(submit_message(bot.connector.service_url, "approve", data, **bob)))[0] == 200
    await bot.settle()
    [notice] = [a for a in bot.in_thread() if "Not done" in (a.get("text") or "")]
    assert notice["text"].startswith("<at>Bob</at>") and notice["entities"][0]["mentioned"]["id"] == "aad-bob"
    assert [t.state for t in await bot.runtime.store.list_tasks()] == ["waiting_approval"]
