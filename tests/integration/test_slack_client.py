"""SlackAdapter against the fake Slack Web API: posts tagged with metadata, found
again after a crash, rate limits kept, Slack's failures turned into DeliveryErrors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat import Card, ConversationRef, DeliveryError, MessageRef
from adapters.slack.client import SlackAdapter
from tests.fakes.moved_time import MovedTime
from tests.fakes.slack_api import FakeSlack, fake_slack

CONV = ConversationRef("slack", "T1", "C1", "1699999999.000100")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with fake_slack() as fake:
        yield fake


@pytest.fixture
def clock() -> MovedTime:  # type: ignore[override]
    return MovedTime(1000.0)


@pytest.fixture
def adapter(slack: FakeSlack, clock: MovedTime) -> SlackAdapter:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url, retry_handlers=[])
    return SlackAdapter(client, clock=clock, sleep=clock.sleep)


async def test_post_goes_into_the_thread_tagged_with_its_outbox_key(adapter: SlackAdapter, slack: FakeSlack) -> None:
    ref = await adapter.post(CONV, Card(title="Task #1", text="hi"), key="task:1")
    call = slack.called("chat.postMessage")[0]
    assert call.token == "xoxb-test"
    assert call.args["thread_ts"] == CONV.thread and call.args["channel"] == "C1"
    assert call.args["metadata"] == {
        "event_type": "cowork_outbox",
        "event_payload": {"outbox_key": "task:1"},
    }
    assert call.args["blocks"][0]["type"] == "header"
    assert ref == MessageRef(id=slack.messages["C1"][0]["ts"], channel="C1")


async def test_find_recognises_a_post_whose_record_was_lost(adapter: SlackAdapter, slack: FakeSlack) -> None:
    posted = await adapter.post(CONV, Card(title="card"), key="task:9")
    await adapter.post(CONV, Card(title="other"), key="task:10")
    assert await adapter.find(CONV, "task:9") == posted
    assert await adapter.find(CONV, "task:11") is None
    assert slack.called("conversations.replies")[0].args["include_all_metadata"] in (
        "1",
        "true",
        True,
    )


async def test_find_looks_through_channel_history_outside_a_thread(adapter: SlackAdapter) -> None:
    top = CONV.in_thread(None)
    posted = await adapter.post(top, Card(title="card"), key="outbox:5")
    assert await adapter.find(top, "outbox:5") == posted


async def test_update_edits_the_same_message(adapter: SlackAdapter, slack: FakeSlack) -> None:
    ref = await adapter.post(CONV, Card(title="old"), key="k")
    assert await adapter.update(CONV, ref, Card(title="new")) == ref
    assert slack.messages["C1"][0]["text"] == "new"


async def test_notify_whispers_to_one_person(adapter: SlackAdapter, slack: FakeSlack) -> None:
    await adapter.notify(CONV, "U2", "Not done: you may not approve this")
    call = slack.called("chat.postEphemeral")[0]
    assert (call.args["user"], call.args["channel"], call.args["thread_ts"]) == (
        "U2",
        "C1",
        CONV.thread,
    )


async def test_a_429_becomes_a_retry_after(adapter: SlackAdapter, slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", retry_after=7)
    with pytest.raises(DeliveryError) as e:
        await adapter.post(CONV, Card(title="t"), key="k")
    assert e.value.retry_after == 7 and not e.value.permanent


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_losing_the_channel_is_permanent(adapter: SlackAdapter, slack: FakeSlack, error: str) -> None:
    slack.fail("chat.postMessage", error)
    with pytest.raises(DeliveryError) as e:
        await adapter.post(CONV, Card(title="t"), key="k")
    assert e.value.permanent and error in e.value.reason


async def test_a_server_error_is_retryable(adapter: SlackAdapter, slack: FakeSlack) -> None:
    slack.fail("chat.update", "internal_error", status=503)
    with pytest.raises(DeliveryError) as e:
        await adapter.update(CONV, MessageRef("1.2", "C1"), Card(title="t"))
    assert not e.value.permanent and e.value.retry_after is None


async def test_a_refused_connection_is_retryable(clock: MovedTime) -> None:
    client = AsyncWebClient(token="x", base_url="http://127.0.0.1:9/api/", retry_handlers=[])
    with pytest.raises(DeliveryError) as e:
        await SlackAdapter(client, clock=clock, sleep=clock.sleep).post(CONV, Card(title="t"), key="k")
    assert not e.value.permanent


async def test_posts_to_one_channel_keep_to_about_one_a_second(adapter: SlackAdapter, clock: MovedTime) -> None:
    for i in range(6):
        await adapter.post(CONV, Card(title=str(i)), key=str(i))
    assert clock.slept == [1.0, 1.0, 1.0]  # a burst of three, then one a second


async def test_a_long_local_wait_is_handed_back_as_retry_after(adapter: SlackAdapter, clock: MovedTime) -> None:
    ref = await adapter.post(CONV, Card(title="t"), key="k")
    adapter.max_wait = 0.5
    for _ in range(10):
        await adapter.update(CONV, ref, Card(title="t"))
    with pytest.raises(DeliveryError) as e:
        await adapter.update(CONV, ref, Card(title="t"))
    assert e.value.retry_after == pytest.approx(1.2)  # 50 a minute per workspace


async def test_posts_are_valid_json_blocks(adapter: SlackAdapter, slack: FakeSlack) -> None:
    await adapter.post(CONV, Card(title="t", text="<!here> " * 1000), key="k")
    body = slack.called("chat.postMessage")[0].args
    assert "<!here>" not in json.dumps(body["blocks"]) and len(body["text"]) <= 3000


async def test_a_notice_without_a_channel_goes_to_the_persons_dm(adapter: SlackAdapter, slack: FakeSlack) -> None:
    await adapter.notify(ConversationRef("slack", "T1", ""), "U3", "Not done")
    assert slack.called("chat.postEphemeral") == []
    assert slack.called("chat.postMessage")[0].args["channel"] == "U3"


async def test_history_reads_the_thread_without_the_bots_own_cards(adapter: SlackAdapter, slack: FakeSlack) -> None:
    root = await adapter.post(ConversationRef("slack", "T1", "C9"), Card(title="root", text="root"), key="k0")
    thread = ConversationRef("slack", "T1", "C9", root.id)
    await adapter.client.chat_postMessage(channel="C9", thread_ts=root.id, text="first question")
    await adapter.post(thread, Card(title="Task #2", text="card"), key="task:2")
    await adapter.client.chat_postMessage(channel="C9", thread_ts=root.id, text="second question")
    got = await adapter.history(thread, 10)
    assert [m["text"] for m in got] == ["first question", "second question"]
    assert [m["text"] for m in await adapter.history(thread, 1)] == ["second question"]


async def test_where_the_bot_is_not_a_member_a_command_is_answered_through_its_response_url(
    adapter: SlackAdapter, slack: FakeSlack
) -> None:
    private = ConversationRef("slack", "T1", "GPRIVATE", extra={"response_url": slack.response_url("c9")})
    slack.fail("chat.postMessage", "not_in_channel")
    ref = await adapter.post(private, Card(title="Task #3: run noop"), key="k1")
    assert ref.channel == "GPRIVATE" and slack.responses[-1]["replace_original"] is False
    await adapter.update(private, ref, Card(title="Task #3: done"))  # the same answer, replaced
    replaced = slack.responses[1:]
    assert [(r["replace_original"], r["text"].startswith("Task #3: done")) for r in replaced] == [(True, True)]
    slack.fail("chat.postMessage", "not_in_channel")
    with pytest.raises(DeliveryError) as refused:  # no response_url: nowhere to answer
        await adapter.post(ConversationRef("slack", "T1", "GPRIVATE"), Card(title="x"), key="k2")
    assert refused.value.permanent and "not_in_channel" in refused.value.reason


async def test_history_reads_keep_to_slacks_read_limit(
    adapter: SlackAdapter, slack: FakeSlack, clock: MovedTime
) -> None:
    for _ in range(50):  # Tier 3: 50 a minute per workspace
        await adapter.history(CONV, 10)
    assert clock.slept == []
    with pytest.raises(DeliveryError) as e:  # a minute's wait is handed back to the step's retry
        await adapter.history(CONV, 10)
    assert e.value.retry_after == pytest.approx(60.0) and not e.value.permanent
    assert len(slack.called("conversations.replies")) == 50
    clock.now += 60
    await adapter.history(CONV, 10)
    assert len(slack.called("conversations.replies")) == 51


async def test_app_home_refreshes_keep_to_slacks_limit(adapter: SlackAdapter, slack: FakeSlack) -> None:
    view = {"type": "home", "blocks": []}
    for i in range(100):  # Tier 4: 100 a minute per workspace
        await adapter.publish_home(f"U{i}", view, tenant="T1")
    with pytest.raises(DeliveryError):
        await adapter.publish_home("U100", view, tenant="T1")
    await adapter.publish_home("U100", view, tenant="T2")  # another workspace has its own
    assert len(slack.called("views.publish")) == 101
