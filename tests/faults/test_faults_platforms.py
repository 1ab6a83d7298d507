"""Chat platform faults under a running bot (issue 7): the fake Slack Web API
answering 429 and 500, the fake Bot Connector 412, 502 and 504, then each
gone (connection refused). Every card and message is delivered exactly once
in the end, delivery resumes within 5 s of each fault. Full size:
`python -m tests.faults slack` / `teams` (a 60 s outage)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.faults.gate import gate
from tests.faults.platform_outage import OutagePlan, run_outage

SMALL = OutagePlan(outage=2.5, errors=1.0, rate=2.0, calm=1.0, within=40, workers=1)  # delivery is the web process's


async def test_a_closed_gate_refuses_connections_and_an_open_one_passes_requests() -> None:
    app = web.Application()

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with gate(port) as g, aiohttp.ClientSession() as http:
            async with http.get(g.url()) as r:
                assert await r.text() == "hello"
            await g.close()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", g.port)
            await g.open()
            async with http.get(g.url()) as r:
                assert await r.text() == "hello"
            assert g.connections >= 2
    finally:
        await runner.cleanup()


def _passed(out: dict[str, object]) -> None:
    assert out["problems"] == []
    assert out["lost"] == 0 and out["duplicate_effects"] == 0 and out["duplicate_messages"] == 0
    assert out["ended_by_state"] == {"succeeded": out["tasks"]} and out["tasks"] == out["requests"]
    assert out["effect_messages_posted"] == out["tasks"]
    assert isinstance(out["rows_retried"], int) and out["rows_retried"] > 0  # the faults did hold deliveries back
    recovery = out["recovery_seconds"]
    assert isinstance(recovery, dict)
    assert all(s is not None and s <= 5.0 for s in recovery.values())


@pytest.mark.slow
@pytest.mark.postgres
async def test_slack_429_500_and_outage_deliver_every_message_once(pg_url: str, tmp_path: Path) -> None:
    out = await run_outage("slack", pg_url, tmp_path, SMALL)
    _passed(out)
    assert set(out["recovery_seconds"]) == {"429", "500", "gone"}


@pytest.mark.slow
@pytest.mark.postgres
async def test_teams_412_502_504_and_outage_deliver_every_message_once(pg_url: str, tmp_path: Path) -> None:
    out = await run_outage("teams", pg_url, tmp_path, SMALL)
    _passed(out)
    assert set(out["recovery_seconds"]) == {"412", "502", "504", "gone"}
