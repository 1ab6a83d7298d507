"""The delivery loop under platform and database faults (issue 7), in
process: retries of a platform that failed stay a few seconds apart however
long it failed, a row waiting for its retry holds back the later rows of its
conversation, and a delivery is recorded through a database hiccup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import insert

from adapters.chat import Card, ConversationRef, DeliveryError, Inbound, MessageRef
from bot.application.delivery import Delivery
from bot.application.pacing import ORDER_PATIENCE, RETRY, Hold, retry_delay
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from tasks.rules.coalescing import FIRST_POST_WAIT
from tasks.store.outbox import Outboxes
from tasks.store.rows import outbox_row
from tasks.store.store import OUTBOX
from tests.conftest import Clock
from tests.fakes.recording import RecordingAdapter


@pytest.fixture
async def rt(sqlite_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Runtime]:
    (tmp_path / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    settings = Settings(DATABASE_URL=sqlite_url, COWORK_POLICY=str(tmp_path / "policy.yaml"))
    runtime = Runtime(settings, clock=clock, adapters={"console": RecordingAdapter()})
    yield runtime
    runtime.close()


async def _announce(rt: Runtime, *, run: bool = True) -> None:
    conv = ConversationRef("console", "t1", "c1", thread="root1")
    said = Inbound("console", "t1", "e1", "alice", "run announce channel=c1 text=hi", conv)
    await rt.conversation.handle_message(said)
    if run:
        await rt.engine.drain()


def test_a_platform_down_for_long_is_retried_every_few_seconds() -> None:
    assert [retry_delay(n, None) <= RETRY.cap for n in (1, 5, 20, 60)] == [True] * 4
    assert retry_delay(60, None) >= RETRY.cap / 2
    assert retry_delay(60, 30.0) == 30.0  # Retry-After is honoured as asked


def test_a_failing_platform_is_probed_by_one_row_at_a_time() -> None:
    t = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    hold = Hold()
    assert hold.may_send("slack", t)
    hold.failed("slack", t + timedelta(seconds=3))
    assert not hold.may_send("slack", t + timedelta(seconds=1))
    assert hold.may_send("teams", t + timedelta(seconds=1))  # other platforms go on
    assert hold.may_send("slack", t + timedelta(seconds=3))  # the probe
    assert not hold.may_send("slack", t + timedelta(seconds=3.1))  # the others wait for its answer
    hold.answered("slack")
    assert hold.may_send("slack", t + timedelta(seconds=3.2))


class CountingFinds(RecordingAdapter):
    finds = 0

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        self.finds += 1
        return await super().find(conversation, key)


async def test_only_a_row_that_may_have_reached_the_platform_is_looked_up(rt: Runtime, clock: Clock) -> None:
    await _announce(rt)
    chat = CountingFinds()
    chat.fail_next.append(DeliveryError("bad gateway"))  # may or may not have been posted
    delivery = Delivery(rt.store, {"console": chat}, clock=clock)
    await delivery.run_once()
    clock.advance(RETRY.cap + 1)
    await delivery.drain()
    await rt.engine.drain()  # the post was accepted: the step and the task end, the card shows the summary
    await delivery.drain()
    assert len(chat.messages) == 2
    assert chat.finds == 1  # the rows put back behind it were never sent, so they need no lookup


async def test_a_row_waiting_for_its_retry_holds_back_the_rest_of_its_conversation(rt: Runtime, clock: Clock) -> None:
    await _announce(rt)
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    chat.fail_next.append(DeliveryError("bad gateway"))
    delivery = Delivery(rt.store, rt.adapters, clock=clock)
    assert await delivery.run_once() > 1
    assert chat.messages == {}  # the first row failed: nothing after it went ahead of it
    waiting = [r for r in await Outboxes(rt.store).rows() if r.state == "pending"]
    assert [r.kind for r in sorted(waiting, key=lambda r: r.next_attempt_at)] == ["task_card", "message"]
    clock.advance(RETRY.cap + 1)
    await delivery.drain()
    await rt.engine.drain()
    await delivery.drain()
    posted = [chat.messages[mid]["key"] for op, mid in chat.log if op == "post"]
    assert posted[0] == "task:1" and len(posted) == 2  # the card first, as it was queued first
    assert {r.state for r in await Outboxes(rt.store).rows()} <= {"sent", "superseded"}


class ThrottledEdits(RecordingAdapter):
    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        raise DeliveryError("edits rate limited", retry_after=30.0)


async def test_a_throttled_card_edit_holds_back_no_new_message(rt: Runtime, clock: Clock) -> None:
    conv = ConversationRef("console", "t1", "c1", thread="root1")
    await rt.conversation.handle_message(
        Inbound("console", "t1", "e1", "alice", "run announce channel=c1 text=hi", conv)
    )
    chat = ThrottledEdits()
    delivery = Delivery(rt.store, {"console": chat}, clock=clock)
    clock.advance(FIRST_POST_WAIT)
    await delivery.drain()  # the task card is posted
    await rt.engine.drain()  # the task runs: card edits, the announcement
    await delivery.run_once()
    await rt.engine.drain()  # the announcement was accepted: the summary (a card edit)
    await delivery.run_once()
    assert [m["key"] for m in chat.messages.values()][0] == "task:1" and len(chat.messages) == 2
    rows = await Outboxes(rt.store).rows()
    assert [r for r in rows if r.card_key == "task:1" and r.state == "pending"]  # its edits wait for the limit


class ThrottledCardPosts(RecordingAdapter):
    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        if key.startswith("task:"):
            raise DeliveryError("rate limited", retry_after=1.0)
        return await super().post(conversation, card, key=key)


async def test_messages_wait_behind_a_refused_card_for_a_while_then_go_ahead(rt: Runtime, clock: Clock) -> None:
    await _announce(rt)
    chat = ThrottledCardPosts()
    delivery = Delivery(rt.store, {"console": chat}, clock=clock)
    await delivery.run_once()
    clock.advance(ORDER_PATIENCE / 2)
    await delivery.run_once()
    assert chat.messages == {}  # a short hiccup: the card keeps its place at the top of the thread
    clock.advance(ORDER_PATIENCE)
    await delivery.run_once()
    assert [m["card"].text for m in chat.messages.values()][0] == "hi"  # the message no longer waits
    await rt.engine.drain()
    await delivery.run_once()
    assert len(chat.messages) == 1  # the summary is the card's final state: it waits with the card
    rows = await Outboxes(rt.store).rows()
    assert {r.state for r in rows if r.card_key == "task:1" and r.state != "superseded"} == {"pending"}


async def test_messages_are_delivered_while_card_refreshes_are_rate_limited(rt: Runtime, clock: Clock) -> None:
    for i in range(30):
        conv = ConversationRef("console", "t1", f"c{i}", thread=f"root{i}")
        await rt.conversation.handle_message(
            Inbound("console", "t1", f"e{i}", "alice", f"run announce channel=c{i} text=m{i}", conv)
        )
    await rt.engine.drain()
    chat = ThrottledCardPosts()
    delivery = Delivery(rt.store, {"console": chat}, clock=clock, batch=5)

    def announced() -> list[str]:
        return sorted(t for t in (m["card"].text for m in chat.messages.values()) if t.startswith("m"))

    # 30 cards that are refused on every round, and 60 messages and summaries, 5 rows a round:
    # without starvation everything else is out in at most (30 + 60) / 5 rounds plus the cards' share.
    for _ in range(40):
        await delivery.run_once()
        clock.advance(60)
        if len(announced()) == 30:
            break
    assert announced() == sorted(f"m{i}" for i in range(30))
    waiting = {r.card_key for r in await Outboxes(rt.store).rows() if r.card_key and r.state == "pending"}
    assert len(waiting) == 30  # the cards were refused all along, and are still to be posted


class EditsThrottledOnce(RecordingAdapter):
    throttle = 1

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        if self.throttle:
            self.throttle -= 1
            raise DeliveryError("edits rate limited", retry_after=5.0)
        return await super().update(conversation, message, card)


async def _card_change(rt: Runtime, clock: Clock, key: str, text: str) -> None:
    conv = {"platform": "console", "tenant": "t1", "channel": "c1"}
    row = outbox_row(task_id=None, platform="console", kind="card", conversation=conv, now=clock(), card_key=key,
                     payload={"card": Card(title=key, text=text).to_json()})  # fmt: skip
    await rt.store.db.run(lambda tx: tx.conn.execute(insert(OUTBOX).values(**row)))


async def test_an_edit_put_back_for_the_rate_limit_keeps_its_place_with_its_latest_content(
    rt: Runtime, clock: Clock
) -> None:
    chat = EditsThrottledOnce()
    delivery = Delivery(rt.store, {"console": chat}, clock=clock)
    await _card_change(rt, clock, "card:a", "a1")
    await _card_change(rt, clock, "card:b", "b1")
    await delivery.drain()  # both cards posted
    clock.advance(1)
    await _card_change(rt, clock, "card:a", "a2")
    await delivery.run_once()  # throttled: back to the outbox for 5 s
    clock.advance(1)
    await _card_change(rt, clock, "card:b", "b2")  # a later change of another card
    await _card_change(rt, clock, "card:a", "a3")  # and a newer state of the waiting one
    clock.advance(5)
    await delivery.run_once()
    edited = [chat.messages[mid]["card"].title for op, mid in chat.log if op == "update"]
    assert edited == ["card:a", "card:b"]  # the card that waited goes first
    assert chat.messages["m1"]["card"].text == "a3"  # showing its newest state
    states = [(r.card_key, r.state) for r in await Outboxes(rt.store).rows()]
    assert states.count(("card:a", "superseded")) == 1 and ("card:a", "pending") not in states


async def test_a_delivery_is_recorded_through_a_database_hiccup(rt: Runtime, clock: Clock) -> None:
    await _announce(rt)
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    real = Outboxes.sent
    calls = 0

    async def flaky(self: Outboxes, *args: object, **kw: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the connection is lost")
        await real(self, *args, **kw)  # type: ignore[arg-type]

    with mock.patch.object(Outboxes, "sent", flaky), mock.patch("bot.application.sending.RECORD_RETRY", 0.0):
        await Delivery(rt.store, rt.adapters, clock=clock).drain()
    assert calls > 1
    rows = await Outboxes(rt.store).rows()
    assert {r.state for r in rows} <= {"sent", "superseded"}
    posted = [m["key"] for m in chat.messages.values()]
    assert len(posted) == len(set(posted))  # recorded, so never looked up and posted again


class HangingPosts(RecordingAdapter):
    """A platform whose first post never answers (a call under way when the process stops)."""

    def __init__(self) -> None:
        super().__init__()
        self.calling = asyncio.Event()

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        self.calling.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_stop_hands_claimed_rows_back_and_the_next_sender_looks_up_only_the_one_under_way(
    rt: Runtime, clock: Clock
) -> None:
    for i in range(5):
        await rt.store.post(platform="console", conversation={"platform": "console", "tenant": "t1", "channel": "c1"},
                            kind="message", payload={"text": f"m{i}"}, now=clock())  # fmt: skip
    hanging, stop = HangingPosts(), asyncio.Event()
    first = Delivery(rt.store, {"console": hanging}, clock=clock, stop_grace=0.01)
    serving = asyncio.create_task(first.serve(stop))
    await asyncio.wait_for(hanging.calling.wait(), 30)
    stop.set()
    await asyncio.wait_for(serving, 30)
    rows = await Outboxes(rt.store).rows()
    assert [(r.state, r.attempts) for r in rows] == [("pending", 1)] + [("pending", 0)] * 4  # none left claimed
    chat = CountingFinds()
    await Delivery(rt.store, {"console": chat}, clock=clock).drain()
    assert [m["card"].text for m in chat.messages.values()] == [f"m{i}" for i in range(5)]  # in order, each once
    assert chat.finds == 1  # only the post that may have reached the platform is looked up
