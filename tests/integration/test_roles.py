"""One process at a time delivers to the rate-limited platforms: the `delivery`
role (tasks/store/roles.py), on SQLite and PostgreSQL; and the migrations build
exactly the tables the models declare."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import tasks.store.models  # noqa: F401  (registers the tables)
from adapters.chat import ConversationRef, Inbound
from bot.application.delivery import Delivery
from bot.application.leadership import LEASE_SECONDS, RENEW_EVERY, ROLE
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from tasks.store.db import Database, make_engine
from tasks.store.roles import Roles
from tests.conftest import Clock
from tests.fakes.recording import RecordingAdapter


async def test_one_holder_at_a_time_until_the_lease_lapses(db: Database, clock: Clock) -> None:
    roles = Roles(db)
    assert await roles.hold("r", "a", clock(), 10)
    assert not await roles.hold("r", "b", clock(), 10)
    assert await roles.hold("r", "a", clock(), 10)  # renewed
    clock.advance(9)
    assert not await roles.hold("r", "b", clock(), 10)  # renewed at 0, so held until 10
    clock.advance(2)
    assert await roles.hold("r", "b", clock(), 10)  # lapsed: taken over
    assert not await roles.hold("r", "a", clock(), 10)  # and the old holder knows it lost it
    assert await roles.holder("r", clock()) == "b"
    await roles.release("r", "a", clock())  # not a's to release
    assert await roles.holder("r", clock()) == "b"
    await roles.release("r", "b", clock())
    assert await roles.holder("r", clock()) is None and await roles.hold("r", "a", clock(), 10)


async def test_asked_at_once_by_many_one_gets_it(db: Database, clock: Clock) -> None:
    roles = Roles(db)
    got = await asyncio.gather(*(roles.hold("r", f"p{i}", clock(), 10) for i in range(8)))
    assert sum(got) == 1


class SlackLike(RecordingAdapter):
    platform = "slack"


@pytest.fixture
async def rt(db_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Runtime]:
    (tmp_path / "policy.yaml").write_text("defaults: {approval_effects: []}\n")
    settings = Settings(DATABASE_URL=db_url, COWORK_POLICY=str(tmp_path / "policy.yaml"))
    runtime = Runtime(settings, clock=clock, adapters={"slack": SlackLike(), "console": RecordingAdapter()})
    yield runtime
    runtime.close()


async def _serve_once(delivery: Delivery) -> None:
    """One turn of the serving loop: ask for the role, then claim what this process may."""
    await delivery.round()
    await delivery._lanes_done()


async def _ask(rt: Runtime, platform: str, n: int) -> None:
    conv = ConversationRef(platform, "t1", f"c{n}", thread=f"root{n}")
    await rt.conversation.handle_message(
        Inbound(platform, "t1", f"e{n}", "alice", f"run announce channel=c{n} text=m{n}", conv)
    )
    await rt.engine.drain()


def _said(chat: RecordingAdapter) -> list[str]:
    """What this process posted (its own log: the platform's messages may be shared)."""
    texts = [chat.messages[mid]["card"].text for op, mid in chat.log if op == "post"]
    return [t for t in texts if t.startswith("m")]


async def test_only_the_role_holder_delivers_to_rate_limited_platforms(rt: Runtime, clock: Clock) -> None:
    console = RecordingAdapter()  # one transcript, whichever process writes to it
    first = {"slack": SlackLike(), "console": console}
    second = {"slack": SlackLike(), "console": console}
    second["slack"].messages = first["slack"].messages  # one workspace: either process may edit a card
    a = Delivery(rt.store, first, clock=clock, holder="web-a")
    b = Delivery(rt.store, second, clock=clock, holder="web-b")
    await _ask(rt, "slack", 1)
    await _serve_once(a)
    await _ask(rt, "slack", 2)
    await _ask(rt, "console", 3)
    await _serve_once(b)
    assert a.leading and not b.leading
    assert _said(first["slack"]) == ["m1"]
    assert _said(second["slack"]) == [] and _said(second["console"]) == ["m3"]  # the console needs no role
    await _serve_once(a)
    assert _said(first["slack"]) == ["m1", "m2"]

    # web-a dies without a word: web-b takes over once the lease lapses, not before
    await _ask(rt, "slack", 4)
    clock.advance(LEASE_SECONDS - 1)
    await _serve_once(b)
    assert not b.leading and _said(second["slack"]) == []
    clock.advance(RENEW_EVERY)
    await _serve_once(b)
    assert b.leading and _said(second["slack"]) == ["m4"]


async def test_a_clean_stop_hands_the_role_on_at_once(rt: Runtime, clock: Clock) -> None:
    a = Delivery(rt.store, rt.adapters, clock=clock, holder="web-a", idle_seconds=0)
    b = Delivery(rt.store, rt.adapters, clock=clock, holder="web-b")
    stop = asyncio.Event()
    stop.set()  # one look at the outbox, then a clean stop
    await a.lead()
    await a.serve(stop)
    assert await Roles(rt.store.db).holder(ROLE, clock()) is None
    assert await b.lead()


async def test_through_a_database_outage_the_holder_keeps_the_role_until_its_lease_would_lapse(
    rt: Runtime, clock: Clock
) -> None:
    a = Delivery(rt.store, rt.adapters, clock=clock, holder="web-a")
    assert await a.lead()

    async def down(*args: object, **kw: object) -> bool:
        raise ConnectionError("the database is gone")

    a.roles.hold = down  # type: ignore[method-assign]
    clock.advance(RENEW_EVERY)
    assert await a.lead()  # still within its lease: nobody else can have it
    clock.advance(LEASE_SECONDS)
    assert not await a.lead()  # past it, someone else may: stand by


def test_the_migrations_build_exactly_the_tables_the_models_declare(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []
