"""The whole app (Slack, Teams and the console mounted) on loopback in its own thread, for
the fuzz tests: requests are raw bytes over http.client, so nothing is cleaned up on the
way in. Slack requests can be signed with SECRET, Teams activities with the local
authority's key (tests/fakes/authority.py), so bad content gets past the signature."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import create_engine, text

from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tasks.store.db import normalize_url
from tests.fakes.authority import ISSUER, SCOPE, Authority, local_authority
from tests.fakes.slack_api import fake_slack, signed_headers
from tests.faults.fleet import free_port

SECRET = "fuzz-signing-secret"
APP_ID = "3d1f0c6e-2b7a-4c59-8e14-6a0b9d2c7f35"
PASSWORD = "fuzz-password"
STREAMS = {"/api/console/events"}  # server-sent events: open until the client leaves


@dataclass
class Served:
    port: int
    url: str
    routes: list[tuple[str, str]]
    authority: Authority
    service_url: str

    def counts(self) -> tuple[int, int]:
        engine = create_engine(normalize_url(self.url))
        with engine.connect() as conn:
            got = tuple(int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in ("task", "outbox"))
        engine.dispose()
        return got  # type: ignore[return-value]

    def rows(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(normalize_url(self.url))
        with engine.connect() as conn:
            got = list(conn.execute(text(sql), params))
        engine.dispose()
        return got

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
        return self.request(method, path, body, headers)[0]

    def slack(self, body: str, content_type: str = "application/json") -> int:
        """POST /slack/events with a good signature."""
        return self.send(
            "POST", "/slack/events", body.encode(), signed_headers(body, SECRET, content_type=content_type)
        )

    def teams(self, activity: dict[str, Any] | bytes) -> tuple[int, bytes]:
        """POST /api/messages with a good token for this service URL."""
        body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        headers = {"Authorization": f"Bearer {self.authority.sign(self.service_url)}",
                   "Content-Type": "application/json"}  # fmt: skip
        return self.request("POST", "/api/messages", body, headers)


def _serve(url: str, port: int, authority: Authority, ready: threading.Event, stop: threading.Event,
           out: list[Served]) -> None:  # fmt: skip
    async def main() -> None:
        async with fake_slack() as slack:
            await app_until(slack.base_url)

    async def app_until(slack_url: str) -> None:
        settings = Settings(DATABASE_URL=url, SLACK_BOT_TOKEN="xoxb-fuzz", SLACK_SIGNING_SECRET=SECRET,
                            SLACK_API_URL=slack_url, MicrosoftAppId=APP_ID, MicrosoftAppPassword=PASSWORD,
                            COWORK_TEAMS_OPENID_METADATA=authority.metadata_url, COWORK_TEAMS_TOKEN_ISSUER=ISSUER,
                            COWORK_TEAMS_LOGIN_URL=authority.login_url, COWORK_TEAMS_OAUTH_SCOPE=SCOPE)  # fmt: skip
        runtime = Runtime(settings)
        app = make_app(runtime, console=True)
        routes = sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                         if r.resource is not None and r.method in ("GET", "POST")})  # fmt: skip
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        service_url = f"http://127.0.0.1:{free_port()}/{uuid.uuid4().hex[:8]}/"  # nothing answers: no sends
        out.append(Served(port, url, [r for r in routes if r[1] not in STREAMS], authority, service_url))
        ready.set()
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()
        runtime.close()

    asyncio.run(main())


@contextmanager
def served_app(url: str, folder: Path) -> Iterator[Served]:
    """The app at `url` (a migrated database), until the block ends."""
    with local_authority(folder, APP_ID, PASSWORD) as authority:
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(authority.ca_file)
        ready, stop, out = threading.Event(), threading.Event(), []  # type: ignore[var-annotated]
        thread = threading.Thread(target=_serve, args=(url, free_port(), authority, ready, stop, out), daemon=True)
        thread.start()
        try:
            assert ready.wait(60), "the app did not start"
            yield out[0]
        finally:
            stop.set()
            thread.join(10)
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous
