"""`python -m benchmarks.teams`: Teams /api/messages latency under a steady load; prints JSON.

Sends channel mentions (Bot Framework activities, no token: local-dev mode) at
a steady rate (open loop) to two servers in turn, each in its own process: a
bare botbuilder CloudAdapter whose bot does nothing, and Cowork's full app
(bot.web.server with the Teams wiring), which writes the task (SQLite by default)
before it answers. Reports client-side latency percentiles for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.loadgen import steady_load

TARGET_P99_MS = 100.0
BOT_ID = "28:bench-bot"


def bare_app() -> web.Application:
    from botbuilder.core import ActivityHandler

    from adapters.teams import TeamsCredentials, TeamsEndpoint, authentication

    class Nothing(ActivityHandler):  # type: ignore[misc]
        pass

    endpoint = TeamsEndpoint(authentication(TeamsCredentials()), Nothing())
    app = web.Application()
    app.router.add_post("/api/messages", endpoint.handle)
    return app


def cowork_app(database_url: str) -> web.Application:
    from bot.assembly.config import Settings
    from bot.assembly.runtime import Runtime, prepare_database
    from bot.web.server import make_app

    prepare_database(database_url)
    runtime = Runtime(Settings(DATABASE_URL=database_url, COWORK_TEAMS=True, COWORK_CONSOLE=False))
    return make_app(runtime, console=False)


async def serve(kind: str, database_url: str) -> None:
    app = bare_app() if kind == "bare" else cowork_app(database_url)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await runner.cleanup()


def activity(i: int, tag: str) -> dict[str, Any]:
    root = f"{tag}{i}"
    return {
        "type": "message",
        "id": root,
        "channelId": "msteams",
        "serviceUrl": "http://127.0.0.1:9/",
        "from": {"id": "29:alice", "aadObjectId": "aad-alice", "name": "Alice"},
        "recipient": {"id": BOT_ID, "name": "Cowork"},
        "conversation": {
            "id": f"19:bench@thread.tacv2;messageid={root}",
            "conversationType": "channel",
        },
        "channelData": {"tenant": {"id": "tenant-bench"}},
        "text": f"<at>Cowork</at> run announce channel=19:eng@thread.tacv2 text=hello {i}",
        "entities": [{"type": "mention", "text": "<at>Cowork</at>", "mentioned": {"id": BOT_ID}}],
    }


async def _one(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], out: list[float], errors: list[int]
) -> None:
    start = time.perf_counter()
    try:
        async with http.post(url, json=body) as response:
            await response.read()
            if response.status != 200:
                errors.append(response.status)
    except aiohttp.ClientError:
        errors.append(0)
    out.append((time.perf_counter() - start) * 1000)


async def load(url: str, rate: float, seconds: float, tag: str) -> dict[str, Any]:
    bodies = [activity(i, tag) for i in range(int(rate * seconds))]

    async def send(http: aiohttp.ClientSession, body: Any, latencies: list[float], errors: list[int]) -> None:
        await _one(http, url, body, latencies, errors)

    return await steady_load(send, bodies, [activity(i, f"warm{tag}") for i in range(20)], rate)


async def measure(kind: str, rate: float, seconds: float, database_url: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.teams", "--serve", kind, "--database-url", database_url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    port = int((await proc.stdout.readline()).decode())
    try:
        return await load(f"http://127.0.0.1:{port}/api/messages", rate, seconds, kind)
    finally:
        proc.stdin.close()
        await proc.wait()


async def run(rate: float, seconds: float, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        url = database_url or f"sqlite:///{Path(d) / 'bench.db'}"
        bare = await measure("bare", rate, seconds, url)
        cowork = await measure("cowork", rate, seconds, url)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "database": url.split(":", 1)[0],
        "bare_cloudadapter_no_op": bare,
        "cowork_task_written_then_answer": cowork,
        "target_p99_ms": TARGET_P99_MS,
        "met": cowork["p99_ms"] <= TARGET_P99_MS and cowork["errors"] == 0,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--database-url", default=None)
    p.add_argument("--serve", choices=["bare", "cowork"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        asyncio.run(serve(a.serve, a.database_url))
        return
    print(json.dumps(asyncio.run(run(a.rate, a.seconds, a.database_url)), indent=2))


if __name__ == "__main__":
    main()
