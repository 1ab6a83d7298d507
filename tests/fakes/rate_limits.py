"""Sliding-window rate limits for the fake Slack and Bot Connector: what the
real services publish, enforced exactly, so a soak can tell whether the bot
keeps under them. Pure: the time is passed in.

Written apart from the bot's own pacing (adapters/) on purpose: a shared bug
would hide itself.

Slack (api.slack.com/docs/rate-limits, per method per app per workspace):
chat.postMessage about 1 per second per channel with short bursts, plus a
workspace-wide cap; Tier 3 (chat.update, conversations.*) 50 per minute;
Tier 4 (chat.postEphemeral, views.publish) 100 per minute.
Teams (learn.microsoft.com, "Rate limiting for bots"): per bot per
conversation 7 per 1 s, 8 per 2 s, 60 per 30 s, 1,800 per hour; per bot across
conversations 50 per second (and, as the brief reads the page, 1,800 per hour).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Rules = tuple[tuple[int, float], ...]  # (at most this many, per this many seconds)
Scope = Callable[[Mapping[str, Any]], str]  # the key a request counts against

SLACK_POST_CHANNEL: Rules = ((4, 1.0), (60, 60.0))  # "1 a second, short bursts": 60 a minute, 4 at once
SLACK_POST_WORKSPACE: Rules = ((300, 60.0),)
SLACK_TIER3: Rules = ((50, 60.0),)
SLACK_TIER4: Rules = ((100, 60.0),)
TEAMS_CONVERSATION: Rules = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
TEAMS_BOT: Rules = ((50, 1.0), (1800, 3600.0))


class Windows:
    """Admitted request times per key, checked against every rule."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.seen: dict[str, deque[float]] = {}

    def wait(self, key: str, now: float) -> float:
        """0 when one more request fits now; else how long until it would."""
        times = self.seen.setdefault(key, deque())
        longest = max(period for _, period in self.rules)
        while times and times[0] <= now - longest:
            times.popleft()
        wait = 0.0
        for limit, period in self.rules:
            inside = [t for t in times if t > now - period]
            if len(inside) >= limit:
                wait = max(wait, inside[-limit] + period - now)
        return wait

    def admit(self, key: str, now: float) -> None:
        self.seen.setdefault(key, deque()).append(now)


@dataclass
class Limiter:
    """Rules per request kind, each counted against a scope (a channel, the
    workspace, a conversation). A request is admitted only if every scope it
    counts against has room; refusals are counted and not recorded as sends."""

    limits: dict[str, list[tuple[Scope, Windows]]]
    refused: Counter[str] = field(default_factory=Counter)
    admitted: Counter[str] = field(default_factory=Counter)

    def check(self, kind: str, request: Mapping[str, Any], now: float) -> float:
        """0 (and the request is counted) or the Retry-After, in whole seconds."""
        scoped = [(w, scope(request)) for scope, w in self.limits.get(kind, [])]
        wait = max((w.wait(key, now) for w, key in scoped), default=0.0)
        if wait > 0:
            self.refused[kind] += 1
            return float(max(1, math.ceil(wait)))
        for w, key in scoped:
            w.admit(key, now)
        self.admitted[kind] += 1
        return 0.0


def _workspace(request: Mapping[str, Any]) -> str:
    return "workspace"


def _channel(request: Mapping[str, Any]) -> str:
    return str(request.get("channel", ""))


def slack_limits(scale: float = 1.0) -> Limiter:
    """Slack's published limits; `scale` < 1 shortens every period (a short test)."""

    def rules(r: Rules) -> Windows:
        return Windows(tuple((n, per * scale) for n, per in r))

    return Limiter({
        "chat.postMessage": [(_channel, rules(SLACK_POST_CHANNEL)), (_workspace, rules(SLACK_POST_WORKSPACE))],
        "chat.update": [(_workspace, rules(SLACK_TIER3))],
        "conversations.replies": [(_workspace, rules(SLACK_TIER3))],
        "conversations.history": [(_workspace, rules(SLACK_TIER3))],
        "chat.postEphemeral": [(_workspace, rules(SLACK_TIER4))],
        "views.publish": [(_workspace, rules(SLACK_TIER4))],
    })  # fmt: skip


def teams_limits(scale: float = 1.0) -> Limiter:
    """The Bot Connector's published limits for every send (post, reply, update)."""
    conversation = Windows(tuple((n, per * scale) for n, per in TEAMS_CONVERSATION))
    bot = Windows(tuple((n, per * scale) for n, per in TEAMS_BOT))
    scopes: list[tuple[Scope, Windows]] = [(lambda r: str(r["conversation"]), conversation), (_workspace, bot)]
    return Limiter({"send": scopes})
