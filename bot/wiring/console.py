"""Console wiring: builds the console adapter over the transcript, hands it to
the delivery loop as platform "console" and mounts its page and API, plus the
task pages (GET /tasks, GET /tasks/{id}, GET /api/tasks/{id}) that every
card's link points to.

The console has no login: it is meant for 127.0.0.1 (the default COWORK_HOST),
and says so loudly when bound anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from adapters.console import ConsoleAdapter, ConsoleEndpoint, Hub
from adapters.console.client import FEED_SECONDS
from adapters.console.pages import task_list_page, task_page
from adapters.sanitize import db_id
from bot.application import cards
from bot.assembly.runtime import Runtime
from tasks.rules.states import FINAL
from tasks.store.models import Approval, Event, Step, Task
from tasks.store.transcript import Transcript
from tasks.store.views import TaskView

log = logging.getLogger(__name__)
LIST_LIMIT = 200
FEED = web.AppKey("console_feed", asyncio.Task[None])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task_row(task: Task, now: datetime) -> dict[str, Any]:
    conv = task.conversation or {}
    channel = str(conv.get("channel", ""))
    return {
        "id": task.id,
        "title": cards.task_title(task),
        "summary": cards.task_title(task).split(": ", 1)[-1],
        "state": task.state,
        "label": cards.LABELS.get(task.state, task.state),
        "final": task.state in FINAL,
        "text": task.text,
        "playbook": task.playbook,
        "params": task.params,
        "requester": task.requester,
        "requester_name": task.requester_name,
        "platform": task.platform,
        "where": f"{task.platform} #{channel.lstrip('#')}" if channel else task.platform,
        "created_at": _iso(task.created_at),
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
        "elapsed": cards.duration(cards.elapsed(task, now)),
        "tokens": task.tokens,
        "cost": task.cost,
        "cost_text": cards.money(task.cost),
        "error": task.error,
        "pause_reason": task.pause_reason,
        "plan": task.plan,
    }


def step_json(s: Step) -> dict[str, Any]:
    return {
        "key": s.key,
        "skill": s.skill,
        "args": s.args,
        "depends_on": s.depends_on or [],
        "state": s.state,
        "attempts": s.attempts,
        "result": s.result,
        "error": s.error,
        "started_at": _iso(s.started_at),
        "finished_at": _iso(s.finished_at),
        "tokens": s.tokens,
        "cost": s.cost,
    }


def approval_json(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id,
        "step_key": a.step_key,
        "skill": a.skill,
        "state": a.state,
        "approvers": a.approvers or [],
        "required": a.required,
        "decisions": a.decisions or [],
        "decided_by": a.decided_by,
        "decided_at": _iso(a.decided_at),
        "expires_at": _iso(a.expires_at),
        "created_at": _iso(a.created_at),
        "reason": a.reason,
        "summary": a.summary,
    }


def task_json(view: TaskView, events: Sequence[Event], now: datetime) -> dict[str, Any]:
    """Everything the task page shows: plan, steps, approvals, timeline, cost."""
    return {
        "task": task_row(view.task, now),
        "steps": [step_json(s) for s in view.steps],
        "approvals": [approval_json(a) for a in view.approvals],
        "events": [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail} for e in events],
    }


class TaskPages:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/tasks", self.list_page)
        app.router.add_get("/api/tasks", self.list_api)
        app.router.add_get("/tasks/{id}", self.page)
        app.router.add_get("/api/tasks/{id}", self.api)

    async def _data(self, request: web.Request) -> dict[str, Any]:
        raw = request.match_info["id"].lstrip("#")
        task_id = db_id(raw)
        if task_id is None:
            raise web.HTTPNotFound(text=f"there is no task {raw[:40]}")
        store = self.runtime.store
        if await store.get_task(task_id) is None:
            raise web.HTTPNotFound(text=f"there is no task #{task_id}")
        view = await store.view(task_id)
        return task_json(view, await store.events(task_id), self.runtime.clock())

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=task_page(await self._data(request)), content_type="text/html")

    async def api(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(await self._data(request))
        except web.HTTPNotFound as e:
            return web.json_response({"error": e.text}, status=404)

    async def _rows(self) -> list[dict[str, Any]]:
        now = self.runtime.clock()
        return [task_row(t, now) for t in await self.runtime.store.list_tasks(limit=LIST_LIMIT)]

    async def list_page(self, request: web.Request) -> web.Response:
        return web.Response(text=task_list_page(await self._rows()), content_type="text/html")

    async def list_api(self, request: web.Request) -> web.Response:
        return web.json_response({"tasks": await self._rows()})


def _follow_transcript(app: web.Application, adapter: ConsoleAdapter) -> None:
    """While pages are open, look every `FEED_SECONDS` for what other web processes
    wrote to the transcript (cards they delivered, messages they took)."""

    async def follow() -> None:
        while True:
            await asyncio.sleep(FEED_SECONDS)
            try:
                await adapter.catch_up()
            except Exception as e:  # the database is down: the pages wait, and reload on reconnect
                log.debug("console feed: %s", e)

    async def start(_: web.Application) -> None:
        app[FEED] = asyncio.create_task(follow(), name="console-feed")

    async def stop(_: web.Application) -> None:
        app[FEED].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[FEED]

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def make_adapter(runtime: Runtime) -> ConsoleAdapter:
    """The console adapter over the shared transcript (a worker process's client: no pages)."""
    return ConsoleAdapter(Transcript(runtime.db), Hub(), clock=runtime.clock)


def mount_console(app: web.Application, runtime: Runtime) -> ConsoleAdapter:
    """Called by bot.web.server.make_app when the console is on."""
    adapter = make_adapter(runtime)
    runtime.add_adapter("console", adapter)
    conversation = runtime.conversation
    ConsoleEndpoint(adapter, on_message=conversation.handle_message, on_click=conversation.handle_click).add_routes(app)
    TaskPages(runtime).add_routes(app)
    _follow_transcript(app, adapter)
    host = runtime.settings.host
    if not is_loopback(host):
        log.warning(
            "the console at / has no login and is reachable on %s: anyone who can reach it "
            "can act as any user; bind COWORK_HOST=127.0.0.1 unless that is what you want",
            host,
        )
    return adapter
