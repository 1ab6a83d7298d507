"""Neutral cards and plain text -> the console's HTML. Pure functions.

Every string from a card or a person is escaped here, so what a user types
(`<script>`, `<img onerror=…>`) shows as text. The only markup added is the
card's own structure, inline `code` and links to http(s) URLs.
"""

from __future__ import annotations

import json
import re
from html import escape

from adapters.chat import Button, Card, Field

BOT_NAME = "Cowork"
_CODE = re.compile(r"`([^`\n]+)`")
_MENTION = re.compile(r"(?<![\w@&#;/])@([a-z][a-z0-9._-]{0,31})\b", re.IGNORECASE)
# applied to escaped text: a URL ends at an escaped quote as well as at a raw one
_URL = re.compile(r"\bhttps?://(?:(?!&quot;|&#x27;)[^\s<>\"'`])*(?:(?!&quot;|&#x27;)[^\s<>\"'`.,;:!?)\]])")


def _attr(value: str) -> str:
    return escape(value, quote=True)


def render_text(text: str) -> str:
    """Plain text as HTML: escaped, `code` spans, @mentions, clickable http(s)
    links. Line breaks are kept by the page's CSS (white-space: pre-wrap)."""
    out = escape(text, quote=True)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _MENTION.sub(r'<span class="mention">@\1</span>', out)
    return _URL.sub(lambda m: f'<a href="{m.group(0)}" target="_blank" rel="noopener">{m.group(0)}</a>', out)


def safe_link(url: str | None) -> str | None:
    """Only http(s) and same-site links become hrefs (never javascript: or data:)."""
    if not url:
        return None
    lowered = url.strip().lower()
    if lowered.startswith(("http://", "https://")) or (url.startswith("/") and not url.startswith("//")):
        return url.strip()
    return None


def is_plain(card: Card, bot_name: str = BOT_NAME) -> bool:
    """A card that is only words (a posted message, a short reply) shows as text."""
    return not (card.fields or card.steps or card.buttons or card.link) and card.title in (
        "",
        bot_name,
    )


def _fields(fields: tuple[Field, ...], css: str) -> str:
    if not fields:
        return ""
    rows = "".join(
        f'<div class="field"><dt>{escape(f.label)}</dt><dd>{render_text(f.value)}</dd></div>' for f in fields
    )
    return f'<dl class="{css}">{rows}</dl>'


def _button(b: Button) -> str:
    value = json.dumps(b.value, separators=(",", ":"), sort_keys=True, default=str)
    return (
        f'<button type="button" class="btn btn-{_attr(b.style)}" data-action="{_attr(b.action)}" '
        f'data-value="{_attr(value)}">{escape(b.label)}</button>'
    )


def _body(lines: tuple[str, ...]) -> str:
    return "".join(f'<p class="card-line">{render_text(line)}</p>' for line in lines)


def render(card: Card, bot_name: str = BOT_NAME) -> str:
    """The HTML of one card (or of a plain message, for a card that is only text)."""
    if is_plain(card, bot_name):
        lines = card.body or ((card.text,) if card.text else ())
        return f'<div class="msg-text">{_body(lines)}</div>'
    parts = [f'<div class="card tone-{_attr(card.tone)}">']
    if card.title:
        parts.append(f'<div class="card-title">{escape(card.title)}</div>')
    parts.append(_body(card.body))
    parts.append(_fields(card.fields, "card-fields"))
    parts.append(_fields(card.steps, "card-steps"))
    if card.buttons:
        parts.append(f'<div class="card-actions">{"".join(_button(b) for b in card.buttons)}</div>')
    link = safe_link(card.link)
    if link:
        parts.append(f'<a class="card-link" href="{_attr(link)}">{escape(card.link_label)} →</a>')
    if card.footer:
        parts.append(f'<div class="card-footer">{escape(card.footer)}</div>')
    parts.append("</div>")
    return "".join(p for p in parts if p)
