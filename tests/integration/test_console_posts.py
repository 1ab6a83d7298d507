"""Honest posts on the console (issue 12), over real HTTP: a post to a channel
the console does not have is refused before anyone is asked to approve it, with
the reason in the thread; an approved post is done only once the console took it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.console.inbound import TENANT
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tasks.rules.approvals import Approver
from tests.conftest import Clock


@pytest.fixture
async def client(db_url: str, clock: Clock) -> AsyncIterator[tuple[Runtime, TestClient[Any, Any]]]:
    runtime = Runtime(Settings(DATABASE_URL=db_url), clock=clock)
    client = TestClient(TestServer(make_app(runtime, console=True)))
    await client.start_server()
    try:
        yield runtime, client
    finally:
        await client.close()
        runtime.close()


async def _say(client: TestClient[Any, Any], text: str) -> None:
    resp = await client.post("/api/console/messages", json={"channel": "general", "user": "alice", "text": text})
    assert resp.status == 201, await resp.text()


async def _thread(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    resp = await client.get("/api/console/messages", params={"channel": "general", "user": "alice"})
    return list((await resp.json())["messages"])


async def test_a_post_to_a_channel_the_console_does_not_have_is_refused_before_approval(
    client: tuple[Runtime, TestClient[Any, Any]],
) -> None:
    runtime, http = client
    await _say(http, "@cowork run announce channel=#nowhere text=hi")
    for _ in range(3):
        await runtime.delivery.drain()
        await runtime.engine.drain()
    await runtime.delivery.drain()
    view = await runtime.store.view(1)
    assert view.task.state == "failed" and view.approvals == []  # nobody was asked
    assert "there is no channel #nowhere here" in (view.task.error or "")
    html = json.dumps([m["html"] for m in await _thread(http)])
    assert "Task #1 failed" in html and "there is no channel #nowhere here" in html
    assert "Approve" not in html


async def test_an_approved_post_is_done_once_the_console_took_it(client: tuple[Runtime, TestClient[Any, Any]]) -> None:
    runtime, http = client
    await _say(http, "@cowork run announce channel=#eng text=hello")
    await runtime.engine.drain()
    (approval,) = (await runtime.store.view(1)).approvals
    alice = Approver("console", TENANT, "alice")
    assert (await runtime.controls.decide(approval.id, alice, True, runtime.clock())).accepted
    await runtime.engine.drain()
    view = await runtime.store.view(1)
    assert view.task.state == "running" and view.steps[0].state == "sleeping"  # posted, not yet taken
    await runtime.delivery.drain()  # the console takes the post, and the step is woken
    await runtime.engine.drain()
    view = await runtime.store.view(1)
    assert view.task.state == "succeeded" and view.steps[0].result["posted"] is True
    resp = await http.get("/api/console/messages", params={"channel": "eng", "user": "alice"})
    assert [m["text"] for m in (await resp.json())["messages"]] == ["hello"]
