"""MCP tools as skills. Each server the policy lists under `mcp_servers`
(`{name, command, args, env}` for stdio, `{name, url}` for streamable HTTP)
is asked for its tools at start; each tool becomes a skill named
`mcp.<server>.<tool>` with the tool's input schema. Its effect class comes
from the policy's `skill_effects` (globs allowed), else `external`: an
unknown tool is treated as one that changes the world.

A call opens its own connection: no session outlives a step, so a crashed or
restarted server costs one retry, not a stuck worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from tasks.rules.egress import url_host
from tasks.rules.json_types import JSON
from tasks.rules.policy import Policy
from tasks.skills.base import Effect, Skill, SkillError, StepContext, StepResult

log = logging.getLogger(__name__)


class _ServerEntry(TypedDict, total=False):
    """An entry of the policy's `mcp_servers`, as its documentation gives it."""

    name: str
    command: str
    args: list[str]
    env: dict[str, object]
    url: str
    timeout_seconds: float


@dataclass(frozen=True)
class McpServer:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    url: str | None = None
    timeout: float = 60.0
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_policy(cls, raw: Mapping[str, object]) -> McpServer:
        """A server of the policy file. The policy checks its name and its command or url;
        the rest is handed on as written, for the `mcp` client to check."""
        given = cast(_ServerEntry, raw)
        return cls(
            name=str(given["name"]), command=given.get("command"), args=tuple(given.get("args") or ()),
            env={str(k): str(v) for k, v in (given.get("env") or {}).items()} or None,
            url=given.get("url"), timeout=float(given.get("timeout_seconds", 60.0)),
        )  # fmt: skip

    def client(self) -> Any:
        from mcp import Client, StdioServerParameters

        if self.url:
            return Client(self.url, read_timeout_seconds=self.timeout)
        assert self.command is not None
        params = StdioServerParameters(command=self.command, args=list(self.args), env=self.env)
        return Client(params, read_timeout_seconds=self.timeout)


def result_text(result: Any) -> str:
    """The text parts of an MCP tool result, joined. Pure."""
    parts = [getattr(c, "text", None) for c in (result.content or [])]
    return "\n".join(p for p in parts if p)


class McpTool(Skill):
    """One tool of one MCP server."""

    def __init__(self, server: McpServer, tool: Any, effect: Effect):
        self.server = server
        self.tool = str(tool.name)
        hints = tool.annotations
        self.name = f"mcp.{server.name}.{tool.name}"  # type: ignore[misc]
        self.description = (tool.description or tool.name)[:1000]  # type: ignore[misc]
        self.args_schema = dict(tool.input_schema or {"type": "object"})  # type: ignore[misc]
        self.effect = effect  # type: ignore[misc]
        idem = bool(hints and (hints.idempotent_hint or hints.read_only_hint))
        self.idempotent = effect == Effect.READ or idem  # type: ignore[misc]
        self.timeout = server.timeout + 10  # type: ignore[misc]

    def reaches(self, args: Mapping[str, object]) -> str | None:
        """A tool that reads a URL it is given (a fetch tool) sends data to that host."""
        return next((h for k in ("url", "uri") if (h := url_host(args.get(k)))), None)

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        from mcp import MCPError

        try:
            async with self.server.client() as client:
                result = await client.call_tool(self.tool, args)
        except MCPError as e:
            raise SkillError(f"{self.name}: {e}", retryable=False) from e
        except (OSError, RuntimeError, ExceptionGroup) as e:
            raise SkillError(f"{self.name}: cannot reach MCP server {self.server.name}: {e}") from e
        text = result_text(result)
        if result.is_error:
            raise SkillError(f"{self.name}: {text[:1000] or 'the tool failed'}", retryable=False)
        effects = () if self.effect == Effect.READ else (f"ran {self.name}",)
        return StepResult(output={"text": text, "structured": result.structured_content,
                                  "source": f"mcp:{self.server.name}", "untrusted": True},
                          effects=effects)  # fmt: skip


async def list_tools(server: McpServer) -> list[Any]:
    tools: list[Any] = []
    async with server.client() as client:
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools


async def load_mcp_skills(policy: Policy) -> list[Skill]:
    """The tools of every MCP server in the policy as skills; a server that
    cannot be reached is logged and left out, so the bot still starts."""
    skills: list[Skill] = []
    for raw in policy.mcp_servers:
        server = McpServer.from_policy(raw)
        try:
            tools = await asyncio.wait_for(list_tools(server), server.timeout)
        except Exception as e:
            log.warning("MCP server %s: cannot list its tools, leaving them out: %s", server.name, e)
            continue
        for tool in tools:
            name = f"mcp.{server.name}.{tool.name}"
            effect = Effect(policy.defaults.effect_of(name, Effect.EXTERNAL.value))
            skills.append(McpTool(server, tool, effect))
    return skills


def mcp_skills(policy: Policy) -> list[Skill]:
    """`load_mcp_skills` for callers that are not async (start-up assembly):
    runs in a thread with its own event loop, so it works under a running loop."""
    if not policy.mcp_servers:
        return []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, load_mcp_skills(policy)).result()
