"""Token buckets for Slack's Web API rate limits, pure: time is passed in.

chat.postMessage allows about one message a second per channel (short bursts
tolerated); chat.update is a Tier 3 method, about 50 a minute per workspace.
Keeping under them ourselves spares the round trip that ends in a 429.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
        if self.tokens >= 1.0:
            self.tokens -= 1.0
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
