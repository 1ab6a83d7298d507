"""The retention rules, pure and table-driven: which tasks, outbox rows,
console messages and events may be pruned at a given time, and how many whole
tasks one bounded transaction takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.rules.retention import (
    Cutoffs,
    Retention,
    cutoffs,
    fit_batch,
    loose_event_prunable,
    message_prunable,
    outbox_prunable,
    task_prunable,
)

NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CUT = cutoffs(Retention(task_days=30, outbox_days=7, transcript_days=14), NOW)
KEEP_ALL = cutoffs(Retention(task_days=0, outbox_days=0, transcript_days=0), NOW)


def test_cutoffs_are_now_minus_each_window_and_zero_keeps_forever() -> None:
    assert Cutoffs(tasks=NOW - 30 * DAY, outbox=NOW - 7 * DAY, transcript=NOW - 14 * DAY) == CUT
    assert Cutoffs(None, None, None) == KEEP_ALL
    with pytest.raises(ValueError):
        Retention(task_days=-1)
    with pytest.raises(ValueError):
        Retention(batch=0)


@pytest.mark.parametrize(
    ("state", "age_days", "undelivered", "cut", "prunable"),
    [
        ("succeeded", 31, 0, CUT, True),
        ("failed", 31, 0, CUT, True),
        ("cancelled", 45, 0, CUT, True),
        ("expired", 31, 0, CUT, True),
        ("succeeded", 29, 0, CUT, False),  # inside the window
        ("succeeded", 30, 0, CUT, False),  # exactly at the cutoff: kept
        ("succeeded", 400, 1, CUT, False),  # its summary still waits for the platform
        ("waiting_approval", 400, 0, CUT, False),  # never an unfinished task
        ("running", 400, 0, CUT, False),
        ("queued", 400, 0, CUT, False),
        ("planning", 400, 0, CUT, False),
        ("paused", 400, 0, CUT, False),
        ("succeeded", 400, 0, KEEP_ALL, False),  # 0 days: forever
    ],
)
def test_which_tasks_may_go(state: str, age_days: int, undelivered: int, cut: Cutoffs, prunable: bool) -> None:
    assert task_prunable(state, NOW - age_days * DAY, undelivered, cut) is prunable


@pytest.mark.parametrize(
    ("state", "created_days", "tried_days", "cut", "prunable"),
    [
        ("sent", 8, 8, CUT, True),
        ("dead", 8, 8, CUT, True),
        ("superseded", 8, 8, CUT, True),
        ("sent", 6, 6, CUT, False),  # inside the window
        ("sent", 8, 6, CUT, False),  # written long ago, delivered recently
        ("pending", 400, 400, CUT, False),  # never an undelivered row
        ("sending", 400, 400, CUT, False),
        ("sent", 400, 400, KEEP_ALL, False),
    ],
)
def test_which_outbox_rows_may_go(state: str, created_days: int, tried_days: int, cut: Cutoffs,
                                  prunable: bool) -> None:  # fmt: skip
    assert outbox_prunable(state, NOW - created_days * DAY, NOW - tried_days * DAY, cut) is prunable


@pytest.mark.parametrize(
    ("age_days", "is_card", "cut", "prunable"),
    [
        (15, False, CUT, True),
        (13, False, CUT, False),
        (400, True, CUT, False),  # a kept task's card: its task may still edit it
        (400, False, KEEP_ALL, False),
    ],
)
def test_which_console_messages_may_go(age_days: int, is_card: bool, cut: Cutoffs, prunable: bool) -> None:
    assert message_prunable(NOW - age_days * DAY, is_card, cut) is prunable


@pytest.mark.parametrize(
    ("task_id", "age_days", "cut", "prunable"),
    [(None, 31, CUT, True), (None, 29, CUT, False), (7, 400, CUT, False), (None, 400, KEEP_ALL, False)],
)
def test_which_events_of_no_task_may_go(task_id: int | None, age_days: int, cut: Cutoffs, prunable: bool) -> None:
    assert loose_event_prunable(task_id, NOW - age_days * DAY, cut) is prunable


@pytest.mark.parametrize(
    ("candidates", "limit", "chosen"),
    [
        ([(1, 10), (2, 10), (3, 10)], 25, [1, 2]),
        ([(1, 10), (2, 15), (3, 1)], 25, [1, 2]),  # in order: a later small task waits its turn
        ([(1, 40), (2, 1)], 25, [1]),  # one task larger than the batch goes alone
        ([], 25, []),
        ([(1, 1)] * 3, 2, [1, 1]),
    ],
)
def test_a_batch_takes_whole_tasks_up_to_its_row_limit(candidates: list[tuple[int, int]], limit: int,
                                                       chosen: list[int]) -> None:  # fmt: skip
    assert fit_batch(candidates, limit) == chosen
