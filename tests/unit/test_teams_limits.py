"""Per-conversation token buckets and what Bot Connector failures mean."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.teams.errors import delivery_error, retry_after
from adapters.teams.limits import ConversationLimits

NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def sends_without_waiting(limits: ConversationLimits, key: str, now: float) -> int:
    count = 0
    while limits.reserve(key, now, max_wait=0.0) == 0.0:
        count += 1
    return count


def schedule(count: int) -> list[float]:
    """When `count` sends queued at t=0 may go out."""
    limits = ConversationLimits()
    return [limits.reserve("c1", 0.0, max_wait=float("inf")) for _ in range(count)]


def test_seven_messages_go_at_once_and_the_eighth_waits_a_second():
    limits = ConversationLimits()
    assert sends_without_waiting(limits, "c1", 0.0) == 7
    assert limits.reserve("c1", 0.0, max_wait=5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("limit", "period"), [(7, 1.0), (60, 30.0), (1800, 3600.0)])
def test_no_window_ever_holds_more_than_the_teams_limit(limit: int, period: float):
    times = schedule(1900)
    assert times == sorted(times)
    assert all(times[i + limit] - times[i] >= period for i in range(len(times) - limit))


def test_sends_are_as_fast_as_the_limits_allow():
    times = schedule(1801)
    assert times[59] < 30.0  # 60 within the first 30 s
    assert times[60] == pytest.approx(30.0)
    assert times[1800] == pytest.approx(3600.0)


def test_conversations_do_not_share_limits():
    limits = ConversationLimits()
    sends_without_waiting(limits, "c1", 0.0)
    assert limits.reserve("c2", 0.0, max_wait=0.0) == 0.0


def test_a_long_wait_is_not_reserved():
    limits = ConversationLimits(rules=((1, 10.0),))
    assert limits.reserve("c", 0.0, max_wait=1.0) == 0.0
    assert limits.reserve("c", 0.0, max_wait=1.0) == pytest.approx(10.0)
    assert limits.reserve("c", 10.0, max_wait=1.0) == 0.0


@pytest.mark.parametrize(
    ("status", "header", "wait", "permanent"),
    [
        (429, "7", 7.0, False),
        (412, None, None, False),
        (502, "2", 2.0, False),
        (504, None, None, False),
        (429, "Thu, 01 Jan 2026 10:00:30 GMT", 30.0, False),
        (403, None, None, True),
        (404, None, None, True),
    ],
)
def test_connector_statuses_map_to_delivery_decisions(
    status: int, header: str | None, wait: float | None, permanent: bool
):
    headers = {"Retry-After": header} if header else {}
    error = delivery_error(status, headers, "detail", NOW)
    assert error.retry_after == wait
    assert error.permanent is permanent


def test_removed_bot_reason_says_so():
    assert "no longer in this conversation" in delivery_error(403, {}, "x", NOW).reason


def test_unreadable_retry_after_is_ignored():
    assert retry_after("soon", NOW) is None
    assert retry_after("-3", NOW) == 0.0
