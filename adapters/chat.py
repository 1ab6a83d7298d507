"""The neutral chat model: the contract between the platform adapters and the bot.

Adapters turn platform payloads into `Inbound` messages and `Click`s, and render
neutral `Card`s natively (Block Kit, Adaptive Cards, HTML). Everything here is a
plain frozen value that round-trips through JSON, because conversation
references and cards are stored in the database (task rows, outbox rows) and
used again after restarts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

Style = Literal["default", "primary", "danger"]
Tone = Literal["info", "good", "warning", "bad"]


@dataclass(frozen=True)
class ConversationRef:
    """Where to talk: enough to post into a conversation proactively, later.

    `thread` is the thread root (Slack ts, Teams reply chain id, console
    message id); `extra` holds whatever else the platform needs to reach the
    conversation again (Teams: service_url, the serialized reference).
    """

    platform: str
    tenant: str
    channel: str
    thread: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConversationRef:
        return cls(
            platform=data["platform"],
            tenant=data.get("tenant", ""),
            channel=data["channel"],
            thread=data.get("thread"),
            extra=dict(data.get("extra") or {}),
        )

    def in_thread(self, thread: str | None) -> ConversationRef:
        return replace(self, thread=thread)


@dataclass(frozen=True)
class Inbound:
    """A message a person wrote to the bot (a mention, a DM, a slash command)."""

    platform: str
    tenant: str
    event_id: str
    user: str
    text: str
    conversation: ConversationRef
    user_name: str = ""
    direct: bool = False
    from_bot: bool = False


@dataclass(frozen=True)
class Click:
    """A person pressed a button on one of the bot's cards."""

    platform: str
    tenant: str
    user: str
    action: str
    value: dict[str, Any]
    conversation: ConversationRef
    user_name: str = ""
    message_id: str | None = None
    # The platform shows the click's answer to the clicker alone (Teams
    # Action.Execute): no separate private notice is needed.
    answered_inline: bool = False


@dataclass(frozen=True)
class Button:
    label: str
    action: str
    value: dict[str, Any] = field(default_factory=dict)
    style: Style = "default"


@dataclass(frozen=True)
class Field:
    label: str
    value: str


@dataclass(frozen=True)
class Card:
    """A platform-neutral card. `text` is the plain-text fallback every platform shows
    in notifications; the rest is rendered natively by each adapter.

    All strings are plain text written by the bot or (escaped by the renderer)
    by users: renderers must escape them for their markup.
    """

    title: str
    text: str = ""
    tone: Tone = "info"
    fields: tuple[Field, ...] = ()
    body: tuple[str, ...] = ()
    steps: tuple[Field, ...] = ()
    buttons: tuple[Button, ...] = ()
    link: str | None = None
    link_label: str = "Open task page"
    footer: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Card:
        return cls(
            title=data["title"],
            text=data.get("text", ""),
            tone=data.get("tone", "info"),
            fields=tuple(Field(**f) for f in data.get("fields", ())),
            body=tuple(data.get("body", ())),
            steps=tuple(Field(**f) for f in data.get("steps", ())),
            buttons=tuple(Button(**b) for b in data.get("buttons", ())),
            link=data.get("link"),
            link_label=data.get("link_label", "Open task page"),
            footer=data.get("footer", ""),
        )

    def fallback(self) -> str:
        return self.text or self.title


@dataclass(frozen=True)
class MessageRef:
    """The platform's id for a message the bot posted, so it can be edited later."""

    id: str
    channel: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageRef:
        return cls(id=data["id"], channel=data.get("channel", ""), extra=dict(data.get("extra") or {}))


class Unavailable(Exception):
    """The bot cannot take this message now (its database is unreachable): the
    endpoint answers 503 and nothing is acknowledged, so the platform sends it
    again."""


class DeliveryError(Exception):
    """A platform refused or failed a delivery.

    `retry_after` (seconds) is set when the platform asked us to wait (429);
    `permanent` means trying again cannot help (bot removed from the
    conversation, channel not found): the outbox row is marked undeliverable.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


class ChatAdapter(Protocol):
    """What the delivery loop needs from a platform. One class per platform owns
    every network call to it; it raises `DeliveryError` on failure."""

    platform: str

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        """Post a new message. `key` names the outbox row; adapters that can
        (Slack message metadata) attach it so `find` can recognise the post."""
        ...

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        """Edit a message the bot posted before."""
        ...

    async def notify(self, conversation: ConversationRef, user: str, text: str) -> None:
        """Tell one person something only they see (ephemeral / private)."""
        ...

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        """After a crash between a post and its record: the message already
        posted for `key`, if the platform lets us find it; else None."""
        ...


@dataclass(frozen=True)
class Handled:
    """What the bot did with an inbound message (for adapters that answer inline).

    Replies a person should see are always delivered through the outbox too;
    `text` is only for platforms that want a synchronous answer."""

    kind: Literal["task", "command", "ignored", "refused"]
    task_id: int | None = None
    text: str = ""


@dataclass(frozen=True)
class ClickResult:
    """What the bot did with a click. `card` is the refreshed card, for
    platforms that answer the click with it (Teams Action.Execute)."""

    accepted: bool
    text: str
    card: Card | None = None


class MessageHandler(Protocol):
    async def __call__(self, message: Inbound) -> Handled: ...


class ClickHandler(Protocol):
    async def __call__(self, click: Click) -> ClickResult: ...
