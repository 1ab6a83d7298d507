"""Microsoft Teams adapter (Bot Framework): inbound activities, Adaptive Cards,
proactive posts. See docs/teams.md."""

from adapters.teams.auth import TeamsCredentials, authentication
from adapters.teams.client import TeamsAdapter
from adapters.teams.endpoint import TeamsBot, TeamsEndpoint

__all__ = ["TeamsAdapter", "TeamsBot", "TeamsCredentials", "TeamsEndpoint", "authentication"]
