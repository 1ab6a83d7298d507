"""chat.history through the reader the bot lends, and third-party skills
from the `cowork.skills` entry-point group of an installed distribution."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.chat import ConversationRef, DeliveryError
from bot.application.history import AdapterHistory
from tasks.skills.base import SkillError, SkillRegistry, StepContext
from tasks.skills.chat import ChatHistory
from tasks.store.db import Database
from tasks.store.store import NewTask
from tests.conftest import Clock
from tests.fakes.engine_harness import CONV, NO_APPROVALS, Harness


class Reader:
    """What the bot's chat reader does, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], int]] = []

    async def __call__(self, conversation: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        self.calls.append((conversation, limit))
        return [
            {"user": "ann", "text": "ship it", "ts": "1"},
            {"user": "bo", "text": "ok", "ts": "2"},
        ]


def ctx() -> StepContext:
    conv = {"platform": "slack", "channel": "C1", "thread": "T1"}
    return StepContext(
        task_id=1,
        step_key="h",
        idempotency_key="k",
        requester="alice",
        conversation=conv,
        now=datetime.now(UTC),
        attempt=1,
    )


async def test_history_reads_this_thread_by_default() -> None:
    reader = Reader()
    got = await ChatHistory(reader).run(ctx(), {"limit": 10})
    assert reader.calls == [({"platform": "slack", "channel": "C1", "thread": "T1"}, 10)]
    assert got.output["text"] == "ann: ship it\nbo: ok" and got.output["untrusted"] is True


async def test_history_of_another_channel_reads_the_channel_not_the_thread() -> None:
    reader = Reader()
    await ChatHistory(reader).run(ctx(), {"channel": "C9"})
    assert reader.calls[0] == ({"platform": "slack", "channel": "C9", "thread": None}, 50)


async def test_history_without_a_reader_fails_clearly() -> None:
    with pytest.raises(SkillError, match="cannot read chat history"):
        await ChatHistory().run(ctx(), {})


class RateLimited:
    """A platform adapter whose reads must wait for the rate limit."""

    platform = "slack"

    async def history(self, conversation: ConversationRef, limit: int) -> list[dict[str, Any]]:
        raise DeliveryError("slack: local rate limit for T1", retry_after=42.0)


async def test_a_read_over_the_platforms_limit_is_retried_when_the_platform_allows() -> None:
    reader = AdapterHistory({"slack": RateLimited()})  # type: ignore[dict-item]
    with pytest.raises(SkillError) as e:
        await ChatHistory(reader).run(ctx(), {})
    assert e.value.retryable and e.value.retry_after == 42.0


async def test_library_playbooks_load_when_their_skills_exist_and_run(db: Database, clock: Clock) -> None:
    from tasks.planning.playbooks import library_playbooks

    reader = Reader()
    h = Harness(db, clock, policy=NO_APPROVALS, reader=reader)
    assert "channel-digest" not in library_playbooks(h.registry.names())  # no LLM here
    books = library_playbooks([*h.registry.names(), "llm.summarize"])
    assert {"channel-digest", "webhook-notify", "standup-reminder", "fetch-digest"} <= set(books)
    steps = books["channel-digest"].plan()["steps"]
    assert [s["skill"] for s in steps] == ["chat.history", "llm.summarize", "chat.post"]
    book = books["standup-reminder"]
    h.engine.planner.playbooks = {book.name: book}  # type: ignore[attr-defined]
    task_id, _ = await h.store.create_task(
        NewTask(
            platform="console",
            tenant="t1",
            dedupe_key="pb",
            requester="alice",
            conversation=CONV,
            playbook=book.name,
            params=book.bind({"when": "every Friday at 16"}),
        ),
        clock(),
    )
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded" and view.step("schedule").result["cron"] == "0 16 * * fri"


PLUGIN = """
from tasks.skills.base import Effect, Skill, StepResult

class Shout(Skill):
    name = "acme.shout"
    description = "Shout the text"
    effect = Effect.READ

    async def run(self, ctx, args):
        return StepResult(output={"text": args["text"].upper()})
"""


def install_plugin(root: Path) -> None:
    (root / "acme_skills.py").write_text(PLUGIN)
    info = root / "acme_skills-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-skills\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[cowork.skills]\nshout = acme_skills:Shout\n")


async def test_third_party_skill_from_an_entry_point_runs_in_a_plan(
    db: Database, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_skills", raising=False)
    registry = SkillRegistry()
    assert registry.load_plugins() == ["acme.shout"]
    h = Harness(db, clock, policy=NO_APPROVALS, extra=[registry.get("acme.shout")])
    task_id = await h.submit(steps=[{"key": "s", "skill": "acme.shout", "args": {"text": "hi"}}])
    await h.drain()
    assert (await h.store.view(task_id)).step("s").result == {"text": "HI"}
