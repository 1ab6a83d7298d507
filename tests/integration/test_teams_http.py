"""The Teams endpoint over real HTTP, through botbuilder's CloudAdapter, with a
fake Bot Connector on loopback as the activities' serviceUrl."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from aiohttp import ClientSession, web
from botframework.connector.auth import ClaimsIdentity

from adapters.chat import Card, ClickResult, DeliveryError, Inbound, MessageRef
from adapters.teams import TeamsAdapter, TeamsBot, TeamsCredentials, TeamsEndpoint, authentication
from tests.conftest import SCHEMAS
from tests.fakes.bot_connector import (
    CHANNEL,
    FakeBotConnector,
    execute_invoke,
    running_connector,
    teams_activity,
)
from tests.fakes.loopback import serving
from tests.fakes.teams_bot import RecordingBot

CARD_SCHEMA = jsonschema.Draft6Validator(json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text()))


@dataclass
class Stack:
    connector: FakeBotConnector
    recorder: RecordingBot
    adapter: TeamsAdapter
    url: str
    http: ClientSession

    async def send(self, payload: Any, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.url, json=payload, **kw) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def inbound(self, **kw: Any) -> Inbound:
        status, _ = await self.send(teams_activity(self.connector.service_url, **kw))
        assert status == 200
        return self.recorder.messages[-1]

    def assert_cards_valid(self) -> None:
        cards = self.connector.cards()
        assert cards
        for card in cards:
            assert [e.message for e in CARD_SCHEMA.iter_errors(card)] == []


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running_connector() as connector:
        auth = authentication(TeamsCredentials())
        recorder = RecordingBot()
        adapter = TeamsAdapter(auth)
        endpoint = TeamsEndpoint(auth, TeamsBot(recorder.handle_message, recorder.handle_click, adapter))
        app = web.Application()
        app.router.add_post("/api/messages", endpoint.handle)
        async with serving(app) as base, ClientSession() as http:
            yield Stack(connector, recorder, adapter, f"{base}/api/messages", http)


async def test_without_an_app_id_a_mention_works_over_plain_http(stack: Stack):
    inbound = await stack.inbound(id="42", text="triage the open bugs")
    assert (inbound.text, inbound.event_id, inbound.user) == (
        "triage the open bugs",
        "42",
        "aad-alice",
    )
    assert stack.connector.sent == []  # the answer comes later, from the outbox


async def test_redelivered_activity_reaches_the_bot_with_the_same_event_id(stack: Stack):
    first = await stack.inbound(id="43", text="x")
    second = await stack.inbound(id="43", text="x")
    assert first.event_id == second.event_id == "43"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ("not json", {"Content-Type": "application/json"}, 400),
        ("[1, 2]", {"Content-Type": "application/json"}, 400),
        ('{"text": "no type"}', {"Content-Type": "application/json"}, 400),
        ('{"type": "message", "id": "1", "text": "hi"}', {"Content-Type": "application/json"}, 400),
        ('{"type": "message"}', {"Content-Type": "text/plain"}, 415),
    ],
)
async def test_malformed_requests_get_4xx_and_reach_nothing(
    stack: Stack, body: str, headers: dict[str, str], status: int
):
    async with stack.http.post(stack.url, data=body, headers=headers) as response:
        assert response.status == status
        assert "error" in await response.json()
    assert stack.recorder.messages == []


async def test_activity_with_wrong_field_types_is_a_400(stack: Stack):
    payload = teams_activity(stack.connector.service_url, text="hi")
    payload["from"] = "alice"
    status, body = await stack.send(payload)
    assert status == 400 and body["error"]
    assert stack.recorder.messages == []


async def test_a_40000_character_message_is_taken_whole(stack: Stack):
    inbound = await stack.inbound(text="a" * 40_000)
    assert len(inbound.text) == 40_000


async def test_unknown_invoke_is_a_400_with_a_reason(stack: Stack):
    payload = teams_activity(stack.connector.service_url, type="invoke", name="task/fetch")
    status, body = await stack.send(payload)
    assert status == 400
    assert "task/fetch" in body["value"]["message"]


async def test_action_execute_is_answered_over_http_with_the_refreshed_card(stack: Stack):
    status, body = await stack.send(execute_invoke(stack.connector.service_url, "approve", {"approval_id": 9}))
    assert status == 200
    assert body["statusCode"] == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert body["value"]["body"][0]["text"] == "Approved by Alice"
    assert [e.message for e in CARD_SCHEMA.iter_errors(body["value"])] == []


async def test_refused_action_execute_shows_the_reason_only_to_the_clicker(stack: Stack):
    card = Card(title="Approve?", buttons=())
    stack.recorder.click_result = ClickResult(False, "You are not an approver", card)
    status, body = await stack.send(execute_invoke(stack.connector.service_url, "approve", {"approval_id": 9}))
    assert status == 200
    assert body["value"]["body"][-1]["text"] == "You are not an approver"
    assert stack.connector.sent == []


async def test_card_is_posted_proactively_into_the_thread_and_updated(stack: Stack):
    inbound = await stack.inbound(id="50", text="do it")
    ref = inbound.conversation
    posted = await stack.adapter.post(ref, Card(title="Task 1: planning"), key="outbox-1")
    updated = await stack.adapter.update(ref, posted, Card(title="Task 1: done", tone="good"))
    assert updated == posted
    [post] = stack.connector.posted()
    [update] = stack.connector.updated()
    assert post.conversation == f"{CHANNEL};messageid=50"
    assert (update.conversation, update.activity_id) == (post.conversation, posted.id)
    assert update.activity["attachments"][0]["content"]["body"][0]["text"] == "Task 1: done"
    stack.assert_cards_valid()


async def test_posting_works_after_a_restart_from_the_stored_reference(stack: Stack):
    inbound = await stack.inbound(conversation_type="personal", text="hi", mention_bot=False)
    stored = json.loads(json.dumps(inbound.conversation.to_json()))
    fresh = TeamsAdapter(authentication(TeamsCredentials()))
    from adapters.chat import ConversationRef

    await fresh.post(ConversationRef.from_json(stored), Card(title="Summary"), key="k")
    assert stack.connector.posted()[0].conversation == "a:1personal-chat"


async def test_notify_replies_with_a_mention_of_the_person(stack: Stack):
    inbound = await stack.inbound(text="hi")
    await stack.adapter.notify(inbound.conversation, "aad-alice", "Only Bob may approve step 2")
    [sent] = stack.connector.posted()
    assert sent.activity["text"] == "<at>Alice</at> Only Bob may approve step 2"
    assert sent.activity["entities"][0]["mentioned"]["id"] == "aad-alice"


async def test_bot_removed_from_the_team_is_a_permanent_failure(stack: Stack):
    inbound = await stack.inbound(text="hi")
    stack.connector.fail_next(403)
    with pytest.raises(DeliveryError) as failure:
        await stack.adapter.post(inbound.conversation, Card(title="x"), key="k")
    assert failure.value.permanent
    assert "no longer in this conversation" in failure.value.reason


@pytest.mark.parametrize(("status", "header", "wait"), [(429, "7", 7.0), (502, None, None)])
async def test_throttling_is_retried_later_after_retry_after(
    stack: Stack, status: int, header: str | None, wait: float | None
):
    inbound = await stack.inbound(text="hi")
    stack.connector.fail_next(status, header)
    message = MessageRef(id="msg-9", channel=f"{CHANNEL};messageid=1700000000001")
    with pytest.raises(DeliveryError) as failure:
        await stack.adapter.update(inbound.conversation, message, Card(title="x"))
    assert failure.value.retry_after == wait
    assert not failure.value.permanent
    await stack.adapter.update(inbound.conversation, message, Card(title="x"))
    assert len(stack.connector.updated()) == 1  # no hidden retries in between


async def test_sends_beyond_seven_a_second_wait_for_the_window(stack: Stack):
    inbound = await stack.inbound(text="hi")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    adapter = TeamsAdapter(authentication(TeamsCredentials()), clock=lambda: 100.0, sleep=sleep)
    for n in range(8):
        await adapter.post(inbound.conversation, Card(title=f"{n}"), key=str(n))
    assert slept == [pytest.approx(1.0)]
    assert len(stack.connector.posted()) == 8
    with pytest.raises(DeliveryError) as failure:
        for n in range(7):
            await adapter.post(inbound.conversation, Card(title="more"), key=f"m{n}")
    assert failure.value.retry_after is not None and failure.value.retry_after > 1.0


async def test_connector_clients_are_reused_across_turns_without_hidden_retries(stack: Stack):
    auth = authentication(TeamsCredentials())
    claims = ClaimsIdentity({}, True)
    first = await auth.create_connector_factory(claims).create(stack.connector.service_url, None)
    again = await auth.create_connector_factory(claims).create(stack.connector.service_url, None)
    assert first is again
    assert first.config.retry_policy.retries == 0


async def test_while_the_bot_is_unavailable_the_activity_gets_503_and_is_taken_when_sent_again(stack: Stack):
    stack.recorder.unavailable = True
    activity = teams_activity(stack.connector.service_url, id="44", text="x")
    status, body = await stack.send(activity)
    assert status == 503 and "again" in body["error"] and stack.recorder.messages == []
    stack.recorder.unavailable = False
    status, _ = await stack.send(activity)  # the Bot Connector's retry
    assert status == 200 and [m.event_id for m in stack.recorder.messages] == ["44"]
