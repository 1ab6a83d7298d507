"""Retry decisions: pure functions of the attempt count, the error and time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base: float = 0.5
    cap: float = 60.0


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    at: datetime | None = None
    reason: str = ""


def backoff(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Exponential backoff with full jitter: uniform in [base*2^(n-1)/2, base*2^(n-1)]."""
    ceiling = min(policy.cap, policy.base * float(2 ** max(0, attempt - 1)))
    return ceiling / 2 + (ceiling / 2) * rand


def decide_retry(
    attempt: int,
    policy: RetryPolicy,
    *,
    retryable: bool,
    now: datetime,
    retry_after: float | None = None,
    rand: float | None = None,
) -> RetryDecision:
    """After failed attempt number `attempt` (1-based): try again, and when?"""
    if not retryable:
        return RetryDecision(False, reason="not retryable")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, reason=f"gave up after {attempt} attempts")
    delay = backoff(attempt, policy, random.random() if rand is None else rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return RetryDecision(True, at=now + timedelta(seconds=delay))


# Planning while the LLM is unavailable: retried from the database (no worker
# waits), briefly spaced so the bot is back to work soon after the LLM is, and
# given up after PLAN_PATIENCE with the reason.
PLAN_RETRY = RetryPolicy(max_attempts=10**6, base=1.0, cap=10.0)
PLAN_PATIENCE = timedelta(minutes=15)


def waiting_note(cause: str, next_try: datetime, give_up: datetime) -> str:
    """What a task's card says while planning waits for the LLM: why (the error's
    class only: its message may carry what a person should not see), when it
    tries next, and until when it keeps trying."""
    return (f"Waiting for the LLM ({cause}): trying again at {next_try:%H:%M:%S} UTC, "
            f"and until {give_up:%H:%M} UTC before giving up.")  # fmt: skip


def decide_plan_retry(
    attempt: int, since: datetime, now: datetime, *, retry_after: float | None = None, rand: float | None = None
) -> RetryDecision:
    """After planning attempt `attempt` failed for a reason that may pass: when to plan again."""
    if now - since >= PLAN_PATIENCE:
        minutes = (now - since).total_seconds() / 60
        return RetryDecision(False, reason=f"gave up after {attempt} tries over {minutes:.0f} minutes")
    return decide_retry(attempt, PLAN_RETRY, retryable=True, now=now, retry_after=retry_after, rand=rand)
