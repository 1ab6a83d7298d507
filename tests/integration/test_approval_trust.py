"""Who may approve, and what an approval covers.

An approver is a person of one platform's workspace: a click carrying another
Slack workspace's team id, or a click on the console mounted beside Slack, does
not decide a Slack task even when the user id matches; the refusal is in the
audit trail with both workspaces. An approval covers the step's arguments as
they will run (placeholders filled in): the card shows those values, and if an
earlier step's result changes before the effect, a person is asked again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import update

from adapters.chat import ConversationRef, Inbound
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tasks.rules import approvals
from tasks.rules.approvals import Approver, args_hash
from tasks.skills.base import Effect, Skill, StepContext, StepResult
from tasks.store.db import Database
from tasks.store.store import STEP
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness, person
from tests.fakes.slack_api import TEAM, FakeSlack, click_payload, fake_slack, mention_event, signed_headers

SECRET = "trust-secret"
THREAD = "1699999999.000100"
OTHER_TEAM = "T0002"


# -- the pure decision --------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "accepted"),
    [
        (Approver("slack", "T1", "U1"), True),
        (Approver("slack", "T0002", "U1"), False),  # same user id, another workspace
        (Approver("console", "T1", "U1"), False),  # same ids, another platform
        (Approver("teams", "T1", "U1"), False),
    ],
)
def test_an_approver_is_a_person_of_the_tasks_own_workspace(who: Approver, accepted: bool) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    verdict = approvals.decide(
        state="pending", approvers=["U1"], required=1, decisions=[], expires_at=now + timedelta(hours=1),
        bound_hash="h", current_hash="h", approver=who, task_workspace=("slack", "T1"), approve=True, now=now,
    )  # fmt: skip
    assert verdict.accepted is accepted
    if not accepted:
        assert verdict.reason == "this approval belongs to another workspace" and verdict.new_state == "pending"


# -- Slack and the console, over HTTP ----------------------------------------


@dataclass
class Bot:
    url: str
    http: aiohttp.ClientSession
    runtime: Runtime
    slack: FakeSlack

    async def slack_post(self, body: str, content_type: str) -> int:
        headers = signed_headers(body, SECRET, content_type=content_type)
        async with self.http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as r:
            await r.read()
            return r.status

    async def mention(self, text: str, event_id: str = "Ev1") -> int:
        return await self.slack_post(json.dumps(mention_event(text, event_id=event_id, ts=THREAD)), "application/json")

    async def click(self, value: dict[str, Any], user: str, team: str = TEAM) -> int:
        payload = click_payload("approve", json.dumps(value), user=user, message_ts="1700000000.5", thread_ts=THREAD)
        payload["team"] = {"id": team}
        return await self.slack_post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def console(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}{path}", json=body) as r:
            return r.status, await r.json()

    async def console_messages(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.url}/api/console/messages", params={"user": "alice"}) as r:
            return list((await r.json())["messages"])

    async def settle(self) -> None:
        for _ in range(5):
            await self.runtime.engine.drain()
            await self.runtime.delivery.drain()


@pytest.fixture
async def bot(db_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Bot]:
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  approvers: [requester, alice]\n")  # alice: a console name
    async with fake_slack() as slack:
        settings = Settings(
            DATABASE_URL=db_url, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.base_url, COWORK_POLICY=str(policy),
        )  # fmt: skip
        runtime = Runtime(settings, clock=clock)
        runner = web.AppRunner(make_app(runtime, console=True))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            yield Bot(f"http://127.0.0.1:{port}", http, runtime, slack)
        await runner.cleanup()
        runtime.close()


async def _slack_approval(bot: Bot) -> dict[str, Any]:
    assert await bot.mention("run announce channel=#eng text=hi") == 200
    await bot.settle()
    (task,) = await bot.runtime.store.list_tasks()
    (approval,) = (await bot.runtime.store.view(task.id)).approvals  # type: ignore[arg-type]
    return {"approval_id": approval.id, "task_id": task.id}


async def test_a_click_from_another_workspace_does_not_approve(bot: Bot) -> None:
    value = await _slack_approval(bot)
    # U1 asked in workspace T1; a U1 of workspace T0002 clicks a button carrying the approval
    assert await bot.click(value, "U1", team=OTHER_TEAM) == 200
    await bot.settle()
    assert bot.slack.messages.get("#eng") is None  # nothing was posted
    approval = await bot.runtime.store.get_approval(value["approval_id"])
    assert approval is not None and approval.state == "pending"
    refused = [e for e in await bot.runtime.store.events(value["task_id"]) if e.kind == "approval.refused"]
    assert [(e.actor, e.detail) for e in refused] == [("U1", {
        "approval": value["approval_id"], "reason": "this approval belongs to another workspace",
        "platform": "slack", "tenant": OTHER_TEAM, "task_platform": "slack", "task_tenant": TEAM,
    })]  # fmt: skip

    assert await bot.click(value, "U1") == 200  # the requester, in the task's workspace
    await bot.settle()
    assert [m["text"] for m in bot.slack.messages["#eng"]] == ["hi"]
    approved = [e for e in await bot.runtime.store.events(value["task_id"]) if e.kind == "approval.approved"]
    assert approved[0].detail["tenant"] == TEAM and approved[0].detail["platform"] == "slack"


async def test_the_console_beside_slack_decides_only_console_tasks(bot: Bot) -> None:
    value = await _slack_approval(bot)  # alice is an approver by name
    status, _ = await bot.console("/api/console/messages", {
        "channel": "general", "user": "alice", "text": "@cowork run announce channel=#eng text=mine"})  # fmt: skip
    assert status == 201
    await bot.settle()
    card = next(m for m in await bot.console_messages() if m["buttons"])  # the console task's approval card

    status, out = await bot.console("/api/console/actions", {
        "user": "alice", "action": "approve", "value": value, "message_id": card["id"]})  # fmt: skip
    assert status == 200 and out == {"accepted": False, "text": "Not done: this approval belongs to another workspace."}
    await bot.settle()
    assert bot.slack.messages.get("#eng") is None
    approval = await bot.runtime.store.get_approval(value["approval_id"])
    assert approval is not None and approval.state == "pending"
    refused = [e for e in await bot.runtime.store.events(value["task_id"]) if e.kind == "approval.refused"]
    assert refused[0].detail["platform"] == "console" and refused[0].detail["task_platform"] == "slack"


async def test_a_typed_command_from_another_workspace_controls_nothing(bot: Bot) -> None:
    value = await _slack_approval(bot)
    conv = ConversationRef("slack", OTHER_TEAM, "C9", "1.0")
    for word in ("cancel", "pause", "retry", "resume"):
        inbound = Inbound("slack", OTHER_TEAM, f"Ev-{word}", "U1", f"{word} {value['task_id']}", conv)
        handled = await bot.runtime.conversation.handle_message(inbound)
        assert handled.kind == "refused" and handled.text == f"There is no task #{value['task_id']} here."
    task = await bot.runtime.store.get_task(value["task_id"])
    assert task is not None and task.state == "waiting_approval"


# -- the approval covers the values that will run ----------------------------


class Drafter(Skill):
    """An earlier step whose text the post uses; its output is set by the test."""

    name = "test.draft"
    effect = Effect.READ
    text: ClassVar[str] = "v1"

    async def run(self, ctx: StepContext, args: dict[str, Any]) -> StepResult:
        return StepResult(output={"text": self.text})


PLAN = [
    {"key": "draft", "skill": "test.draft"},
    {"key": "post", "skill": "chat.post", "args": {"channel": "#eng", "text": "{{ steps.draft.text }}"},
     "depends_on": ["draft"]},
]  # fmt: skip


async def _redraft(db: Database, task_id: int, text: str) -> None:
    """An earlier step ran again and wrote other text (as a retry from it would)."""
    await db.run(lambda tx: tx.conn.execute(
        update(STEP).where(STEP.c.task_id == task_id, STEP.c.key == "draft").values(result={"text": text})
    ))  # fmt: skip


@pytest.fixture
def h(db: Database, clock: Clock) -> Harness:
    return Harness(db, clock, extra=[Drafter()])


async def test_the_approval_is_bound_to_the_resolved_values_the_card_shows(h: Harness) -> None:
    task_id = await h.submit(steps=PLAN)
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    resolved = {"channel": "#eng", "text": "v1"}
    assert approval.summary is not None and approval.summary["text"] == "v1"
    assert approval.summary["args"] == resolved
    assert approval.args_hash == args_hash("chat.post", resolved)
    assert (await h.controls.decide(approval.id, person("alice"), True, h.clock())).accepted
    await h.drain()
    assert [r.payload for r in await h.messages(task_id)] == [{"text": "v1"}]


async def test_a_change_after_approval_asks_again_and_the_old_approval_runs_nothing(h: Harness, db: Database) -> None:
    task_id = await h.submit(steps=PLAN)
    await h.drain()
    (first,) = (await h.store.view(task_id)).approvals
    assert (await h.controls.decide(first.id, person("alice"), True, h.clock())).accepted
    await _redraft(db, task_id, "v2: something else")
    await h.drain()

    view = await h.store.view(task_id)
    assert view.task.state == "waiting_approval" and await h.messages(task_id) == []
    old, new = view.approvals
    assert old.id == first.id and old.state == "superseded"
    assert new.state == "pending" and new.summary is not None and new.summary["text"] == "v2: something else"
    assert "approval.superseded" in await h.kinds(task_id)
    assert (await h.controls.decide(new.id, person("alice"), True, h.clock())).accepted
    await h.drain()
    assert [r.payload for r in await h.messages(task_id)] == [{"text": "v2: something else"}]


async def test_a_change_before_the_click_refuses_it_and_asks_again(h: Harness, db: Database) -> None:
    task_id = await h.submit(steps=PLAN)
    await h.drain()
    (first,) = (await h.store.view(task_id)).approvals
    await _redraft(db, task_id, "v2")
    refused = await h.controls.decide(first.id, person("alice"), True, h.clock())
    assert not refused.accepted and refused.reason == approvals.STALE
    await h.drain()
    old, new = (await h.store.view(task_id)).approvals
    assert old.state == "superseded" and new.state == "pending" and new.summary["text"] == "v2"  # type: ignore[index]
    assert await h.messages(task_id) == []


async def test_a_plan_gate_shows_and_binds_the_plan_as_written(db: Database, clock: Clock) -> None:
    from tasks.rules.policy import Policy, Rules

    h = Harness(db, clock, policy=Policy(defaults=Rules(approve_plan=True)), extra=[Drafter()])
    task_id = await h.submit(steps=PLAN)
    await h.drain()
    (gate,) = (await h.store.view(task_id)).approvals
    assert gate.summary is not None and "{{ steps.draft.text }}" in gate.summary["text"]
    assert (await h.controls.decide(gate.id, person("alice"), True, h.clock())).accepted
    await h.drain()  # the gate passes; the post then asks for its own approval, with the values filled in
    view = await h.store.view(task_id)
    assert view.step("plan").state == "succeeded" and view.approvals[-1].summary["text"] == "v1"  # type: ignore[index]
