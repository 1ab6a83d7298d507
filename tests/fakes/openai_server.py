"""A fake OpenAI-compatible server on loopback: `POST /v1/chat/completions`
answers from a script (tool calls, text, usage, and faults: 429 with a code
and Retry-After, 500), or from a `responder` function once the script is
used up. It records every request body, so tests drive the real openai client
and check what it sent."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def completion(
    *,
    content: str | None = None,
    tool_calls: list[tuple[str, Any]] = (),
    usage: tuple[int, int] = (100, 20),
    model: str = "fake-model",
) -> Reply:
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args),
            },
        }
        for i, (name, args) in enumerate(tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return Reply(
        body={
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
            },
        }
    )


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: deque[Reply] = deque()
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._stall: Callable[[dict[str, Any]], bool] | None = None
        self._resumed = asyncio.Event()
        self.stalled = 0  # requests that were held without an answer

    # -- scripting ------------------------------------------------------------

    def plan(
        self,
        steps: list[dict[str, Any]],
        summary: str = "a plan",
        usage: tuple[int, int] = (100, 20),
    ) -> None:
        self.script.append(completion(tool_calls=[("submit_plan", {"summary": summary, "steps": steps})], usage=usage))

    def text(self, content: str, usage: tuple[int, int] = (50, 10)) -> None:
        self.script.append(completion(content=content, usage=usage))

    def raw_tool_call(self, name: str, arguments: str) -> None:
        self.script.append(completion(tool_calls=[(name, arguments)]))

    def fault(self, status: int, *, code: str | None = None, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        error = {"message": f"fake error {status}", "type": code or "server_error", "code": code}
        self.script.append(Reply(status=status, body={"error": error}, headers=headers))

    def stall(self, which: Callable[[dict[str, Any]], bool] = lambda body: True) -> None:
        """Requests for which `which(body)` holds are accepted and not answered
        until `resume()` (by then the client has usually given up: a timeout)."""
        self._resumed.clear()
        self._stall = which

    def resume(self) -> None:
        self._stall = None
        self._resumed.set()

    # -- server ---------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self._stall is not None and self._stall(body):
            self.stalled += 1
            await self._resumed.wait()
        if self.script:
            reply = self.script.popleft()
        elif self.responder is not None:
            reply = self.responder(body)
        else:
            reply = Reply(status=500, body={"error": {"message": "no scripted reply", "type": "x"}})
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def close(self) -> None:
        self.resume()  # held requests answer, so the server can shut down at once
        if self._runner is not None:
            await self._runner.cleanup()

    def system_prompts(self) -> list[str]:
        return [m["content"] for r in self.requests for m in r["messages"] if m["role"] == "system"]


@asynccontextmanager
async def running_fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
