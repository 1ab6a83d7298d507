"""When delivery sends, retries and looks: pure decisions, time passed in.

Retries of a platform that failed (5xx, connection refused) back off to at most
`RETRY.cap` seconds, so a platform that comes back after an outage of any
length is used again within seconds. While a platform fails, one row at a time
probes it and the others wait without calling it (`Hold`), so an outage costs
neither the platform's rate limits nor a lookup (`find`) per row afterwards. A
new message that waits for its retry holds back the rows queued after it in
its conversation, which keeps their order; behind a card (a status display)
for `ORDER_PATIENCE` at most, so a card the platform keeps refusing never
holds people's messages. A post that may have happened before is looked up
before it is sent again (`look_first`, `after_look`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from tasks.rules.retry import RetryPolicy, backoff

RETRY = RetryPolicy(max_attempts=10**9, base=1.0, cap=3.0)
ORDER_PATIENCE = 30.0  # seconds a row waits behind a card the platform keeps refusing before it goes ahead

Lane = tuple[str, str]  # (platform, channel): one conversation's rows go in order
Outcome = Literal["sent", "retry", "throttled", "dead"]


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds before a failed row is tried again: the backoff (at most
    `RETRY.cap`), or longer when the platform said how long to wait."""
    return max(backoff(attempts, RETRY, 0.5), retry_after or 0.0)


@dataclass(frozen=True)
class Failure:
    """What a failed send leads to."""

    retry_at: datetime | None  # None: given up (a permanent refusal)
    platform_failing: bool  # the platform itself failed (5xx, unreachable): hold its other rows
    unsent: bool  # the platform asked to wait: it did not take the message, no lookup next time
    outcome: Outcome


def after_failure(attempts: int, now: datetime, *, retry_after: float | None, permanent: bool) -> Failure:
    """A row failed at its `attempts`-th try: when it is tried again, and what that says."""
    retry_at = None if permanent else now + timedelta(seconds=retry_delay(attempts, retry_after))
    outcome: Outcome = "dead" if permanent else ("throttled" if retry_after else "retry")
    return Failure(retry_at, retry_at is not None and retry_after is None, retry_after is not None, outcome)


def look_first(attempts: int, put_back_at: int | None) -> bool:
    """Before posting a row tried before: the platform may have it already (the
    answer was lost, or the process died after posting), so look for it by its
    key first; unless this process put it back unsent at its last attempt
    (`put_back_at`: that attempt's number), when nobody else tried it meanwhile."""
    return attempts > 1 and put_back_at != attempts - 1


def after_look(*, found: bool, card: bool) -> Literal["edit", "done", "post"]:
    """What the lookup found decides: a card found is edited to the state it
    shows now; a message found was posted already; nothing found is posted."""
    if not found:
        return "post"
    return "edit" if card else "done"


def waits_behind(*, behind_card: bool, written: datetime, now: datetime) -> bool:
    """Whether a row queued behind one that must wait goes back with it (keeping
    the conversation's order): always behind a message; behind a card only for
    `ORDER_PATIENCE`, after which it goes ahead."""
    return not behind_card or (now - written).total_seconds() <= ORDER_PATIENCE


@dataclass
class Hold:
    """Which platforms are failing, and until when only a probe may call them."""

    until: dict[str, datetime] = field(default_factory=dict)

    def may_send(self, platform: str, now: datetime) -> bool:
        """Whether a row may call the platform now; past the hold, the first row
        asking is the probe and the others wait another `RETRY.cap` for its answer."""
        until = self.until.get(platform)
        if until is None:
            return True
        if now < until:
            return False
        self.until[platform] = now + timedelta(seconds=RETRY.cap)
        return True

    def failed(self, platform: str, retry_at: datetime) -> None:
        self.until[platform] = retry_at

    def answered(self, platform: str) -> None:
        self.until.pop(platform, None)
