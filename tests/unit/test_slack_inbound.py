"""Slack payloads -> neutral messages and clicks (pure)."""

from __future__ import annotations

import json

from adapters.slack.inbound import command_to_inbound, plain_text, to_click, to_inbound
from tests.fakes.slack_api import BOT_USER, click_payload, mention_event

DECISIONS = frozenset({"approve", "reject"})


def test_a_mention_becomes_an_inbound_in_its_own_thread() -> None:
    m = to_inbound(mention_event("run announce channel=<#C9|eng> text=hi"), BOT_USER)
    assert m is not None
    assert (m.event_id, m.tenant, m.user, m.direct) == ("Ev1", "T1", "U1", False)
    assert m.text == "run announce channel=C9 text=hi"
    assert (m.conversation.channel, m.conversation.thread) == ("C1", "1699999999.000100")


def test_a_mention_inside_a_thread_stays_in_that_thread() -> None:
    m = to_inbound(mention_event("help", thread_ts="1699999000.000001"), BOT_USER)
    assert m is not None and m.conversation.thread == "1699999000.000001"


def test_a_direct_message_is_direct() -> None:
    body = mention_event("list", channel="D1")
    body["event"] = {**body["event"], "type": "message", "channel_type": "im"}  # type: ignore[dict-item]
    m = to_inbound(body, BOT_USER)
    assert m is not None and m.direct and m.conversation.channel == "D1"


def test_bot_messages_edits_and_the_bots_own_messages_are_ignored() -> None:
    for extra in (
        {"bot_id": "B2"},
        {"subtype": "bot_message"},
        {"subtype": "message_changed"},
        {"user": BOT_USER},
    ):
        assert to_inbound(mention_event("hi", **extra), BOT_USER) is None


def test_channel_messages_that_are_not_mentions_are_ignored() -> None:
    body = mention_event("hi")
    body["event"] = {**body["event"], "type": "message", "channel_type": "channel"}  # type: ignore[dict-item]
    assert to_inbound(body, BOT_USER) is None


def test_malformed_events_are_ignored_not_raised() -> None:
    assert to_inbound({"event": "nope"}) is None
    assert to_inbound({"event": {"type": "app_mention", "user": 3}}) is None


def test_text_is_unescaped_and_links_unwrapped() -> None:
    assert plain_text("<@UBOT> a &lt;b&gt; &amp; <https://x.io|x.io>", "UBOT") == "a <b> & https://x.io"


def test_a_slash_command_is_deduplicated_by_trigger_id() -> None:
    m = command_to_inbound(
        {
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": "U1",
            "user_name": "al",
            "command": "/cowork",
            "text": "status 12",
            "trigger_id": "123.456",
        }
    )
    assert m is not None and m.event_id == "command:123.456" and m.text == "status 12"
    assert command_to_inbound({"text": "x"}) is None


def test_an_approve_click_carries_the_approval_and_the_thread() -> None:
    c = to_click(click_payload("approve", json.dumps({"approval_id": 3}), thread_ts="1.5"), DECISIONS)
    assert c is not None
    assert (c.action, c.value, c.user, c.tenant) == ("approve", {"approval_id": 3}, "U1", "T1")
    assert (c.conversation.channel, c.conversation.thread, c.message_id) == (
        "C1",
        "1.5",
        "1700000000.000001",
    )


def test_unknown_actions_and_bad_values_are_not_clicks() -> None:
    assert to_click(click_payload("explode", "{}"), DECISIONS) is None
    assert to_click(click_payload("approve", "{not json"), DECISIONS) is None
    assert to_click(click_payload("approve", "[1]"), DECISIONS) is None
    assert to_click({"actions": "x"}, DECISIONS) is None
