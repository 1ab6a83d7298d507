"""Scale-out: web processes and worker processes on one PostgreSQL database run
every task exactly once end to end; and, in process, the delivery loop keeps
people's messages moving while card refreshes wait for the rate limit. The
full load is `python -m tests.faults scaleout` (figures in docs/deployment.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.chat import Card, ConversationRef, DeliveryError, Inbound, MessageRef
from bot.config import Settings
from bot.delivery import Delivery
from bot.runtime import Runtime
from tests.conftest import Clock
from tests.faults.scaleout import LoadPlan, run_load
from tests.test_bot_flow import RecordingAdapter


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_web_and_three_worker_processes_run_every_slack_task_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    out = await run_load(pg_url, tmp_path, LoadPlan(tasks=60, concurrency=8, within=60))
    assert out["problems"] == []
    assert out["ack_statuses"] == {200: 66}  # 60 events and 6 redeliveries, all acknowledged
    assert out["tasks_in_db"] == 60 and out["states"] == {"succeeded": 60}
    assert out["effect_posts"] == 60 and out["tasks_posted_twice"] == 0
    assert out["steps_with_repeated_intent"] == 0
    assert out["ack_p99_ms"] < 3000  # Slack's deadline


class CardThrottlingAdapter(RecordingAdapter):
    """A platform whose card refreshes are over the rate limit for a while."""

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        if key.startswith("task:"):
            raise DeliveryError("rate limited", retry_after=1.0)
        return await super().post(conversation, card, key=key)


@pytest.fixture
async def rt(sqlite_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Runtime]:
    (tmp_path / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    settings = Settings(DATABASE_URL=sqlite_url, COWORK_POLICY=str(tmp_path / "policy.yaml"))
    runtime = Runtime(settings, clock=clock, adapters={"console": CardThrottlingAdapter()})
    yield runtime
    runtime.close()


async def test_messages_are_delivered_while_card_refreshes_are_rate_limited(rt: Runtime, clock: Clock) -> None:
    for i in range(30):
        conv = ConversationRef("console", "t1", f"c{i}", thread=f"root{i}")
        await rt.conversation.handle_message(
            Inbound("console", "t1", f"e{i}", "alice", f"run announce channel=c{i} text=m{i}", conv)
        )
    await rt.engine.drain()
    delivery = Delivery(rt.store, rt.adapters, clock=clock, batch=5)
    for _ in range(12):  # 6 rounds of first card posts; then throttled cards are due every round
        await delivery.run_once()
        clock.advance(60)
    chat: RecordingAdapter = rt.adapters["console"]  # type: ignore[assignment]
    texts = [m["card"].text for m in chat.messages.values()]
    assert sorted(t for t in texts if t.startswith("m")) == sorted(f"m{i}" for i in range(30))
