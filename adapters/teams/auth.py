"""Bot Framework authentication for the Teams endpoint.

`TeamsCredentials` carries MicrosoftAppId/Password/Type/TenantId (and, for
tests and sovereign clouds, an OpenID metadata URL and token issuer);
`authentication` builds botbuilder's ConfigurationBotFrameworkAuthentication
from it. `authenticate` checks one request and turns every way a token can be
wrong into `Unauthorized`.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
)

from adapters.teams.connectors import CachedAuthentication

APP_TYPES = {"multitenant": "MultiTenant", "singletenant": "SingleTenant"}
APP_TYPES["userassignedmsi"] = "UserAssignedMSI"


class Unauthorized(Exception):
    """The request carries no valid Bot Framework token."""


class AuthUnavailable(Exception):
    """The token could not be checked (OpenID metadata unreachable)."""


@dataclass(frozen=True)
class TeamsCredentials:
    app_id: str = ""
    app_password: str = ""
    app_type: str = "MultiTenant"
    tenant_id: str = ""
    openid_metadata_url: str | None = None
    token_issuer: str = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER

    @property
    def auth_disabled(self) -> bool:
        """No app id: local development (Bot Framework Emulator, tests)."""
        return not self.app_id


class _Configuration:
    """The attribute bag botbuilder's configuration classes read."""

    def __init__(self, creds: TeamsCredentials) -> None:
        self.APP_ID = creds.app_id
        self.APP_PASSWORD = creds.app_password
        self.APP_TYPE = creds.app_type
        self.APP_TENANTID = creds.tenant_id
        if creds.openid_metadata_url:
            self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = creds.openid_metadata_url
            self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = creds.openid_metadata_url
            self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = creds.token_issuer
            self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
            self.TO_CHANNEL_FROM_BOT_LOGIN_URL = AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL


def authentication(creds: TeamsCredentials) -> BotFrameworkAuthentication:
    """botbuilder's authentication for these credentials; ValueError if incomplete."""
    app_type = APP_TYPES.get(creds.app_type.lower())
    if app_type is None:
        raise ValueError(f"MicrosoftAppType must be one of {sorted(APP_TYPES.values())}")
    if app_type != "MultiTenant" and not (creds.app_id and creds.tenant_id):
        raise ValueError(f"{app_type} needs MicrosoftAppId and MicrosoftAppTenantId")
    if app_type == "SingleTenant" and not creds.app_password:
        raise ValueError("SingleTenant needs MicrosoftAppPassword")
    return CachedAuthentication(ConfigurationBotFrameworkAuthentication(_Configuration(creds)))


async def authenticate(
    auth: BotFrameworkAuthentication, activity: Activity, header: str | None
) -> AuthenticateRequestResult:
    """Check the request's token. botbuilder 4.17.1's aiohttp CloudAdapter
    passes "" for a missing header, but the parameterized authentication checks
    `auth_header is None` and then crashes (AttributeError -> 500); we pass None.
    A malformed token raises jwt/IndexError/... inside botbuilder: all mean 401.
    """
    try:
        return await auth.authenticate_request(activity, header or None)
    except requests.RequestException as error:
        raise AuthUnavailable(f"cannot fetch OpenID metadata: {error}") from error
    except Exception as error:  # every token failure, whatever botbuilder raises
        raise Unauthorized(str(error) or type(error).__name__) from error
