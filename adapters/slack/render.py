"""Block Kit rendering of neutral cards: a pure `render(card) -> blocks`.

Every string on a card may hold user text, so it is escaped for mrkdwn (`&`,
`<`, `>`: that also defuses `<!channel>` and `<@U123>` injections). Text over
Block Kit's limits is cut, never rejected, with a pointer to the task page.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.chat import Button, Card, Field

MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
FIELDS_PER_SECTION = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONTEXT_TEXT = 3000
FALLBACK_TEXT = 3000
CUT = "… (truncated, see task page)"
LINK_ACTION = "open_task"
TONE_ICON = {
    "info": ":large_blue_circle:",
    "good": ":white_check_mark:",
    "warning": ":warning:",
    "bad": ":x:",
}

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape user text for mrkdwn and plain_text: Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, *, mrkdwn: bool = True, suffix: str = CUT) -> str:
    """Escape `text` and cut it to `limit` characters (after escaping), ending with
    `suffix` when cut; an escape sequence is never split."""
    out = escape(text) if mrkdwn else text
    if len(out) <= limit:
        return out
    budget = limit - len(suffix)
    parts: list[str] = []
    used = 0
    for ch in text:
        piece = escape(ch) if mrkdwn else ch
        if used + len(piece) > budget:
            break
        parts.append(piece)
        used += len(piece)
    return "".join(parts) + suffix


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _header(card: Card) -> Block:
    icon = TONE_ICON.get(card.tone, "")
    title = clip(card.title, HEADER_TEXT - len(icon) - 1, mrkdwn=False, suffix="…")
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": f"{icon} {title}".strip(), "emoji": True},
    }


def _field_text(f: Field) -> str:
    label = clip(f.label, 200)
    return f"*{label}*\n" + clip(f.value, FIELD_TEXT - len(label) - 3)


def _fields(fields: tuple[Field, ...]) -> list[Block]:
    out = []
    for i in range(0, len(fields), FIELDS_PER_SECTION):
        chunk = fields[i : i + FIELDS_PER_SECTION]
        out.append({"type": "section", "fields": [_mrkdwn(_field_text(f)) for f in chunk]})
    return out


def _step_line(step: Field) -> str:
    return f"• *{clip(step.label, 200)}*  {clip(step.value, 500)}"


def _steps(steps: tuple[Field, ...]) -> list[Block]:
    """The steps list, packed into as few sections as fit 3,000 characters each."""
    blocks: list[Block] = []
    lines: list[str] = []
    size = 0
    for line in (_step_line(s) for s in steps):
        if lines and size + len(line) + 1 > SECTION_TEXT:
            blocks.append(_section("\n".join(lines)))
            lines, size = [], 0
        lines.append(line)
        size += len(line) + 1
    if lines:
        blocks.append(_section("\n".join(lines)))
    return blocks


def _button(b: Button) -> Block:
    out: Block = {
        "type": "button",
        "text": {
            "type": "plain_text",
            "text": clip(b.label, BUTTON_TEXT, mrkdwn=False, suffix="…"),
        },
        "action_id": b.action,
        "value": json.dumps(b.value, separators=(",", ":"))[:BUTTON_VALUE],
    }
    if b.style != "default":
        out["style"] = b.style
    return out


def _actions(card: Card) -> list[Block]:
    elements = [_button(b) for b in card.buttons[:24]]
    if card.link:
        elements.append(
            {
                "type": "button",
                "action_id": LINK_ACTION,
                "url": card.link[:3000],
                "text": {
                    "type": "plain_text",
                    "text": clip(card.link_label, BUTTON_TEXT, mrkdwn=False, suffix="…"),
                },
            }
        )
    return [{"type": "actions", "elements": elements}] if elements else []


def _content(card: Card) -> list[Block]:
    blocks: list[Block] = []
    if card.text and not (card.body or card.fields or card.steps):
        # `text` is the notification fallback; shown only when nothing else says it
        blocks.append(_section(clip(card.text, SECTION_TEXT)))
    blocks.extend(_fields(card.fields))
    blocks.extend(_section(clip(p, SECTION_TEXT)) for p in card.body if p)
    blocks.extend(_steps(card.steps))
    return blocks


def render(card: Card) -> list[Block]:
    """The card as Block Kit blocks, within 50 blocks and every per-block limit."""
    tail = _actions(card)
    if card.footer:
        tail.append({"type": "context", "elements": [_mrkdwn(clip(card.footer, CONTEXT_TEXT))]})
    content = _content(card)
    room = MAX_BLOCKS - (1 if card.title.strip() else 0) - len(tail)
    if len(content) > room:
        hidden = len(content) - (room - 1)
        content = content[: room - 1]
        content.append(
            {
                "type": "context",
                "elements": [_mrkdwn(f"… ({hidden} more, truncated, see task page)")],
            }
        )
    head = [_header(card)] if card.title.strip() else []
    return [*head, *content, *tail]


def fallback(card: Card) -> str:
    """The notification text that goes with the blocks."""
    return clip(card.fallback(), FALLBACK_TEXT)
