"""Planning while the LLM is unreachable (issue 12): the task's card says it is
waiting for the LLM, why (the error's class, nothing of its message), and until
when it keeps trying; it is redrawn at every try, so its elapsed time moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.application import cards
from tasks.rules.policy import Policy
from tasks.rules.retry import PLAN_PATIENCE
from tasks.skills.llm_client import make_llm
from tasks.store.db import Database
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness
from tests.fakes.openai_server import FakeOpenAI, running_fake_openai


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with running_fake_openai() as fake:
        yield fake


async def test_a_card_waiting_for_the_llm_says_why_and_until_when(
    db: Database, clock: Clock, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm("sk-secret-key", fake_openai.base_url, "gpt-4o-mini", Policy())
    assert llm is not None
    h = Harness(db, clock, llm=llm)
    task_id = await h.submit("summarize the week")  # no scripted reply: the fake answers 500
    start = clock()
    await h.drain()
    view = await h.store.view(task_id)
    card = cards.task_card(view, clock())
    body = "\n".join(card.body)
    give_up = start + PLAN_PATIENCE
    assert view.task.state == "planning"
    assert "Planning the steps…" in body and "Waiting for the LLM (InternalServerError)" in body
    assert f"until {give_up:%H:%M} UTC before giving up" in body
    assert view.task.run_after is not None and f"trying again at {view.task.run_after:%H:%M:%S} UTC" in body
    assert "sk-secret" not in body and "500" not in body  # the class only: no message, no key

    clock.advance(11)
    await h.drain()  # a second try, and the card is redrawn with it
    rows = [r for r in await h.outbox.rows(task_id) if r.kind == "task_card"]
    retries = [e for e in await h.store.events(task_id) if e.kind == "plan.retry"]
    assert len(retries) == 2 and len(rows) >= 3  # created, and one redraw per try
    later = cards.task_card(await h.store.view(task_id), clock())
    assert ("Elapsed", "11s") in [(f.label, f.value) for f in later.fields]

    fake_openai.plan([{"key": "w", "skill": "wait", "args": {"seconds": 0}}])
    clock.advance(timedelta(seconds=11).total_seconds())
    await h.drain()
    done = await h.store.view(task_id)
    assert done.task.state == "succeeded" and done.task.pause_reason is None
    assert "Waiting for the LLM" not in "\n".join(cards.task_card(done, clock()).body)


async def test_an_unreachable_llm_is_named_as_such_on_the_card(db: Database, clock: Clock) -> None:
    from tests.faults.fleet import free_port

    llm = make_llm("sk-secret-key", f"http://127.0.0.1:{free_port()}/v1", "gpt-4o-mini", Policy())  # nobody listens
    assert llm is not None
    h = Harness(db, clock, llm=llm)
    task_id = await h.submit("summarize the week")
    await h.drain()
    body = "\n".join(cards.task_card(await h.store.view(task_id), clock()).body)
    assert "Waiting for the LLM (APIConnectionError)" in body and "sk-secret" not in body
