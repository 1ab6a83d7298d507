"""The bot's own pacing (sliding windows, counted from the answer) and the
fakes' enforcement of the published limits (429 + Retry-After past them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat import Card, ConversationRef, DeliveryError
from adapters.pacing import SlidingLimits
from adapters.slack.client import SlackAdapter
from adapters.teams.limits import ConversationLimits
from tests.fakes.bot_connector import FakeBotConnector, running_connector
from tests.fakes.moved_time import MovedTime
from tests.fakes.rate_limits import Windows, slack_limits, teams_limits
from tests.fakes.slack_api import FakeSlack, fake_slack

CONV = ConversationRef("slack", "T1", "C1", "1699999999.000100")


def test_a_send_is_counted_from_its_answer_so_jitter_cannot_crowd_a_window():
    limits = SlidingLimits(((2, 1.0),))
    assert limits.reserve("k", 0.0, max_wait=0.0) == 0.0
    limits.done("k", 0.0, 0.3)  # the answer took 0.3 s: the platform may have counted it late
    assert limits.reserve("k", 0.3, max_wait=0.0) == 0.0
    assert limits.reserve("k", 0.3, max_wait=5.0) == pytest.approx(1.0)  # 0.3 + 1 s, not 0 + 1 s


def test_teams_keeps_eight_per_two_seconds_as_well_as_seven_per_second():
    limits = ConversationLimits()
    times = [limits.reserve("c", 0.0, max_wait=float("inf")) for _ in range(30)]
    assert all(times[i + 8] - times[i] >= 2.0 for i in range(len(times) - 8))


def test_the_fake_window_refuses_past_the_limit_until_the_oldest_leaves():
    w = Windows(((2, 10.0),))
    for t in (0.0, 1.0):
        assert w.wait("k", t) == 0.0
        w.admit("k", t)
    assert w.wait("k", 5.0) == pytest.approx(5.0)
    assert w.wait("k", 10.5) == 0.0


def test_the_fake_counts_a_refusal_and_answers_in_whole_seconds():
    limiter = slack_limits()
    for _ in range(50):
        assert limiter.check("chat.update", {"channel": "C1"}, 0.0) == 0.0
    assert limiter.check("chat.update", {"channel": "C2"}, 30.0) == 30.0
    assert limiter.refused["chat.update"] == 1 and limiter.admitted["chat.update"] == 50


async def test_an_edit_that_must_wait_is_handed_back_at_once_while_a_post_waits_its_turn() -> None:
    clock = MovedTime(1000.0)
    async with fake_slack() as slack:
        client = AsyncWebClient(token="x", base_url=slack.base_url, retry_handlers=[])
        adapter = SlackAdapter(client, clock=clock, sleep=clock.sleep)
        ref = await adapter.post(CONV, Card(title="t"), key="k")
        for _ in range(10):  # the burst
            await adapter.update(CONV, ref, Card(title="t"))
        with pytest.raises(DeliveryError) as e:
            await adapter.update(CONV, ref, Card(title="t"))
        assert e.value.retry_after == pytest.approx(1.2) and clock.slept == []
        for i in range(3):
            await adapter.post(CONV, Card(title="t"), key=f"p{i}")
        assert clock.slept == [1.0]  # the fourth post within a second waited in line


@pytest.fixture
async def limited() -> AsyncIterator[tuple[FakeSlack, FakeBotConnector]]:
    async with fake_slack() as slack, running_connector() as connector:
        slack.limits, connector.limits = slack_limits(), teams_limits()
        yield slack, connector


async def test_the_fake_slack_answers_429_with_retry_after_past_a_limit(limited: tuple[FakeSlack, Any]) -> None:
    limited_slack = limited[0]
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(5):  # chat.postMessage: at most 4 a second in one channel
            async with http.post(limited_slack.base_url + "chat.postMessage", data={"channel": "C1"}) as r:
                statuses.append(r.status)
                body, retry_after = await r.json(), r.headers.get("Retry-After")
    assert statuses == [200, 200, 200, 200, 429]
    assert body == {"ok": False, "error": "ratelimited"} and retry_after == "1"
    assert [c.status for c in limited_slack.calls] == statuses


async def test_slack_updates_stay_within_fifty_a_minute_past_the_burst() -> None:
    clock = MovedTime(1000.0)
    async with fake_slack() as slack:
        client = AsyncWebClient(token="x", base_url=slack.base_url, retry_handlers=[])
        adapter = SlackAdapter(client, clock=clock, sleep=clock.sleep, edit_wait=120.0)
        ref = await adapter.post(CONV, Card(title="t"), key="k")
        sent = []
        for _ in range(120):  # a full bucket (10) plus a minute of refill (50) would be 60
            await adapter.update(CONV, ref, Card(title="t"))
            sent.append(clock.now)
        assert all(sent[i + 50] - sent[i] >= 60.0 - 1e-9 for i in range(len(sent) - 50))
        adapter.edit_wait = 0.0
        with pytest.raises(DeliveryError) as e:
            await adapter.update(CONV, ref, Card(title="t"))
        assert e.value.retry_after and e.value.retry_after > 0
        assert len(slack.called("chat.update")) == 120  # the refused one never left


async def test_the_fake_connector_answers_429_past_seven_a_second(limited: tuple[Any, FakeBotConnector]) -> None:
    limited_connector = limited[1]
    url = limited_connector.service_url + "v3/conversations/c1/activities"
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(8):
            async with http.post(url, json={"type": "message"}) as r:
                statuses.append(r.status)
        async with http.post(limited_connector.service_url + "v3/conversations/c2/activities", json={}) as r:
            other = r.status
    assert statuses == [201] * 7 + [429] and other == 201  # conversations have their own windows
    assert len(limited_connector.throttled) == 1 and len(limited_connector.sent) == 8


def test_limits_are_off_by_default():
    assert FakeSlack().limits is None and FakeBotConnector().limits is None
