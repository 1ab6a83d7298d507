"""The rate-limit soak, short: a real `cowork serve --no-worker` and `cowork
worker` against the fake Slack and Bot Connector enforcing the published
limits. Every task starts at once (a burst the bot must pace: more cards than
one Slack channel takes in a second, more sends than a Teams conversation takes
in one or two), and each card changes every few seconds. No 429 may reach the
bot, every state must be shown, and cards stay fresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.chat import Card, ConversationRef, Inbound, MessageRef
from bot.application.delivery import Delivery
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from tests.conftest import Clock
from tests.fakes.recording import RecordingAdapter
from tests.soak.__main__ import verdict
from tests.soak.run import run_soak
from tests.soak.workload import Workload

BOUND = 12.0  # p95 seconds from a state change to the card showing it


async def test_a_burst_of_tasks_is_paced_under_the_published_limits(tmp_path: Path) -> None:
    w = Workload(tasks=6, seconds=8.0, ramp=0.0, gap=(2.0, 4.0))
    out = await run_soak(tmp_path, {"slack", "teams"}, w, settle=25.0, every=0.25)
    assert verdict(out, BOUND) == [], out
    assert out["tasks"] == {"slack:succeeded": 6, "teams:succeeded": 6}, out
    teams_sends = sum(out["traffic"]["teams"]["calls"].values())
    assert teams_sends > 8  # more than one conversation's 2-second window: pacing was needed
    assert out["traffic"]["slack"]["calls"]["chat.postMessage"] >= 3 * 6  # card, the post step, summary


class PacedAdapter(RecordingAdapter):
    """A platform whose pacing holds posts to one channel (as a rate-limit wait would)."""

    def __init__(self, slow_channel: str) -> None:
        super().__init__()
        self.slow_channel, self.release, self.arrived = slow_channel, asyncio.Event(), asyncio.Event()

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        if conversation.channel == self.slow_channel:
            await self.release.wait()
        self.arrived.set()
        return await super().post(conversation, card, key=key)

    async def until_posted(self, channel: str, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while sum(1 for m in self.messages.values() if m["channel"] == channel) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def test_a_conversation_waiting_for_its_rate_limit_does_not_hold_up_another(
    sqlite_url: str, clock: Clock, tmp_path: Path
) -> None:
    (tmp_path / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    chat = PacedAdapter(slow_channel="busy")
    settings = Settings(DATABASE_URL=sqlite_url, COWORK_POLICY=str(tmp_path / "policy.yaml"))
    rt = Runtime(settings, clock=clock, adapters={"console": chat})
    stop = asyncio.Event()
    delivery = Delivery(rt.store, rt.adapters, clock=clock, idle_seconds=0.01)

    async def mention(channel: str, event: str) -> None:
        conv = ConversationRef("console", "t1", channel, thread=event)
        await rt.conversation.handle_message(Inbound("console", "t1", event, "alice", "help", conv))

    await mention("busy", "e1")
    await mention("quiet", "e2")
    serving = asyncio.create_task(delivery.serve(stop))
    try:
        await chat.until_posted("quiet", 1, within=30)
        await mention("quiet", "e3")  # while "busy" still waits for its turn
        await chat.until_posted("quiet", 2, within=30)
    finally:
        chat.release.set()
        stop.set()
        await serving
        rt.close()
