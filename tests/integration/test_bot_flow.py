"""The bot's conversation and delivery loop over a recording chat adapter:
mention -> task -> card -> approval -> effect once -> summary."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.chat import Click, ConversationRef, DeliveryError, Inbound
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from tests.conftest import Clock
from tests.fakes.recording import RecordingAdapter


@pytest.fixture
async def rt(db_url: str, clock: Clock) -> AsyncIterator[Runtime]:
    runtime = Runtime(Settings(DATABASE_URL=db_url), clock=clock, adapters={"console": RecordingAdapter()})
    yield runtime
    runtime.close()


def mention(text: str, event_id: str, user: str = "alice") -> Inbound:
    conv = ConversationRef("console", "t1", "general", thread="root1")
    return Inbound("console", "t1", event_id, user, text, conv, user_name=user.title())


async def settle(rt: Runtime) -> None:
    for _ in range(5):
        await rt.engine.drain()
        await rt.delivery.drain()


async def test_mention_runs_playbook_through_approval_to_summary(rt: Runtime) -> None:
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    handled = await rt.conversation.handle_message(mention("run announce channel=eng text=hello", "ev1"))
    assert handled.kind == "task" and handled.task_id
    again = await rt.conversation.handle_message(mention("run announce channel=eng text=hello", "ev1"))
    assert again.task_id == handled.task_id
    await settle(rt)
    approval_msg = next(m for m in chat.messages.values() if m["card"].buttons)
    value = approval_msg["card"].buttons[0].value
    conv = ConversationRef("console", "t1", "general", thread="root1")
    refused = await rt.conversation.handle_click(Click("console", "t1", "mallory", "approve", value, conv))
    assert not refused.accepted and "not allowed" in refused.text
    await settle(rt)
    assert chat.notices == [("mallory", "Not done: you are not allowed to decide this approval.")]
    ok = await rt.conversation.handle_click(Click("console", "t1", "alice", "approve", value, conv))
    assert ok.accepted and ok.card is not None and not ok.card.buttons
    await settle(rt)
    posted = [m for m in chat.messages.values() if m["channel"] == "eng"]
    assert [m["card"].text for m in posted] == ["hello"]
    task_card = next(m["card"] for m in chat.messages.values() if m["card"].title.startswith("Task #"))
    assert dict((f.label, f.value) for f in task_card.fields)["Status"] == "Done"
    summary = next(m["card"] for m in chat.messages.values() if m["card"].title.endswith("done"))
    assert any("posted a message to eng" in b for b in summary.body)
    assert all(m["thread"] == "root1" for m in chat.messages.values() if m["channel"] == "general")


async def test_task_card_is_one_message_edited_in_place(rt: Runtime) -> None:
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    await rt.conversation.handle_message(mention("run noop", "ev2"))
    await rt.delivery.drain()
    (first,) = chat.messages.values()
    assert dict((f.label, f.value) for f in first["card"].fields)["Status"] == "Queued"
    await settle(rt)
    cards = [m for m in chat.messages.values() if m["card"].title.startswith("Task #1:")]
    assert cards == [first]
    assert dict((f.label, f.value) for f in first["card"].fields)["Status"] == "Done"
    assert ("update", "m1") in chat.log


async def test_failed_delivery_is_retried_and_nothing_is_lost(rt: Runtime, clock: Clock) -> None:
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    chat.fail_next = [DeliveryError("rate limited", retry_after=30), DeliveryError("down")]
    await rt.conversation.handle_message(mention("help", "ev3"))
    await rt.delivery.drain()
    assert chat.messages == {}
    clock.advance(31)
    await rt.delivery.drain()
    clock.advance(10)
    await rt.delivery.drain()
    assert chat.titles() == ["Cowork help"]


async def test_commands_answer_in_the_thread(rt: Runtime) -> None:
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    h = await rt.conversation.handle_message(mention("run noop", "ev4"))
    await settle(rt)
    await rt.conversation.handle_message(mention(f"status {h.task_id}", "ev5"))
    await rt.conversation.handle_message(mention(f"cancel {h.task_id}", "ev6"))
    await rt.conversation.handle_message(mention("cancel 999", "ev7"))
    await rt.conversation.handle_message(mention("run nosuch", "ev8"))
    await rt.conversation.handle_message(mention("do something clever", "ev9"))
    await settle(rt)
    texts = [m["card"].text for m in chat.messages.values()]
    assert any("cannot be cancelled" in t for t in texts)
    assert any("no task #999" in t for t in texts)
    assert any("no playbook `nosuch`" in t for t in texts)
    assert any("OPENAI_API_KEY" in t for t in texts)


async def test_only_requester_or_approver_may_cancel(rt: Runtime) -> None:
    h = await rt.conversation.handle_message(mention("run remind minutes=5 text=x", "ev10"))
    await settle(rt)
    out = await rt.conversation.handle_message(mention(f"cancel {h.task_id}", "ev11", user="mallory"))
    assert out.kind == "refused"
    assert (await rt.store.get_task(h.task_id)).state == "running"  # type: ignore[arg-type,union-attr]


async def test_coalesced_card_keeps_its_place_before_later_messages(rt: Runtime) -> None:
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    await rt.conversation.handle_message(mention("run announce channel=eng text=hello", "ev20"))
    await rt.engine.drain()  # the card changed several times and an approval was asked meanwhile
    await rt.delivery.drain()
    titles = [chat.messages[mid]["card"].title for op, mid in chat.log if op == "post"]
    assert titles[0].startswith("Task #1:") and titles[1].startswith("Approval needed")
    status = dict((f.label, f.value) for f in chat.messages["m1"]["card"].fields)["Status"]
    assert status == "Waiting for approval"
