"""The App Home tab: a person's open tasks and the approvals waiting for them.

The bot supplies the cards through `HomeSource`; this module only lays them
out as a Home view (pure) within Slack's 100-blocks-a-view limit.
"""

from __future__ import annotations

from typing import Any, Protocol

from adapters.chat import Card
from adapters.slack.render import Block, render

MAX_VIEW_BLOCKS = 100


class HomeSource(Protocol):
    async def home(self, platform: str, tenant: str, user: str) -> list[Card]:
        """The cards to show `user` on their App Home: approvals waiting for
        them first, then their open tasks."""
        ...


def render_home(cards: list[Card]) -> dict[str, Any]:
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Cowork"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Your open tasks and the approvals waiting for you.",
            },
        },
    ]
    if not cards:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Nothing open. Mention me or use `/cowork run ...` to start.",
                    }
                ],
            }
        )
    shown = 0
    for card in cards:
        card_blocks = [{"type": "divider"}, *render(card)]
        if len(blocks) + len(card_blocks) > MAX_VIEW_BLOCKS - 1:
            break
        blocks.extend(card_blocks)
        shown += 1
    if shown < len(cards):
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"… and {len(cards) - shown} more (`/cowork list`)"}],
            }
        )
    return {"type": "home", "blocks": blocks}
