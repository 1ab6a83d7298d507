"""Render neutral `Card`s as Adaptive Cards 1.5, and the answers Teams expects
for a card action (Universal Actions `adaptiveCard/action` invoke responses).

Pure functions only: no botbuilder types, no I/O. User-written strings are
escaped for the Adaptive Card markdown subset and cut to a length Teams shows.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.chat import Button, Card, Field

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
VERSION = "1.5"
MAX_TEXT = 2000
MAX_FACTS = 30

_TONE_COLOR = {"info": "Default", "good": "Good", "warning": "Warning", "bad": "Attention"}
_STYLE = {"default": "default", "primary": "positive", "danger": "destructive"}
_MARKDOWN = re.compile(r"([\\`*_\[\]~>#|])")
_LIST_START = re.compile(r"^(\s*)([-+]|\d+\.)(\s)", re.MULTILINE)


def escape(text: str, limit: int = MAX_TEXT) -> str:
    """Plain text -> Adaptive Card markdown that shows the text literally."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MARKDOWN.sub(r"\\\1", text)
    return _LIST_START.sub(r"\1\\\2\3", text)


def render(card: Card) -> dict[str, Any]:
    """A neutral card as an Adaptive Card 1.5 dict (the attachment content)."""
    body: list[dict[str, Any]] = [_title(card)]
    paragraphs = card.body or ((card.text,) if card.text else ())
    body += [_text(p) for p in paragraphs]
    if card.fields:
        body.append(_facts(card.fields))
    if card.steps:
        body.append(_facts(card.steps))
    if card.footer:
        body.append(_text(card.footer, isSubtle=True, size="Small"))
    content: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": VERSION,
        "body": body,
        "fallbackText": escape(card.fallback()),
    }
    actions = [_action(b) for b in card.buttons]
    if card.link:
        actions.append({"type": "Action.OpenUrl", "title": card.link_label, "url": card.link})
    if actions:
        content["actions"] = actions
    return content


def with_note(content: dict[str, Any], note: str) -> dict[str, Any]:
    """The same card with a highlighted note at the end (e.g. why a click was refused)."""
    note_block = _text(note, color="Attention", weight="Bolder")
    return {**content, "body": [*content.get("body", []), note_block]}


def card_answer(content: dict[str, Any]) -> dict[str, Any]:
    """Body of the invoke response that replaces the card for the person who clicked."""
    return {"statusCode": 200, "type": CONTENT_TYPE, "value": content}


def message_answer(text: str) -> dict[str, Any]:
    """Body of the invoke response that shows the clicker a short message."""
    return {"statusCode": 200, "type": MESSAGE_TYPE, "value": text}


def _title(card: Card) -> dict[str, Any]:
    return _text(card.title, weight="Bolder", size="Medium", color=_TONE_COLOR[card.tone])


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape(text), "wrap": True, **style}


def _facts(fields: tuple[Field, ...]) -> dict[str, Any]:
    facts = [{"title": escape(f.label, 200), "value": escape(f.value)} for f in fields]
    return {"type": "FactSet", "facts": facts[:MAX_FACTS]}


def _action(button: Button) -> dict[str, Any]:
    """Action.Execute (Universal Actions) with an Action.Submit fallback for
    clients that predate it; both carry the verb and the button's value."""
    return {
        "type": "Action.Execute",
        "title": button.label,
        "verb": button.action,
        "data": dict(button.value),
        "style": _STYLE[button.style],
        "fallback": {
            "type": "Action.Submit",
            "title": button.label,
            "data": {**button.value, "verb": button.action},
            "style": _STYLE[button.style],
        },
    }
