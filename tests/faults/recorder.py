"""A loopback webhook that records every call it gets, by Idempotency-Key, in
the harness process: what the workers did to the outside world survives the
workers being killed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.loopback import serving


@dataclass
class Recorder:
    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    # Answer the next calls with these statuses (500, 429, ...) before answering 200.
    statuses: list[int] = field(default_factory=list)
    hang_seconds: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.hang_seconds:
            await asyncio.sleep(self.hang_seconds)
        if self.statuses:
            status = self.statuses.pop(0)
            headers = {"Retry-After": "1"} if status == 429 else {}
            return web.json_response({"ok": False}, status=status, headers=headers)
        self.hits[request.headers.get("Idempotency-Key", "")] += 1
        return web.json_response({"ok": True})

    def twice(self) -> list[str]:
        return [k for k, n in self.hits.items() if n > 1]


@asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    async with serving(app) as base:
        rec.url = f"{base}/hook"
        yield rec
