"""A tiny MCP server built with the `mcp` package's own MCPServer: run as a
stdio subprocess (`python -m tests.fakes.mcp_server`) or over streamable HTTP
(`... http PORT`). Tools: add, lookup (read-only), fail."""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("cowork-test")


@server.tool(description="Add two whole numbers")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Look up a word in the glossary")
def lookup(word: str) -> str:
    return {"sla": "service level agreement"}.get(word.lower(), "not found")


@server.tool(description="Always fails")
def fail() -> str:
    raise ToolError("the tool broke")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
