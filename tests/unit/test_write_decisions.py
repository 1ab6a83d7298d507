"""The write side's decisions as pure functions: what a command, a click, the
clock or the delivery loop writes, decided from the rows read, with time passed
in. Tables of cases; no database (the shells around them are exercised by the
engine, bot and delivery tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.application.pacing import after_look, look_first
from tasks.rules.approvals import after_decision, expiries, gate
from tasks.rules.coalescing import coalesce
from tasks.rules.states import StepState, TaskState, resume, retry

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
EARLIER = NOW - timedelta(seconds=30)


@pytest.mark.parametrize(
    ("planned", "waiting_step", "target"),
    [
        (False, False, TaskState.QUEUED),  # paused before it had a plan: plan again
        (False, True, TaskState.QUEUED),  # no plan means no step can wait
        (True, False, TaskState.RUNNING),
        (True, True, TaskState.WAITING),  # a step still waits for its approval
    ],
)
def test_resume_goes_back_to_where_the_task_was(planned: bool, waiting_step: bool, target: TaskState) -> None:
    move = resume(planned=planned, waiting_step=waiting_step, now=NOW)
    assert move.target == target
    assert move.kind == "task.resumed"
    assert dict(move.values) == {"pause_reason": None, "run_after": NOW, "started_at": NOW}


@pytest.mark.parametrize(
    ("planned", "state", "target"),
    [
        (True, TaskState.FAILED, TaskState.RUNNING),  # from its failed steps
        (True, TaskState.EXPIRED, TaskState.RUNNING),  # ask for approval again
        (False, TaskState.FAILED, TaskState.RUNNING),  # failed while planning: plan again via running
        (False, TaskState.EXPIRED, TaskState.QUEUED),
        (False, TaskState.SUCCEEDED, TaskState.QUEUED),  # refused by the state machine, not here
    ],
)
def test_retry_runs_again_from_the_failed_steps(planned: bool, state: TaskState, target: TaskState) -> None:
    again = retry(planned=planned, state=state, now=NOW)
    assert again.move.target == target
    assert again.move.kind == "task.retried"
    assert dict(again.move.values) == {"error": None, "finished_at": None, "run_after": NOW, "started_at": NOW}
    assert again.steps_in == {StepState.FAILED, StepState.CANCELLED, StepState.WAITING}
    assert dict(again.step_values) == {"state": "pending", "attempts": 0, "error": None, "wake_at": None,
                                       "intent_at": None, "finished_at": None}  # fmt: skip


@pytest.mark.parametrize(
    ("state", "on_reject", "task_state", "step", "task"),
    [
        ("approved", "fail", "waiting_approval", {"state": "pending"}, "resume"),
        ("approved", "skip", "running", {"state": "pending"}, "due"),  # another step keeps it running
        ("superseded", "fail", "waiting_approval", {"state": "pending"}, "resume"),  # asks anew
        ("rejected", "fail", "waiting_approval",
         {"state": "failed", "finished_at": NOW, "error": "rejected by U2"}, "resume"),
        ("rejected", "skip", "waiting_approval", {"state": "skipped", "finished_at": NOW}, "resume"),
        ("rejected", "skip", "paused", {"state": "skipped", "finished_at": NOW}, "stay"),  # resume decides
        ("approved", "fail", "cancelled", {"state": "pending"}, "stay"),
    ],
)  # fmt: skip
def test_a_decided_approval_moves_its_step_and_task(
    state: str, on_reject: str, task_state: str, step: dict[str, Any], task: str
) -> None:
    after = after_decision(state=state, on_reject=on_reject, user="U2", task_state=task_state, now=NOW)
    assert dict(after.step) == step
    assert after.task == task


@dataclass(frozen=True)
class Due:
    id: int
    task_id: int
    step_key: str


@pytest.mark.parametrize(
    ("due", "states", "expected"),
    [
        ([], {}, []),
        ([Due(1, 10, "post")], {10: "waiting_approval"}, [(1, 10, "approval for step post expired")]),
        ([Due(1, 10, "post")], {10: "running"}, [(1, 10, None)]),  # another step runs: the task goes on
        ([Due(1, 10, "post")], {10: "paused"}, [(1, 10, None)]),  # paused: resume decides
        # two approvals of one waiting task: the task expires once, with the first
        ([Due(1, 10, "a"), Due(2, 10, "b")], {10: "waiting_approval"},
         [(1, 10, "approval for step a expired"), (2, 10, None)]),
        ([Due(1, 10, "a"), Due(2, 11, "b")], {10: "waiting_approval", 11: "waiting_approval"},
         [(1, 10, "approval for step a expired"), (2, 11, "approval for step b expired")]),
    ],
)  # fmt: skip
def test_expired_approvals_expire_a_task_that_waits_for_them(
    due: list[Due], states: dict[int, str], expected: list[tuple[int, int, str | None]]
) -> None:
    assert [(e.approval_id, e.task_id, e.task_error) for e in expiries(due, states)] == expected


@dataclass(frozen=True)
class Asked:
    id: int | None
    state: str
    args_hash: str


@pytest.mark.parametrize(
    ("latest", "action", "supersedes"),
    [
        (None, "ask", None),
        (Asked(5, "approved", "h1"), "run", None),
        (Asked(5, "approved", "h0"), "ask", 5),  # approved for other values: it no longer counts
        (Asked(5, "pending", "h1"), "wait", None),
        (Asked(5, "pending", "h0"), "wait", None),  # the click decides; a stale hash is caught there
        (Asked(5, "rejected", "h1"), "ask", None),
        (Asked(5, "expired", "h1"), "ask", None),  # after a retry: ask again
        (Asked(5, "superseded", "h1"), "ask", None),
    ],
)
def test_a_step_runs_only_with_an_approval_of_the_values_it_runs(
    latest: Asked | None, action: str, supersedes: int | None
) -> None:
    verdict = gate(latest, "h1")
    assert (verdict.action, verdict.supersedes) == (action, supersedes)


@dataclass(frozen=True)
class Row:
    id: int
    card_key: str | None
    state: str = "pending"
    next_attempt_at: datetime = NOW
    created_at: datetime = NOW
    payload: Any = None


def _ids(rows: list[Row]) -> list[int]:
    return [r.id for r in rows]


_CARD = [Row(1, "task:1", payload={"v": 1}), Row(3, "task:1", payload={"v": 2}), Row(5, "task:1", payload={"v": 3})]


@pytest.mark.parametrize(
    ("due", "cards", "limit", "picked", "payloads", "superseded"),
    [
        # plain messages go as they are, oldest written first
        ([Row(2, None, created_at=LATER), Row(1, None)], [], 10, [1, 2], {}, []),
        # one card's three updates: its oldest row carries the newest payload, the others go
        (_CARD, _CARD, 10, [1], {1: {"v": 3}}, [3, 5]),
        # the newest update is the carrier already: no payload to write
        ([Row(1, "task:1", payload={"v": 1})], [Row(1, "task:1", payload={"v": 1})], 10, [1], {}, []),
        # a card being sent right now is left alone
        ([Row(3, "task:1")], [Row(1, "task:1", state="sending", next_attempt_at=LATER), Row(3, "task:1")],
         10, [], {}, []),
        # a lapsed send counts as the carrier again
        ([Row(1, "task:1", state="sending", next_attempt_at=EARLIER), Row(3, "task:1")],
         [Row(1, "task:1", state="sending", next_attempt_at=EARLIER), Row(3, "task:1", payload={"v": 2})],
         10, [1], {1: {"v": 2}}, [3]),
        # a carrier waiting for its retry holds its card back, not the message behind it
        ([Row(3, "task:1"), Row(4, None)], [Row(1, "task:1", next_attempt_at=LATER), Row(3, "task:1")],
         10, [4], {}, []),
        # the limit counts picked rows; rows of cards not picked stay pending
        ([Row(1, None), Row(2, "task:2"), Row(3, "task:3")], [Row(2, "task:2"), Row(3, "task:3"), Row(4, "task:3")],
         2, [1, 2], {}, []),
    ],
)  # fmt: skip
def test_a_claim_takes_one_row_per_card(
    due: list[Row], cards: list[Row], limit: int, picked: list[int], payloads: dict[int, Any], superseded: list[int]
) -> None:
    plan = coalesce(due, cards, NOW, limit)
    assert _ids(plan.picked) == picked
    assert plan.payloads == payloads
    assert plan.superseded == superseded


@pytest.mark.parametrize(
    ("attempts", "put_back_at", "look"),
    [
        (1, None, False),  # a first attempt: nothing can be there yet
        (2, None, True),  # tried before: the post may have gone through
        (2, 1, False),  # this process put it back unsent at attempt 1
        (3, 1, True),  # put back at 1, then tried at 2 by somebody
        (3, 2, False),
    ],
)
def test_a_row_tried_before_is_looked_for_before_it_is_posted(attempts: int, put_back_at: int | None,
                                                              look: bool) -> None:  # fmt: skip
    assert look_first(attempts, put_back_at) is look


@pytest.mark.parametrize(
    ("found", "card", "then"),
    [(False, False, "post"), (False, True, "post"), (True, False, "done"), (True, True, "edit")],
)
def test_what_a_lookup_found_decides_the_send(found: bool, card: bool, then: str) -> None:
    assert after_look(found=found, card=card) == then
