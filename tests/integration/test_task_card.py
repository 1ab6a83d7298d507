"""The task card is the task's one card in its thread: approvals are asked on it
(with their buttons), decided there, and the summary is its final state. Pure:
records and time in, a neutral card out; and the rule for when its first post
may go."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.slack.endpoint import DECISIONS
from adapters.slack.inbound import to_click
from adapters.slack.render import render
from bot.application.cards import task_card
from tasks.rules.coalescing import first_post_waits
from tasks.store.models import Approval, Step, Task
from tasks.store.views import TaskView

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def task(state: str = "waiting_approval", **kw: Any) -> Task:
    return Task(id=7, platform="slack", tenant="T1", dedupe_key="e", requester="U1", requester_name="Alice",
                conversation={"channel": "C1"}, playbook="announce", state=state, created_at=NOW,
                updated_at=NOW, **kw)  # fmt: skip


def approval(id: int, step: str = "post", state: str = "pending", **kw: Any) -> Approval:
    return Approval(id=id, task_id=7, step_key=step, skill="chat.post", args_hash="h", approvers=["U1", "U2"],
                    summary={"target": "#eng", "text": "hello <!channel>"}, state=state,
                    expires_at=NOW + timedelta(hours=1), created_at=NOW, **kw)  # fmt: skip


def step(key: str, state: str) -> Step:
    return Step(task_id=7, key=key, skill="chat.post", position=0, state=state)


def test_a_pending_approval_is_asked_on_the_task_card_with_its_buttons() -> None:
    card = task_card(TaskView(task(), [step("post", "waiting_approval")], [approval(3)]), NOW)
    assert card.text == "Task #7: run announce · Waiting for approval"
    assert [(b.label, b.action, b.value) for b in card.buttons] == [
        ("Approve", "approve", {"approval_id": 3, "task_id": 7}),
        ("Reject", "reject", {"approval_id": 3, "task_id": 7}),
    ]
    (asked,) = [p for p in card.body if p.startswith("Approval needed for step post")]
    for line in ("What will be done: chat.post", "Where: #eng", "Text to be posted:\nhello <!channel>",
                 "Approvers: U1, U2", "Expires: 2026-12-02 10:00 UTC"):  # fmt: skip
        assert line in asked


def test_a_decided_approval_stays_on_the_card_as_one_line_without_buttons() -> None:
    decided = approval(3, state="approved", decided_by="U2", decided_at=NOW)
    card = task_card(TaskView(task("running"), [step("post", "running")], [decided]), NOW)
    assert card.buttons == ()
    assert "Approval for step post (chat.post): Approved by U2 at 2026-12-02 09:00 UTC" in card.body
    expired = task_card(TaskView(task(), [], [approval(4)]), NOW + timedelta(hours=2))
    assert expired.buttons == () and any("Expired without a decision" in p for p in expired.body)


def test_the_card_shows_the_latest_approval_of_a_step_asked_again() -> None:
    old = approval(3, state="superseded")
    card = task_card(TaskView(task(), [step("post", "waiting_approval")], [old, approval(5)]), NOW)
    assert [b.value["approval_id"] for b in card.buttons] == [5, 5]
    assert not any("No longer valid" in p for p in card.body)


def test_two_approvals_waiting_on_one_card_name_their_steps_and_stay_apart_on_slack() -> None:
    view = TaskView(task(), [step("a", "waiting_approval"), step("b", "waiting_approval")],
                    [approval(3, "a"), approval(4, "b")])  # fmt: skip
    card = task_card(view, NOW)
    assert [b.label for b in card.buttons] == ["Approve a", "Reject a", "Approve b", "Reject b"]
    (actions,) = [b for b in render(card) if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert len(ids) == len(set(ids))  # Block Kit refuses repeated action ids within a block
    second = actions["elements"][2]
    body = {"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"}, "channel": {"id": "C1"},
            "container": {"message_ts": "1.5"}, "actions": [second]}  # fmt: skip
    click = to_click(body, DECISIONS)
    assert click is not None and click.action == "approve" and click.value == {"approval_id": 4, "task_id": 7}


def test_the_summary_is_the_final_state_of_the_card() -> None:
    done = task("succeeded", finished_at=NOW + timedelta(seconds=75))
    steps = [step("post", "succeeded"), step("note", "skipped")]
    card = task_card(TaskView(done, steps, []), NOW + timedelta(hours=1), effects=["posted a message to #eng"])
    fields = {f.label: f.value for f in card.fields}
    assert fields["Status"] == "Done" and fields["Steps"] == "1 of 2 done" and fields["Time"] == "1m 15s"
    assert "Outcome: Done" in card.body and "What I did: posted a message to #eng" in card.body
    running = task_card(TaskView(task("running"), steps, []), NOW)
    assert not any(p.startswith("Outcome") for p in running.body) and "Steps" not in {f.label for f in running.fields}
    failed = task_card(TaskView(task("failed", error="boom", finished_at=NOW), steps, []), NOW)
    assert "Error: boom" in failed.body and "What I did: no side effects" in failed.body


@pytest.mark.parametrize(
    "state, age, waits",
    [
        ("queued", 0.0, True),
        ("planning", 0.5, True),
        ("running", 0.99, True),
        ("running", 1.0, False),  # a moment at most
        ("waiting_approval", 0.0, False),  # a person is asked: shown at once
        ("paused", 0.0, False),
        ("succeeded", 0.0, False),
        ("failed", 0.2, False),
        (None, 0.0, False),  # no such task (any more)
    ],
)
def test_a_new_task_card_waits_a_moment_only_while_its_task_is_busy(state: str | None, age: float,
                                                                     waits: bool) -> None:  # fmt: skip
    assert first_post_waits(NOW - timedelta(seconds=age), state, NOW, 1.0) is waits


def test_slack_escapes_what_the_approval_would_post() -> None:
    blocks = json.dumps(render(task_card(TaskView(task(), [], [approval(3)]), NOW)))
    assert "<!channel>" not in blocks and "&lt;!channel&gt;" in blocks
