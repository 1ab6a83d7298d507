"""Configuration from the environment (and a .env file), typed and checked.

The names are the public contract in ARCHITECTURE.md; `describe()` feeds the
help text and `cowork doctor`, and never shows a secret's value.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> Any:
    return AliasChoices(*names)


def _teams_url(name: str, bot_framework_name: str, description: str) -> Any:
    """A Teams endpoint (empty: the public cloud's), by Cowork's name or Bot Framework's own."""
    return Field("", validation_alias=_env(name, bot_framework_name), description=description)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    port: int = Field(3978, validation_alias=_env("PORT"), description="HTTP port")
    host: str = Field("127.0.0.1", validation_alias=_env("COWORK_HOST"),
                      description="address to listen on (0.0.0.0 to expose)")  # fmt: skip
    database_url: str = Field("sqlite:///cowork.db", validation_alias=_env("DATABASE_URL"),
                              description="SQLite file (default) or PostgreSQL URL")  # fmt: skip
    public_url: str = Field("", validation_alias=_env("COWORK_PUBLIC_URL"),
                            description="external base URL, for task page links in cards")  # fmt: skip
    console: bool | None = Field(None, validation_alias=_env("COWORK_CONSOLE"),
                                 description="serve the console page (default: on when no Slack/Teams)")  # fmt: skip
    log_json: bool = Field(False, validation_alias=_env("COWORK_LOG_JSON"), description="JSON log lines")
    log_level: str = Field("INFO", validation_alias=_env("COWORK_LOG_LEVEL"), description="log level")

    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"),
                                              description="Slack bot token (xoxb-…)")  # fmt: skip
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"),
                                                   description="Slack signing secret")  # fmt: skip
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"),
                                              description="Slack app token for Socket Mode (xapp-…)")  # fmt: skip
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL"),
                               description="Slack Web API base URL")  # fmt: skip

    microsoft_app_id: str = Field("", validation_alias=_env("MicrosoftAppId", "MICROSOFT_APP_ID"),
                                  description="Teams bot app id")  # fmt: skip
    microsoft_app_password: SecretStr | None = Field(
        None, validation_alias=_env("MicrosoftAppPassword", "MICROSOFT_APP_PASSWORD"),
        description="Teams bot secret")  # fmt: skip
    microsoft_app_type: str = Field("MultiTenant", validation_alias=_env("MicrosoftAppType"),
                                    description="MultiTenant, SingleTenant or UserAssignedMSI")  # fmt: skip
    microsoft_app_tenant_id: str = Field("", validation_alias=_env("MicrosoftAppTenantId"),
                                         description="tenant for SingleTenant/MSI")  # fmt: skip
    teams_openid_metadata: str = _teams_url(
        "COWORK_TEAMS_OPENID_METADATA",
        "ToBotFromChannelOpenIdMetadataUrl",
        "OpenID metadata of inbound Teams tokens (sovereign cloud, test authority)",
    )
    teams_token_issuer: str = _teams_url(
        "COWORK_TEAMS_TOKEN_ISSUER", "ToBotFromChannelTokenIssuer", "issuer of inbound Teams tokens"
    )
    teams_login_url: str = _teams_url(
        "COWORK_TEAMS_LOGIN_URL", "ToChannelFromBotLoginUrl", "authority (login URL) of the bot's outbound token"
    )
    teams_oauth_scope: str = _teams_url(
        "COWORK_TEAMS_OAUTH_SCOPE",
        "ToChannelFromBotOAuthScope",
        "scope of the bot's outbound token (the Bot Connector)",
    )
    teams: bool = Field(False, validation_alias=_env("COWORK_TEAMS"),
                        description="serve /api/messages without an app id (local Bot Emulator)")  # fmt: skip

    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"),
                                             description="enables the LLM planner")  # fmt: skip
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"),
                                        description="any OpenAI-compatible server")  # fmt: skip
    cowork_model: str = Field("gpt-4o-mini", validation_alias=_env("COWORK_MODEL"), description="LLM model")
    llm_timeout: float = Field(60.0, gt=0, validation_alias=_env("COWORK_LLM_TIMEOUT"),
                               description="seconds one LLM call may take before it is retried")  # fmt: skip

    cowork_policy: str | None = Field(None, validation_alias=_env("COWORK_POLICY"), description="policy YAML")
    cowork_playbooks: str | None = Field(None, validation_alias=_env("COWORK_PLAYBOOKS"),
                                         description="folder of playbook YAML files")  # fmt: skip

    worker_concurrency: int = Field(64, validation_alias=_env("COWORK_WORKER_TASKS"),
                                    description="tasks one worker runs at once")  # fmt: skip
    lease_seconds: float = Field(30.0, validation_alias=_env("COWORK_LEASE_SECONDS"),
                                 description="worker lease length")  # fmt: skip

    retention_days: float = Field(30.0, ge=0, validation_alias=_env("COWORK_RETENTION_DAYS"),
                                  description="days a finished task's rows are kept (0 = forever)")  # fmt: skip
    outbox_retention_days: float = Field(7.0, ge=0, validation_alias=_env("COWORK_OUTBOX_RETENTION_DAYS"),
                                         description="days sent/dead outbox rows are kept (0 = forever)")  # fmt: skip
    transcript_retention_days: float = Field(30.0, ge=0, validation_alias=_env("COWORK_TRANSCRIPT_RETENTION_DAYS"),
                                             description="days console messages are kept (0 = forever)")  # fmt: skip
    prune_interval: float = Field(300.0, ge=0, validation_alias=_env("COWORK_PRUNE_INTERVAL"),
                                  description="seconds between a worker's prune rounds (0 = off)")  # fmt: skip
    prune_round: int = Field(10000, ge=1, validation_alias=_env("COWORK_PRUNE_ROUND"),
                             description="rows one background prune round removes at most")  # fmt: skip
    prune_export: str = Field("", validation_alias=_env("COWORK_PRUNE_EXPORT"),
                              description="file a worker's prune appends removed audit events to")  # fmt: skip

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))

    @property
    def teams_enabled(self) -> bool:
        return bool(self.microsoft_app_id) or self.teams

    @property
    def console_enabled(self) -> bool:
        if self.console is not None:
            return self.console
        return not (self.slack_enabled or self.teams_enabled)

    @property
    def llm_enabled(self) -> bool:
        return self.openai_api_key is not None

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def describe() -> list[tuple[str, str, str]]:
    """(environment name, default, meaning) for every setting, for help and docs."""
    rows = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()
        default = "" if field.default is None else str(field.default)
        rows.append((str(env), default, field.description or ""))
    return rows
