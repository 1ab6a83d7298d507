"""The platforms' clients for a process with no HTTP endpoints (`cowork worker`).

Skills read chat (`chat.history`) and check a post's target before approval
through the platform adapters; a worker process needs them as `cowork serve`
has them, without mounting any endpoint. Such a process delivers nothing
itself: the web processes' delivery loop does (`Runtime.start(delivery=False)`).
"""

from __future__ import annotations

from bot.assembly.runtime import Runtime


def attach_clients(runtime: Runtime) -> list[str]:
    """Give the runtime an adapter for every configured platform; the names added."""
    settings = runtime.settings
    if settings.slack_enabled:
        from bot.wiring.slack import make_adapter

        runtime.add_adapter("slack", make_adapter(runtime))
    if settings.teams_enabled:
        from bot.wiring.teams import make_adapter as make_teams

        runtime.add_adapter("teams", make_teams(runtime))
    if settings.console_enabled:
        from bot.wiring.console import make_adapter as make_console

        runtime.add_adapter("console", make_console(runtime))
    return sorted(runtime.adapters)
