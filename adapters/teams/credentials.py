"""The bot's outbound token from a named authority (COWORK_TEAMS_LOGIN_URL).

botbuilder hands a login URL it does not know (neither login.microsoftonline.com
nor .us) to MSAL as the authority, but with MSAL's instance discovery on: MSAL
then asks login.microsoftonline.com whether the authority exists, which a
private or test authority never does, and drops botbuilder's own
`validate_authority`. The operator named the authority, so here MSAL uses it
as given: tenant discovery at `<login URL>/v2.0/.well-known/openid-configuration`,
then the client-credentials grant at the token endpoint it names.
"""

from __future__ import annotations

from typing import Any

from botframework.connector.auth import (
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
)
from msal import ConfidentialClientApplication


class AuthorityCredentials(MicrosoftAppCredentials):  # type: ignore[misc]
    """App id + password credentials whose token comes from `authority`."""

    def __init__(self, app_id: str, password: str, tenant_id: str | None, oauth_scope: str, authority: str):
        super().__init__(app_id, password, channel_auth_tenant=tenant_id, oauth_scope=oauth_scope)
        self.oauth_endpoint = authority
        self._msal: ConfidentialClientApplication | None = None

    def get_access_token(self, force_refresh: bool = False) -> str:
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else f"{self.oauth_scope}/.default"
        if self._msal is None:
            self._msal = ConfidentialClientApplication(
                client_id=self.microsoft_app_id,
                client_credential=self.microsoft_app_password,
                authority=self.oauth_endpoint,
                instance_discovery=False,
            )
        result: dict[str, Any] = self._msal.acquire_token_for_client(scopes=[scope])  # cached until it expires
        if "access_token" in result:
            return str(result["access_token"])
        raise PermissionError(
            f"no token from {self.oauth_endpoint}: {result.get('error')}: {result.get('error_description')}"
        )


class AuthorityCredentialFactory(PasswordServiceClientCredentialFactory):  # type: ignore[misc]
    """botbuilder's password credentials, with the token from the configured login URL."""

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> MicrosoftAppCredentials:
        if await self.is_authentication_disabled():
            return MicrosoftAppCredentials.empty()
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("Invalid app_id")
        return AuthorityCredentials(app_id, self.password, self.tenant_id, oauth_scope, login_endpoint)
