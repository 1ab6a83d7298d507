"""A stand-in for the bot behind `TeamsBot`, and one turn on botbuilder's TestAdapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ActivityTypes

from adapters.chat import Card, Click, ClickResult, Handled, Inbound, Unavailable
from adapters.teams.endpoint import TeamsBot


@dataclass
class RecordingBot:
    """Stands in for bot.Conversation: records and answers like it."""

    messages: list[Inbound] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    click_result: ClickResult = ClickResult(True, "Approved", Card(title="Approved by Alice"))
    unavailable: bool = False  # as the bot is while its database is down

    async def handle_message(self, message: Inbound) -> Handled:
        if self.unavailable:
            raise Unavailable("the database is unavailable")
        self.messages.append(message)
        return Handled("task", task_id=len(self.messages))

    async def handle_click(self, click: Click) -> ClickResult:
        self.clicks.append(click)
        return self.click_result


async def run_turn(recorder: RecordingBot, payload: dict[str, Any]) -> tuple[TestAdapter, Any]:
    bot = TeamsBot(recorder.handle_message, recorder.handle_click)
    adapter = TestAdapter(bot.on_turn)
    context = adapter.create_turn_context(Activity().deserialize(payload))
    await bot.on_turn(context)
    invokes = [a for a in adapter.activity_buffer if a.type == ActivityTypes.invoke_response]
    adapter.activity_buffer = [a for a in adapter.activity_buffer if a not in invokes]
    return adapter, invokes[0].value if invokes else None
