"""`python -m benchmarks.slack`: Slack ack latency under a steady load; prints JSON.

Sends signed app_mention events at a steady rate (open loop: a slow answer
does not slow the sender) to two servers in turn, each in its own process:
a bare slack-bolt AsyncApp that only acks, and Cowork's endpoint, which
writes the task (group commit, SQLite by default) before it acks. Reports
client-side latency percentiles for both.
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
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from benchmarks.loadgen import steady_load

SECRET = "bench-secret"
TEAM, BOT_USER = "TBENCH", "UBOT"


async def _authorize(**_: Any) -> AuthorizeResult:
    """No auth.test round trip in either app: the comparison is of the ack path."""
    return AuthorizeResult(
        enterprise_id=None,
        team_id=TEAM,
        bot_user_id=BOT_USER,
        bot_id="BBOT",
        bot_token="xoxb-bench",
    )


def bare_app() -> web.Application:
    bolt = AsyncApp(signing_secret=SECRET, authorize=_authorize)

    @bolt.event("app_mention")
    async def ack_only() -> None:
        return None

    async def handle(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    return app


def cowork_app(database_url: str) -> web.Application:
    from adapters.slack import SlackAdapter, SlackEndpoint, build_app
    from bot.assembly.config import Settings
    from bot.assembly.runtime import Runtime, prepare_database

    prepare_database(database_url)
    runtime = Runtime(Settings(DATABASE_URL=database_url, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET))
    adapter = SlackAdapter(AsyncWebClient(token="xoxb-bench", base_url="http://127.0.0.1:9/api/"))
    conv = runtime.conversation
    bolt = build_app(
        adapter,
        signing_secret=SECRET,
        on_message=conv.handle_message,
        on_click=conv.handle_click,
        authorize=_authorize,
    )
    app = web.Application()
    app.router.add_post("/slack/events", SlackEndpoint(bolt, SECRET).handle)
    return app


async def serve(kind: str, database_url: str, switch_interval: float | None) -> None:
    if switch_interval:
        # The database thread and the event loop share the GIL: a shorter
        # switch interval hands a finished commit back to the loop sooner.
        sys.setswitchinterval(switch_interval)
    app = bare_app() if kind == "bare" else cowork_app(database_url)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    cpu = time.process_time()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    print(json.dumps({"server_cpu_s": round(time.process_time() - cpu, 3)}), flush=True)
    await runner.cleanup()


def _events(n: int, tag: str) -> list[str]:
    return [
        json.dumps(
            {
                "type": "event_callback",
                "team_id": TEAM,
                "api_app_id": "A1",
                "event_id": f"Ev{tag}{i}",
                "event_time": 1,
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
                "event": {
                    "type": "app_mention",
                    "user": "U1",
                    "channel": "C1",
                    "ts": f"1.{i:06d}",
                    "text": f"<@{BOT_USER}> run announce channel=#eng text=hello {i}",
                },
            }
        )
        for i in range(n)
    ]


async def _one(http: aiohttp.ClientSession, url: str, body: str, out: list[float], errors: list[int]) -> None:
    ts = str(int(time.time()))
    sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(sig),
        "Content-Type": "application/json",
    }
    start = time.perf_counter()
    try:
        async with http.post(url, data=body, headers=headers) as r:
            await r.read()
            if r.status != 200:
                errors.append(r.status)
    except aiohttp.ClientError:
        errors.append(0)
    out.append((time.perf_counter() - start) * 1000)


async def load(url: str, rate: float, seconds: float, tag: str) -> dict[str, Any]:
    bodies = _events(int(rate * seconds), tag)

    async def send(http: aiohttp.ClientSession, body: Any, latencies: list[float], errors: list[int]) -> None:
        await _one(http, url, body, latencies, errors)

    return await steady_load(send, bodies, [b.replace('"Ev', '"Warm') for b in bodies[:20]], rate)


async def measure(kind: str, rate: float, seconds: float, database_url: str, switch_interval: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.slack",
        "--serve",
        kind,
        "--database-url",
        database_url,
        "--switch-interval",
        str(switch_interval),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int((await proc.stdout.readline()).decode())
    try:
        result = await load(f"http://127.0.0.1:{port}/slack/events", rate, seconds, kind)
    finally:
        proc.stdin.close()
        cpu = json.loads((await proc.stdout.readline()).decode() or "{}")
        await proc.wait()
    requests = result["requests"] + 20  # with the warm-up
    result["server_cpu_ms_per_request"] = round(cpu.get("server_cpu_s", 0) * 1000 / requests, 3)
    return result


async def run(rate: float, seconds: float, database_url: str | None, switch_interval: float = 0.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        url = database_url or f"sqlite:///{Path(d) / 'bench.db'}"
        bare = await measure("bare", rate, seconds, url, switch_interval)
        cowork = await measure("cowork", rate, seconds, url, switch_interval)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "switch_interval_s": switch_interval or sys.getswitchinterval(),
        "database": url.split(":", 1)[0],
        "bare_bolt_ack_only": bare,
        "cowork_task_written_then_ack": cowork,
        "target_p99_ms": 50,
        "met": cowork["p99_ms"] <= 50,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--database-url", default=None)
    p.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="sys.setswitchinterval in the servers (default: Python's 5 ms)",
    )
    p.add_argument("--serve", choices=["bare", "cowork"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        asyncio.run(serve(a.serve, a.database_url, a.switch_interval))
        return
    result = asyncio.run(run(a.rate, a.seconds, a.database_url, a.switch_interval))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
