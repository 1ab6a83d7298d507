"""The Slack adapter: slack-bolt endpoint, Block Kit rendering, Web API client."""

from adapters.slack.client import SlackAdapter
from adapters.slack.endpoint import SlackEndpoint, build_app, socket_mode
from adapters.slack.home import HomeSource

__all__ = ["HomeSource", "SlackAdapter", "SlackEndpoint", "build_app", "socket_mode"]
