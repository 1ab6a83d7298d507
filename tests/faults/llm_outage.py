"""The LLM server timing out: it accepts requests and does not answer, first
every request (people's requests are being planned) and then only the llm.*
skills' requests (plans come back, the drafting step hangs). The client gives
up after COWORK_LLM_TIMEOUT seconds and retries; the answers come only after
the server resumes.

Every task must end where a person can see it (succeeded after a retry, or
failed with a reason that says the LLM timed out), none lost, no message
twice, and planning (then drafting) resumes within seconds of the server
answering again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.openai_server import FakeOpenAI, Reply, completion, running_fake_openai
from tests.fakes.slack_api import fake_slack
from tests.faults import outage
from tests.faults.fleet import Fleet

TAG = re.compile(r"llm-\d+-x")
EFFECT = re.compile(r"note llm-\d+-x")  # the whole text of a task's one message
PLANNED = "SELECT min(extract(epoch FROM at)) FROM event WHERE kind = 'plan.ready' AND extract(epoch FROM at) >= :since"
DRAFTED = ("SELECT min(extract(epoch FROM at)) FROM event WHERE kind = 'step.succeeded'"
           " AND detail::text LIKE '%draft%' AND extract(epoch FROM at) >= :since")  # fmt: skip


@dataclass(frozen=True)
class LlmFaultPlan(outage.Pace):
    outage: float = 30.0  # seconds of each hang: all requests, then the skills' requests
    timeout: float = 2.0  # COWORK_LLM_TIMEOUT: the client gives up after this long


def effect_of(text: str) -> str | None:
    return text.strip() if EFFECT.fullmatch(text.strip()) else None


def answer(body: dict[str, Any]) -> Reply:
    """A plan (draft, then post) for a planning request; a draft otherwise."""
    asked = str(body["messages"][-1]["content"])
    if not body.get("tools"):
        return completion(content="Here is the note.")
    m = TAG.search(asked)
    tag = m.group(0) if m else "llm-unknown-x"
    steps = [
        {"key": "draft", "skill": "llm.draft", "args": {"instructions": f"write a short note about {tag}"}},
        {"key": "post", "skill": "chat.post", "args": {"text": f"note {tag}"}, "depends_on": ["draft"]},
    ]
    return completion(tool_calls=[("submit_plan", {"summary": f"note {tag}", "steps": steps})])


def is_skill_call(body: dict[str, Any]) -> bool:
    return not body.get("tools")


async def run_llm_faults(url: str, folder: Path, plan: LlmFaultPlan) -> dict[str, Any]:
    async with fake_slack() as slack, running_fake_openai() as llm:
        llm.responder = answer
        env = outage.slack_env(folder, url, slack.base_url, OPENAI_API_KEY="sk-fault-test",
                               OPENAI_BASE_URL=llm.base_url, COWORK_LLM_TIMEOUT=str(plan.timeout))  # fmt: skip
        fleet = Fleet(folder, env)
        db = outage.Db(url)
        try:
            web = await outage.start_bot(fleet, plan.workers)
            async with aiohttp.ClientSession() as http:
                send = outage.slack_sender(http, web, lambda i: f"please write a short note about llm-{i}-x")
                feed = outage.Feed(send, plan.rate)
                t0 = time.monotonic()
                recovery, settled = await _scenario(llm, feed, db, plan)
            seen = outage.slack_delivered(slack, effect_of)
            out = outage.verdict(url, feed, db, seen, outage.slack_conversation, recovery, settled)
            out["problems"] += _unclear_failures(out["failed_reasons"])
            out["problems"] += [f"bot process {n} died" for n in fleet.dead()]
            return {"hang_seconds": plan.outage, "client_timeout_seconds": plan.timeout, **out,
                    "llm_requests": len(llm.requests), "llm_requests_held": llm.stalled,
                    "seconds": round(time.monotonic() - t0, 1)}  # fmt: skip
        finally:
            fleet.stop()
            db.close()


async def _scenario(llm: FakeOpenAI, feed: outage.Feed, db: outage.Db,
                    plan: LlmFaultPlan) -> tuple[dict[str, float | None], bool]:  # fmt: skip
    timeline = outage.Timeline()
    await outage.begin(feed, db, plan.calm)
    for name, which, progress in (("hang: all", None, PLANNED), ("hang: skills", is_skill_call, DRAFTED)):
        llm.stall(which) if which else llm.stall()
        await asyncio.sleep(plan.outage)  # the hang is a length of time
        llm.resume()
        timeline.ended(name)
        with contextlib.suppress(TimeoutError):
            await db.until(progress, 2 * outage.RECOVERY_LIMIT, since=timeline.ends[name])
    settled = await outage.finish(feed, db, plan)
    recovery = {
        "planning after hang: all": await asyncio.to_thread(db.first_after, PLANNED, timeline.ends["hang: all"]),
        "drafting after hang: skills": await asyncio.to_thread(db.first_after, DRAFTED, timeline.ends["hang: skills"]),
    }
    return recovery, settled


def _unclear_failures(reasons: dict[str, int]) -> list[str]:
    """A failed task must say why in words a person understands."""
    return [f"{n} tasks failed without saying the LLM timed out: {r!r}" for r, n in reasons.items()
            if "timed out" not in r]  # fmt: skip
