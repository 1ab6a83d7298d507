"""The LLM planner through the real openai client against a fake
OpenAI-compatible server: tool calling, validation against the skill
registry, one replan, faults, and planning cost recorded on the task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tasks.planning.llm_planner import LLMPlanner, check_plan, make_planner
from tasks.rules.plans import PlanError, PlanLater
from tasks.rules.policy import Policy, Rules
from tasks.skills.catalog import builtin_registry
from tasks.skills.llm_client import LLM, make_llm, retry_after_seconds
from tasks.store.db import Database
from tasks.store.models import Task
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness, person
from tests.fakes.openai_server import FakeOpenAI, running_fake_openai


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with running_fake_openai() as fake:
        yield fake


PRICED = Policy(prices={"fake-model": (2.0, 8.0)})


def llm_for(fake: FakeOpenAI, policy: Policy = PRICED) -> LLM:
    llm = make_llm("sk-test", fake.base_url, "fake-model", policy)
    assert llm is not None
    return llm


def task(text: str) -> Task:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    return Task(
        id=1,
        platform="console",
        dedupe_key="k",
        requester="alice",
        text=text,
        conversation={"channel": "eng"},
        created_at=now,
        updated_at=now,
    )


class Sleeps:
    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


def planner(fake: FakeOpenAI, sleep: Any = None) -> LLMPlanner:
    registry = builtin_registry(PRICED, llm_for(fake))
    return LLMPlanner(llm_for(fake), registry, sleep=sleep or Sleeps())


POST = {"key": "post", "skill": "chat.post", "args": {"text": "hello"}}


async def test_free_text_becomes_a_plan_through_tool_calling(fake_openai: FakeOpenAI) -> None:
    fake_openai.plan([POST], summary="say hello", usage=(1000, 500))
    draft = await planner(fake_openai).plan(task("say hello here"), ["chat.post", "wait"], Rules())
    assert draft.plan["steps"][0]["skill"] == "chat.post" and draft.plan["summary"] == "say hello"
    assert draft.tokens == 1500 and draft.cost == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    (sent,) = fake_openai.requests
    assert sent["model"] == "fake-model"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "submit_plan"}}
    offered = sent["tools"][0]["function"]["parameters"]["properties"]["steps"]["items"]
    assert offered["properties"]["skill"]["enum"] == ["chat.post", "wait"]
    assert "say hello here" in sent["messages"][1]["content"]
    assert "chat.post" in sent["messages"][0]["content"]


async def test_skills_the_policy_forbids_are_not_offered(fake_openai: FakeOpenAI) -> None:
    fake_openai.plan([POST])
    rules = Rules(allowed_skills=("chat.*",))
    await planner(fake_openai).plan(task("x"), ["chat.post", "wait", "http.fetch"], rules)
    enum = fake_openai.requests[0]["tools"][0]["function"]["parameters"]["properties"]["steps"]
    assert enum["items"]["properties"]["skill"]["enum"] == ["chat.post"]


async def test_unknown_skill_is_replanned_once_with_the_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.plan([{"key": "a", "skill": "shell.exec", "args": {}}], usage=(10, 10))
    fake_openai.plan([POST], usage=(10, 10))
    draft = await planner(fake_openai).plan(task("x"), ["chat.post"], Rules())
    assert draft.plan["steps"][0]["key"] == "post" and draft.tokens == 40
    second = fake_openai.requests[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "submit_plan"
    assert second[-1]["role"] == "tool" and "unknown skill 'shell.exec'" in second[-1]["content"]


async def test_args_breaking_the_schema_twice_is_a_clear_failure(fake_openai: FakeOpenAI) -> None:
    bad = {"key": "post", "skill": "chat.post", "args": {"text": "", "colour": "red"}}
    fake_openai.plan([bad])
    fake_openai.plan([bad])
    with pytest.raises(PlanError, match="no valid plan: step 'post': chat.post"):
        await planner(fake_openai).plan(task("x"), ["chat.post"], Rules())
    assert len(fake_openai.requests) == 2


async def test_a_reply_without_the_tool_call_is_replanned(fake_openai: FakeOpenAI) -> None:
    fake_openai.text("Which channel do you mean?")
    fake_openai.raw_tool_call("submit_plan", "{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        await planner(fake_openai).plan(task("x"), ["chat.post"], Rules())
    assert "Which channel" in fake_openai.requests[1]["messages"][-1]["content"]


def test_placeholders_are_checked_when_filled_not_when_planned() -> None:
    skills = {s.name: s for s in builtin_registry(Policy())}
    plan = {
        "steps": [
            {"key": "w", "skill": "wait", "args": {"seconds": "{{ steps.x.n }}"}},
            {"key": "x", "skill": "wait", "args": {"seconds": 1}},
        ]
    }
    assert len(check_plan(plan, skills).steps) == 2
    plan["steps"][1]["args"] = {"seconds": "soon"}
    with pytest.raises(PlanError, match="'x': wait seconds: 'soon' is not of type 'number'"):
        check_plan(plan, skills)


async def test_exhausted_quota_fails_planning_without_retrying(fake_openai: FakeOpenAI) -> None:
    fake_openai.fault(429, code="insufficient_quota")
    sleeps = Sleeps()
    with pytest.raises(PlanError, match="quota"):
        await planner(fake_openai, sleeps).plan(task("x"), ["chat.post"], Rules())
    assert len(fake_openai.requests) == 1 and sleeps.waited == []


async def test_a_short_outage_is_retried_within_the_turn(fake_openai: FakeOpenAI) -> None:
    fake_openai.fault(429, code="rate_limit_exceeded", retry_after="3")
    fake_openai.plan([POST])
    sleeps = Sleeps()
    draft = await planner(fake_openai, sleeps).plan(task("x"), ["chat.post"], Rules())
    assert draft.plan["steps"][0]["key"] == "post"
    assert sleeps.waited == [3] and len(fake_openai.requests) == 2


async def test_a_long_outage_hands_the_task_back_instead_of_waiting_in_the_worker(fake_openai: FakeOpenAI) -> None:
    fake_openai.fault(429, code="rate_limit_exceeded", retry_after="30")
    sleeps = Sleeps()
    with pytest.raises(PlanLater, match="unavailable") as caught:
        await planner(fake_openai, sleeps).plan(task("x"), ["chat.post"], Rules())
    assert caught.value.retry_after == 30 and sleeps.waited == [] and len(fake_openai.requests) == 1
    fake_openai.fault(500)
    fake_openai.fault(503)
    with pytest.raises(PlanLater):
        await planner(fake_openai, sleeps).plan(task("x"), ["chat.post"], Rules())
    assert sleeps.waited == [2.0] and len(fake_openai.requests) == 3  # one retry in the turn, then handed back


async def test_planning_waits_in_the_database_while_the_llm_is_down_and_resumes_when_it_answers(
    db: Database, clock: Clock, fake_openai: FakeOpenAI
) -> None:
    h = Harness(db, clock, llm=llm_for(fake_openai))
    first = await h.submit("wait a moment", key="a")  # no scripted reply: the fake answers 500
    await h.drain()
    t = await h.store.get_task(first)
    assert t is not None and t.state == "planning" and t.lease_holder is None
    assert t.run_after is not None and t.run_after > clock()
    (retry,) = [e for e in await h.store.events(first) if e.kind == "plan.retry"]
    assert "unavailable" in retry.detail["error"] and retry.detail["attempt"] == 1
    await h.drain()  # not due yet: nothing is asked of the LLM
    assert len(fake_openai.requests) == 2
    # The LLM is back: a new task plans at once, and the waiting one is due now too.
    for _ in range(2):
        fake_openai.plan([{"key": "w", "skill": "wait", "args": {"seconds": 0}}])
    second = await h.submit("wait again", key="b")
    await h.drain()
    assert [(await h.store.get_task(i)).state for i in (first, second)] == ["succeeded", "succeeded"]  # type: ignore[union-attr]


async def test_planning_gives_up_with_the_reason_once_patience_runs_out(
    db: Database, clock: Clock, fake_openai: FakeOpenAI
) -> None:
    h = Harness(db, clock, llm=llm_for(fake_openai))
    task_id = await h.submit("anything")
    tries, state = 0, "queued"
    while state in ("queued", "planning") and tries < 200:
        await h.drain()
        tries += 1
        clock.advance(11)  # past any backoff (at most 10 s)
        t = await h.store.get_task(task_id)
        assert t is not None
        state = t.state
    assert t.state == "failed"
    assert "LLM is unavailable" in (t.error or "") and "gave up after" in (t.error or "")
    assert 60 < tries < 100  # 15 minutes of tries, ~11 s apart


def test_retry_after_reads_seconds_dates_and_milliseconds() -> None:
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": "12"}, now) == 12
    assert retry_after_seconds({"retry-after-ms": "1500"}, now) == 1.5
    assert retry_after_seconds({"retry-after": "Mon, 02 Nov 2026 09:00:30 GMT"}, now) == 30
    assert retry_after_seconds({}, now) is None


def test_client_leaves_retries_to_the_engine() -> None:
    llm = make_llm("sk", "http://127.0.0.1:9/v1", "m")
    assert llm is not None and llm.client.max_retries == 0
    assert make_llm(None, None, "m") is None
    assert make_planner(None, None, "m") is None


async def test_engine_records_planning_tokens_and_cost(db: Database, clock: Clock, fake_openai: FakeOpenAI) -> None:
    fake_openai.plan([{"key": "w", "skill": "wait", "args": {"seconds": 0}}], usage=(3000, 1000))
    h = Harness(db, clock, policy=PRICED, llm=llm_for(fake_openai))
    task_id = await h.submit("wait a moment")
    await h.drain()
    t = await h.store.get_task(task_id)
    assert t is not None and t.state == "succeeded"
    assert t.tokens == 4000 and t.cost == pytest.approx(0.014)
    ready = [e for e in await h.store.events(task_id) if e.kind == "plan.ready"]
    assert ready[0].detail["tokens"] == 4000
    assert await h.engine.checkpoints.spent_today("console", "alice", clock()) == pytest.approx(0.014)


async def test_policy_can_require_approval_of_the_whole_plan(
    db: Database, clock: Clock, fake_openai: FakeOpenAI
) -> None:
    fake_openai.plan([{"key": "w", "skill": "wait", "args": {"seconds": 0}}])
    policy = Policy(defaults=Rules(approve_plan=True, approvers=("bob",)))
    h = Harness(db, clock, policy=policy, llm=llm_for(fake_openai, policy))
    task_id = await h.submit("wait")
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "waiting_approval" and view.step("w").state == "pending"
    (approval,) = view.approvals
    assert approval.step_key == "plan" and approval.approvers == ["bob"]
    assert "w: wait" in approval.summary["text"]
    assert (await h.controls.decide(approval.id, person("bob"), True, clock())).accepted
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]


async def test_failed_planning_fails_the_task_with_the_reason(
    db: Database, clock: Clock, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fault(429, code="insufficient_quota")
    h = Harness(db, clock, llm=llm_for(fake_openai))
    task_id = await h.submit("anything")
    await h.drain()
    t = await h.store.get_task(task_id)
    assert t is not None and t.state == "failed" and "quota" in (t.error or "")
