"""The policy file: scopes, effects, approvers (N of M), escalation, narrow
auto-approve rules, and bad files refused with the line and the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tasks.rules.plans import PLAN_GATE
from tasks.rules.policy import AutoApprove, PolicyError, Rules, load_policy
from tasks.store.db import Database
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness, person

GOOD = """\
defaults:
  approvers: [requester, lead]
  expiry_seconds: 3600
  escalate_after_seconds: 600
  escalate_to: [oncall]
  budget: {tokens: 50000, dollars: 2}
  skill_effects: {"mcp.docs.*": read}
scopes:
  - match: {tenant: T1, channel: "ops-*"}
    approvers: [alice, bob, carol]
    required: 2
    auto_approve:
      - {name: status-posts, skill: chat.post, args: {channel: "#status"}}
prices:
  gpt-4o-mini: {input: 0.15, output: 0.6}
webhooks:
  deploys: https://hooks.example.com/deploy
http: {allow_private: true, max_bytes: 100000}
email: {smtp_url: "smtp://mail:25", from: bot@example.com}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_good_policy_resolves_per_tenant_and_channel(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    ops = policy.rules_for("slack", "T1", "ops-db")
    assert ops.approvers == ("alice", "bob", "carol") and ops.required == 2
    assert ops.budget.dollars == 2  # from the defaults
    other = policy.rules_for("slack", "T2", "ops-db")
    assert other.approvers_for("zoe") == ["zoe", "lead"] and other.auto_approve == ()
    assert policy.price("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert policy.http_allow_private and policy.http_max_bytes == 100000
    assert policy.smtp_url == "smtp://mail:25" and policy.email_from == "bot@example.com"
    assert other.effect_of("mcp.docs.search", "external") == "read"
    assert other.effect_of("mcp.tickets.close", "external") == "external"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("defaults:\n  approvers: [a]\nbudgets: {}\n", 3, "unknown top-level key 'budgets'"),
        ("defaults:\n  expiry_seconds: 10\n  required: 0\n", 3, "required must be a whole number"),
        (
            "defaults:\n  approvers: [a, b]\n  required: 3\n",
            3,
            "required is 3 but there are only 2",
        ),
        (
            "scopes:\n  - match: {tenant: T}\n    required: 1\n  - match: {channel: x}\n    approvers: bob\n",
            5,
            "scopes[1]: approvers must be a list of strings",
        ),
        ("scopes:\n  - match: {team: x}\n", 2, "match takes platform, tenant, channel"),
        ("defaults:\n  approval_effects: [read, delete]\n", 2, "approval_effects must be a list"),
        ("defaults:\n  auto_approve:\n    - {skill: chat.post}\n", 2, "needs a name and a skill"),
        ("webhooks:\n  ok: https://x\n  bad: ftp://x\n", 3, "webhooks: bad must be an http(s) URL"),
        ("mcp_servers:\n  - {name: kb}\n", 2, "needs a name and a command or a url"),
        ("http:\n  max_bytes: -1\n", 1, "http: must be a positive number"),
        ("prices:\n  m: {input: cheap}\n", 2, "prices: m takes input and output"),
        ("defaults:\n  required: 1\n  required: 2\n", 3, "'required' is given twice"),
        ("defaults:\n  approvers: [a\n  required: 1\n", 3, "not valid YAML"),
        ("- just\n- a list\n", 1, "a policy is a mapping"),
    ],
)
def test_a_bad_policy_is_refused_with_the_line_and_the_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(write(tmp_path, text))
    assert f"line {line}:" in str(e.value) and reason in str(e.value)


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_auto_approve_never_waives_the_plan_gate() -> None:
    rules = Rules(approve_plan=True, auto_approve=(AutoApprove("all", "*"),))
    assert rules.needs_approval(PLAN_GATE, "write", {}) == (True, None)
    assert rules.needs_approval("chat.post", "write", {}) == (False, "all")
    assert Rules().needs_approval("http.fetch", "read", {}) == (False, None)


def test_escalation_adds_only_new_people_after_the_wait(clock: Clock) -> None:
    rules = Rules(escalate_after_seconds=600, escalate_to=("oncall", "alice"))
    asked = clock()
    assert rules.escalation(["alice"], asked, asked + timedelta(seconds=599)) == []
    assert rules.escalation(["alice"], asked, asked + timedelta(seconds=600)) == ["oncall"]
    assert Rules().escalation(["alice"], asked, asked + timedelta(days=9)) == []


POST = [{"key": "post", "skill": "chat.post", "args": {"channel": "#eng", "text": "hi"}}]


async def test_waiting_approval_is_escalated_once_with_an_event(db: Database, clock: Clock) -> None:
    from tasks.rules.policy import Policy

    rules = Rules(escalate_after_seconds=600, escalate_to=("oncall",))
    h = Harness(db, clock, policy=Policy(defaults=rules))
    task_id = await h.submit(steps=POST)
    await h.drain()
    assert await h.controls.escalate_approvals(clock()) == []
    clock.advance(601)
    (escalated,) = await h.controls.escalate_approvals(clock())
    assert await h.controls.escalate_approvals(clock()) == []
    (approval,) = (await h.store.view(task_id)).approvals
    assert approval.id == escalated and approval.approvers == ["alice", "oncall"]
    events = [e for e in await h.store.events(task_id) if e.kind == "approval.escalated"]
    assert len(events) == 1 and events[0].detail["added"] == ["oncall"]
    assert (await h.controls.decide(approval.id, person("oncall"), True, clock())).accepted


async def test_two_of_three_approvers_are_needed(db: Database, clock: Clock) -> None:
    from tasks.rules.policy import Policy

    rules = Rules(approvers=("bob", "carol", "dave"), required=2)
    h = Harness(db, clock, policy=Policy(defaults=rules))
    task_id = await h.submit(steps=POST)
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    assert not (await h.controls.decide(approval.id, person("alice"), True, clock())).accepted
    assert (await h.controls.decide(approval.id, person("bob"), True, clock())).state == "pending"
    await h.drain()
    assert await h.messages(task_id) == []
    assert (await h.controls.decide(approval.id, person("carol"), True, clock())).state == "approved"
    await h.drain()
    assert len(await h.messages(task_id)) == 1


async def test_auto_approve_rule_is_named_in_the_audit_trail(db: Database, clock: Clock) -> None:
    from tasks.rules.policy import Policy

    rule = AutoApprove("eng-posts", "chat.post", {"channel": "#eng"})
    h = Harness(db, clock, policy=Policy(defaults=Rules(auto_approve=(rule,))))
    task_id = await h.submit(steps=POST)
    await h.settle()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded" and view.approvals == []
    (auto,) = [e for e in await h.store.events(task_id) if e.kind == "approval.auto"]
    assert auto.detail["rule"] == "eng-posts" and auto.actor == "policy"
