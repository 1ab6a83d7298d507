"""The delivery loop's pure decisions (bot/application/pacing.py, leadership.py):
when a failed row is tried again and what that says, which rows wait behind one
that must, who keeps the delivery role through a database outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.application.leadership import held_through_outage, local_platforms
from bot.application.pacing import ORDER_PATIENCE, RETRY, Failure, after_failure, waits_behind

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("attempts, retry_after, permanent, expected", [
    (1, None, False, Failure(NOW + timedelta(seconds=0.75), True, False, "retry")),  # the platform failed: hold it
    (9, None, False, Failure(NOW + timedelta(seconds=RETRY.cap * 0.75), True, False, "retry")),  # capped
    (1, 5.0, False, Failure(NOW + timedelta(seconds=5), False, True, "throttled")),  # asked to wait: not taken
    (3, 0.1, False, Failure(NOW + timedelta(seconds=2.25), False, True, "throttled")),  # the backoff is longer
    (2, None, True, Failure(None, False, False, "dead")),  # refused for good: give up
])  # fmt: skip
def test_a_failed_row_is_tried_again_after_the_backoff_or_the_platforms_wait(
    attempts: int, retry_after: float | None, permanent: bool, expected: Failure
) -> None:
    assert after_failure(attempts, NOW, retry_after=retry_after, permanent=permanent) == expected


@pytest.mark.parametrize("behind_card, age, waits", [
    (False, 0.0, True),
    (False, ORDER_PATIENCE * 10, True),  # behind a person's message, order is kept however long
    (True, ORDER_PATIENCE, True),
    (True, ORDER_PATIENCE + 1, False),  # behind a card the platform keeps refusing: go ahead
])  # fmt: skip
def test_rows_wait_behind_a_message_always_and_behind_a_card_for_a_while(
    behind_card: bool, age: float, waits: bool
) -> None:
    assert waits_behind(behind_card=behind_card, written=NOW - timedelta(seconds=age), now=NOW) is waits


def test_through_an_outage_only_a_holder_within_its_lease_keeps_the_role() -> None:
    later = NOW + timedelta(seconds=1)
    assert held_through_outage(leading=True, lease_until=later, now=NOW)
    assert not held_through_outage(leading=True, lease_until=NOW, now=NOW)
    assert not held_through_outage(leading=True, lease_until=None, now=NOW)
    assert not held_through_outage(leading=False, lease_until=later, now=NOW)


def test_every_process_delivers_only_the_console_without_the_role() -> None:
    assert local_platforms({"slack", "teams", "console"}) == frozenset({"console"})
    assert local_platforms({"slack"}) == frozenset()
