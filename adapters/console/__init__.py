"""The console adapter: a small chat workspace in the browser (channels, direct
messages, threads) that talks to the bot through the same neutral messages and
cards as Slack and Teams. Its transcript is stored by the caller's store."""

from adapters.console.client import ConsoleAdapter, TranscriptStore
from adapters.console.endpoint import ConsoleEndpoint
from adapters.console.inbound import parse_action, parse_post, to_click, to_inbound
from adapters.console.live import Hub
from adapters.console.render import render, render_text

__all__ = [
    "ConsoleAdapter",
    "ConsoleEndpoint",
    "Hub",
    "TranscriptStore",
    "parse_action",
    "parse_post",
    "render",
    "render_text",
    "to_click",
    "to_inbound",
]
