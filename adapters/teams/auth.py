"""Bot Framework authentication for the Teams endpoint.

`TeamsCredentials` carries MicrosoftAppId/Password/Type/TenantId and, for
sovereign clouds (GCC High, DoD, China) or a test authority, the OpenID metadata
URL and token issuer of inbound tokens and the login URL and OAuth scope of the
bot's outbound token (any of them set: botbuilder's parameterized authentication,
the others at the public cloud's values);
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
from adapters.teams.credentials import AuthorityCredentialFactory

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
    token_issuer: str = ""  # "": the public cloud's
    login_url: str = ""
    oauth_scope: str = ""

    @property
    def parameterized(self) -> bool:
        """Some endpoint differs from the public cloud's."""
        return bool(self.openid_metadata_url or self.token_issuer or self.login_url or self.oauth_scope)

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
        if creds.parameterized:  # botbuilder then takes every value from here
            constants = AuthenticationConstants
            metadata = creds.openid_metadata_url
            self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = metadata or constants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
            self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = (
                metadata or constants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
            )
            self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = creds.token_issuer or constants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
            self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = creds.oauth_scope or constants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
            self.TO_CHANNEL_FROM_BOT_LOGIN_URL = creds.login_url or constants.TO_CHANNEL_FROM_BOT_LOGIN_URL


def authentication(creds: TeamsCredentials) -> BotFrameworkAuthentication:
    """botbuilder's authentication for these credentials; ValueError if incomplete."""
    app_type = APP_TYPES.get(creds.app_type.lower())
    if app_type is None:
        raise ValueError(f"MicrosoftAppType must be one of {sorted(APP_TYPES.values())}")
    if app_type != "MultiTenant" and not (creds.app_id and creds.tenant_id):
        raise ValueError(f"{app_type} needs MicrosoftAppId and MicrosoftAppTenantId")
    if app_type == "SingleTenant" and not creds.app_password:
        raise ValueError("SingleTenant needs MicrosoftAppPassword")
    factory = None
    if creds.login_url and app_type != "UserAssignedMSI":
        factory = AuthorityCredentialFactory(creds.app_id, creds.app_password, creds.tenant_id or None)
    return CachedAuthentication(
        ConfigurationBotFrameworkAuthentication(_Configuration(creds), credentials_factory=factory)
    )


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
