"""Request and task ids on every log line, and one access line per request.

`request_ids` is the aiohttp middleware: it takes the caller's X-Request-Id
(when it is a short, plain token) or makes one, binds it for everything logged
while the request is handled, answers with it in X-Request-Id, and logs one
access line. `install_log_context` adds the bound ids to every log record as
`request_id` and `task_id` (what bot.ops.logs' JSON lines print): the task id
comes from `task_context`, or from the engine's turn (`tasks.engine.engine.TURN_TASK`,
which every step of the turn inherits).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from tasks.engine.engine import TURN_TASK

log = logging.getLogger("cowork.http")
REQUEST_ID: ContextVar[str | None] = ContextVar("cowork_request_id", default=None)
TASK_ID: ContextVar[int | None] = ContextVar("cowork_task_id", default=None)
HEADER = "X-Request-Id"
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})
_installed = False


def request_id_from(header: str | None) -> str:
    """Pure: the caller's id when it is safe to log and echo, else a new one."""
    if header and _GOOD_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_task_id() -> int | None:
    bound = TASK_ID.get()
    return bound if bound is not None else TURN_TASK.get()


@contextlib.contextmanager
def task_context(task_id: int) -> Iterator[None]:
    token = TASK_ID.set(task_id)
    try:
        yield
    finally:
        TASK_ID.reset(token)


def install_log_context() -> None:
    """Every log record gets `request_id` and `task_id` when they are known.
    A record factory (not a handler filter) so it holds whatever handlers the
    process sets up, and a caller's own `extra=` wins."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        rid = REQUEST_ID.get()
        if rid is not None:
            record.request_id = rid
        tid = current_task_id()
        if tid is not None:
            record.task_id = tid
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


@web.middleware
async def request_ids(request: web.Request, handler: Any) -> web.StreamResponse:
    rid = request_id_from(request.headers.get(HEADER))
    token = REQUEST_ID.set(rid)
    t0 = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        response.headers[HEADER] = rid
        return response
    except web.HTTPException as e:
        status = e.status
        e.headers[HEADER] = rid
        raise
    finally:
        ms = (time.perf_counter() - t0) * 1000
        level = logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO
        log.log(level, "%s %s %s %.1fms", request.method, request.path, status, ms)
        REQUEST_ID.reset(token)


def observe(app: web.Application) -> None:
    """What bot.web.server.make_app calls: ids on log lines, ids on requests."""
    install_log_context()
    app.middlewares.insert(0, request_ids)
