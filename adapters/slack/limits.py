"""Slack's Web API rate limits, kept by the bot; pure: time is passed in.

chat.postMessage allows about one message a second per channel (short bursts
tolerated) under a workspace-wide cap; chat.update and conversations.* are
Tier 3 methods, about 50 a minute per workspace; chat.postEphemeral and
views.publish are Tier 4, about 100 a minute. Keeping under them ourselves
spares the round trip that ends in a 429.

A token bucket shapes the short bursts; it alone would let a full bucket plus
a minute's refill through in one minute, so the per-minute figures are also
kept as sliding windows (adapters/pacing.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.pacing import Rules, SlidingLimits

POST_CHANNEL: Rules = ((60, 60.0),)
# Slack publishes no figure for the workspace-wide cap on posts; this is far
# above what one channel may take and keeps many busy channels apart from it.
POST_WORKSPACE: Rules = ((300, 60.0),)
TIER3: Rules = ((50, 60.0),)
TIER4: Rules = ((100, 60.0),)
EPSILON = 1e-9


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float = -1.0
    stamp: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float) -> float:
        """Take a token if there is one and return 0; else take nothing and
        return how many seconds until one is due."""
        if self.stamp is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - EPSILON:  # a refill a rounding error short is a whole token
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class Buckets:
    """One bucket per key (a channel, a workspace), made on first use."""

    rate: float
    capacity: float
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, self.capacity)
        return bucket.take(now)


def post_buckets() -> Buckets:
    return Buckets(rate=1.0, capacity=3.0)


def update_buckets() -> Buckets:
    return Buckets(rate=50 / 60, capacity=10.0)


@dataclass
class Limits:
    """Every Slack limit the bot keeps to: buckets for bursts, windows per minute."""

    posts: Buckets = field(default_factory=post_buckets)
    updates: Buckets = field(default_factory=update_buckets)
    channel_posts: SlidingLimits = field(default_factory=lambda: SlidingLimits(POST_CHANNEL))
    workspace_posts: SlidingLimits = field(default_factory=lambda: SlidingLimits(POST_WORKSPACE))
    workspace_updates: SlidingLimits = field(default_factory=lambda: SlidingLimits(TIER3))
    reads: SlidingLimits = field(default_factory=lambda: SlidingLimits(TIER3))
    ephemeral: SlidingLimits = field(default_factory=lambda: SlidingLimits(TIER4))
    views: SlidingLimits = field(default_factory=lambda: SlidingLimits(TIER4))
