"""POST /slack/events over real HTTP: signatures checked, events/commands/clicks
handed to the bot before the ack, redeliveries harmless, bad input never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from tests.fakes.slack_api import (
    click_payload,
    mention_event,
    signed_headers,
)
from tests.fakes.slack_endpoint import SECRET, Env, running_endpoint


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running_endpoint() as e:
        yield e


async def test_a_mention_reaches_the_bot_before_the_ack(env: Env) -> None:
    resp = await env.event(mention_event("run announce channel=#eng text=hi"))
    assert resp.status == 200
    assert env.bot.messages["Ev1"].text == "run announce channel=#eng text=hi"


async def test_a_redelivered_event_makes_no_second_task(env: Env) -> None:
    await env.event(mention_event("hi"))
    resp = await env.event(mention_event("hi"), **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert resp.status == 200 and list(env.bot.messages) == ["Ev1"]


@pytest.mark.parametrize("tamper", ["bad", "missing", "stale"])
async def test_unsigned_or_stale_requests_are_refused_and_nothing_stored(env: Env, tamper: str) -> None:
    body = json.dumps(mention_event("hi"))
    headers = signed_headers(body, SECRET, timestamp=int(time.time()) - 301 if tamper == "stale" else None)
    if tamper == "bad":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    if tamper == "missing":
        del headers["X-Slack-Signature"]
    assert (await env.send(body, headers)).status == 401
    assert env.bot.messages == {}


async def test_bots_own_messages_are_acked_and_ignored(env: Env) -> None:
    resp = await env.event(mention_event("hi", bot_id="B2"))
    assert resp.status == 200 and env.bot.messages == {}


async def test_an_empty_mention_and_a_huge_one_reach_the_bot(env: Env) -> None:
    assert (await env.event(mention_event("", event_id="E0"))).status == 200
    assert (await env.event(mention_event("x" * 40_000, event_id="E1"))).status == 200
    assert env.bot.messages["E0"].text == "" and len(env.bot.messages["E1"].text) == 40_000


async def test_the_url_verification_challenge_is_answered(env: Env) -> None:
    async with env.http.post(
        env.url,
        data=(b := json.dumps({"type": "url_verification", "challenge": "abc", "token": "x"})),
        headers=signed_headers(b, SECRET),
    ) as resp:
        assert resp.status == 200 and "abc" in await resp.text()


async def test_a_slash_command_reaches_the_bot(env: Env) -> None:
    resp = await env.form(
        {
            "command": "/cowork",
            "text": "status 12",
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": "U1",
            "user_name": "al",
            "trigger_id": "tr.9",
        }
    )
    assert resp.status == 200 and env.bot.messages["command:tr.9"].text == "status 12"


async def test_an_approve_click_is_decided_and_acked(env: Env) -> None:
    resp = await env.form({"payload": json.dumps(click_payload("approve", '{"approval_id": 4}'))})
    assert resp.status == 200
    assert [(c.action, c.value) for c in env.bot.clicks] == [("approve", {"approval_id": 4})]


async def test_an_unknown_action_is_acked_and_ignored(env: Env) -> None:
    resp = await env.form({"payload": json.dumps(click_payload("self_destruct", "{}"))})
    assert resp.status == 200 and env.bot.clicks == []


async def test_a_malformed_payload_is_a_400_not_a_500(env: Env) -> None:
    assert (await env.form({"payload": "{not json"})).status == 400
    assert (await env.form({"payload": "[1, 2]"})).status == 400
    body = "{truncated"
    assert (await env.send(body, signed_headers(body, SECRET))).status == 400


async def test_opening_the_app_home_publishes_the_persons_cards(env: Env) -> None:
    payload = mention_event("")
    payload["event"] = {"type": "app_home_opened", "user": "U7", "tab": "home", "channel": "D7"}
    assert (await env.event(payload)).status == 200
    call = (await env.slack.wait_for("views.publish"))[0]  # published after the ack
    assert call.args["user_id"] == "U7" and "Task for U7" in json.dumps(call.args["view"])


async def test_an_unknown_event_type_is_acked(env: Env) -> None:
    payload = mention_event("")
    payload["event"] = {"type": "reaction_added", "user": "U1"}
    assert (await env.event(payload)).status == 200


async def test_a_decision_on_the_app_home_republishes_it(env: Env) -> None:
    payload = click_payload("reject", '{"approval_id": 2}', user="U5")
    payload.update(container={"type": "view", "view_id": "V1"}, view={"type": "home", "id": "V1"})
    del payload["channel"], payload["message"]
    assert (await env.form({"payload": json.dumps(payload)})).status == 200
    assert env.bot.clicks[0].conversation.channel == ""
    call = (await env.slack.wait_for("views.publish"))[0]
    assert call.args["user_id"] == "U5"
