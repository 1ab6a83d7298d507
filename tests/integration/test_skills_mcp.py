"""MCP tools as skills, against a server built with the `mcp` package's own
MCPServer: over stdio (a subprocess) and over streamable HTTP on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tasks.rules.policy import Policy, Rules
from tasks.skills.base import Effect, Skill, StepContext
from tasks.skills.mcp import load_mcp_skills, mcp_skills
from tasks.store.db import Database
from tests.conftest import ROOT, Clock
from tests.fakes.engine_harness import CONV, Harness, person

SERVER = str(ROOT / "tests" / "fakes" / "mcp_server.py")
STDIO = {"name": "kb", "command": sys.executable, "args": [SERVER]}


def policy(server: dict[str, object]) -> Policy:
    rules = Rules(skill_effects={"mcp.kb.lookup": "read", "mcp.kb.f*": "read"})
    return Policy(mcp_servers=(server,), defaults=rules)


def context() -> StepContext:
    return StepContext(
        task_id=1,
        step_key="a",
        idempotency_key="k",
        requester="alice",
        conversation=CONV,
        now=Clock()(),
        attempt=1,
    )


async def skills_of(p: Policy) -> dict[str, Skill]:
    return {s.name: s for s in await load_mcp_skills(p)}


async def test_tools_of_a_stdio_server_become_skills_with_the_policys_effects() -> None:
    got = await skills_of(policy(STDIO))
    assert set(got) == {"mcp.kb.add", "mcp.kb.lookup", "mcp.kb.fail"}
    assert got["mcp.kb.lookup"].effect == Effect.READ and got["mcp.kb.fail"].effect == Effect.READ
    assert got["mcp.kb.add"].effect == Effect.EXTERNAL  # not named: treated as an effect
    assert got["mcp.kb.add"].args_schema["required"] == ["a", "b"]
    assert got["mcp.kb.add"].description == "Add two whole numbers"
    result = await got["mcp.kb.lookup"].run(context(), {"word": "sla"})
    assert result.output == {
        "text": "service level agreement",
        "structured": {"result": "service level agreement"},
        "source": "mcp:kb",
        "untrusted": True,
    }


async def test_mcp_steps_run_read_freely_and_effects_after_approval(
    db: Database, clock: Clock, http_server: str
) -> None:
    p = policy({"name": "kb", "url": http_server})
    h = Harness(db, clock, policy=p, extra=await load_mcp_skills(p))
    task_id = await h.submit(
        steps=[
            {"key": "look", "skill": "mcp.kb.lookup", "args": {"word": "SLA"}},
            {"key": "sum", "skill": "mcp.kb.add", "args": {"a": 1, "b": 2}},
        ]
    )
    await h.drain()
    view = await h.store.view(task_id)
    assert view.step("look").result["text"] == "service level agreement"
    assert view.task.state == "waiting_approval" and view.step("sum").state == "waiting_approval"
    (approval,) = view.approvals
    await h.controls.decide(approval.id, person("alice"), True, clock())
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded" and view.step("sum").result["text"] == "3"


async def test_a_failing_tool_fails_its_step_with_the_tools_message(
    db: Database, clock: Clock, http_server: str
) -> None:
    p = policy({"name": "kb", "url": http_server})
    h = Harness(db, clock, policy=p, extra=await load_mcp_skills(p))
    task_id = await h.submit(steps=[{"key": "f", "skill": "mcp.kb.fail", "args": {}}])
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "failed" and "the tool broke" in (view.step("f").error or "")


def test_an_unreachable_server_is_left_out_so_the_bot_starts() -> None:
    broken = {"name": "gone", "command": "/nonexistent/mcp-server", "timeout_seconds": 5}
    assert mcp_skills(Policy(mcp_servers=(broken,))) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "http", str(port)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # a process starting up: no clock to move
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


async def test_tools_of_a_streamable_http_server_are_listed_and_called(http_server: str) -> None:
    got = await skills_of(policy({"name": "kb", "url": http_server}))
    result = await got["mcp.kb.add"].run(context(), {"a": 20, "b": 22})
    assert result.output["text"] == "42" and result.output["structured"] == {"result": 42}
