"""Bad input at every HTTP endpoint (hypothesis): no 500, no crash, and a
refused request stores nothing (task and outbox rows counted before and after).

The whole app runs on loopback in its own thread, with Slack, Teams and the
console mounted; requests are raw bytes over http.client, so nothing is
cleaned up on the way in.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from tasks.schema import upgrade
from tests.fakes.slack_api import fake_slack, signed_headers
from tests.faults.fleet import free_port

SECRET = "fuzz-signing-secret"
STREAMS = {"/api/console/events"}  # server-sent events: open until the client leaves


@dataclass
class Served:
    port: int
    url: str
    routes: list[tuple[str, str]]

    def counts(self) -> tuple[int, int]:
        engine = create_engine(self.url)
        with engine.connect() as conn:
            got = tuple(int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in ("task", "outbox"))
        engine.dispose()
        return got  # type: ignore[return-value]

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()


def _serve(url: str, port: int, ready: threading.Event, stop: threading.Event, out: list[Served]) -> None:
    async def main() -> None:
        async with fake_slack() as slack:
            await app_until(slack.base_url)

    async def app_until(slack_url: str) -> None:
        settings = Settings(DATABASE_URL=url, SLACK_BOT_TOKEN="xoxb-fuzz", SLACK_SIGNING_SECRET=SECRET,
                            SLACK_API_URL=slack_url, MicrosoftAppId="fuzz-app",
                            MicrosoftAppPassword="fuzz-password")  # fmt: skip
        runtime = Runtime(settings)
        app = make_app(runtime, console=True)
        routes = sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                         if r.resource is not None and r.method in ("GET", "POST")})  # fmt: skip
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        out.append(Served(port, url, [r for r in routes if r[1] not in STREAMS]))
        ready.set()
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()
        runtime.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    ready, stop, out = threading.Event(), threading.Event(), []  # type: ignore[var-annotated]
    thread = threading.Thread(target=_serve, args=(url, free_port(), ready, stop, out), daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start"
    yield out[0]
    stop.set()
    thread.join(10)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
bodies = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(str.encode),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                 max_leaves=12).map(lambda v: __import__("json").dumps(v).encode()),
)  # fmt: skip
content_types = st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data", "", "x/\x7f"]
)


def test_every_route_is_fuzzed(served: Served) -> None:
    paths = {p for _, p in served.routes}
    assert {"/healthz", "/metrics", "/slack/events", "/api/messages"} <= paths


@FUZZ
@given(body=bodies, ctype=content_types, sig=header_text, ts=header_text, auth=header_text, pick=st.integers(0, 10**6))
def test_bad_posts_never_500_and_refusals_store_nothing(
    served: Served, body: bytes, ctype: str, sig: str, ts: str, auth: str, pick: int
) -> None:
    posts = [p for m, p in served.routes if m == "POST"]
    path = posts[pick % len(posts)]
    headers = {"Content-Type": ctype, "X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts,
               "Authorization": f"Bearer {auth}"}  # fmt: skip
    before = served.counts()
    status = served.send("POST", path, body, headers)
    assert status < 500, f"POST {path} -> {status}"
    if status >= 400:
        assert served.counts() == before, f"refused POST {path} ({status}) stored something"


@FUZZ
@given(body=bodies, ctype=content_types)
def test_slack_bodies_with_a_good_signature_but_bad_content_never_500(served: Served, body: bytes, ctype: str) -> None:
    text_body = body.decode("utf-8", "replace")
    headers = signed_headers(text_body, SECRET, content_type=ctype or "application/json")
    before = served.counts()
    status = served.send("POST", "/slack/events", text_body.encode(), headers)
    assert status < 500
    if status >= 400:
        assert served.counts() == before


@FUZZ
@given(query=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60), pick=st.integers(0, 10**6),
       ident=st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12))  # fmt: skip
def test_bad_queries_and_ids_on_gets_never_500(served: Served, query: str, pick: int, ident: str) -> None:
    gets = [p for m, p in served.routes if m == "GET"]
    path = gets[pick % len(gets)].replace("{id}", ident)
    from urllib.parse import quote

    status = served.send("GET", f"{quote(path)}?{quote(query, safe='=&')}")
    assert status < 500, f"GET {path}?{query} -> {status}"
