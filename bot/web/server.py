"""The HTTP server: one aiohttp application for every endpoint.

GET /healthz (liveness; ?ready=1 also checks the database), GET /metrics,
POST /slack/events, POST /api/messages and the console at / — each platform's
endpoint is mounted by its wiring module when that platform is configured.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.assembly.runtime import Runtime
from bot.web.metrics import mount_metrics
from bot.web.observability import observe

log = logging.getLogger(__name__)
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
MAX_BODY = 1024 * 1024


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if request.query.get("ready") in (None, "", "0"):
        return web.json_response({"status": "ok"})
    try:
        await runtime.store.ping()
    except Exception as e:
        return web.json_response({"status": "unavailable", "database": str(e)[:200]}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """No request makes the server answer 500 with a stack trace: a bug is logged
    with the request id, and the caller gets a short, honest 500."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


def make_app(runtime: Runtime, *, console: bool | None = None) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app[RUNTIME] = runtime
    observe(app)
    app.router.add_get("/healthz", healthz)
    mount_metrics(app, runtime)
    settings = runtime.settings
    # A platform's wiring (and its SDK) is imported only when that platform is configured.
    if settings.slack_enabled:
        from bot.wiring.slack import mount_slack

        mount_slack(app, runtime)
    if settings.teams_enabled:
        from bot.wiring.teams import mount_teams

        mount_teams(app, runtime)
    if settings.console_enabled if console is None else console:
        from bot.wiring.console import mount_console

        mount_console(app, runtime)
    return app
