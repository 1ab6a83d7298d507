"""Skills: what a plan step can do. The contract, the registry and plugin loading.

A skill declares its name, description, JSON-schema arguments, an effect class,
whether it is idempotent, its retry limit and timeout, and how to tell after a
crash whether its effect happened (`reconcile`). Third-party skills come from
the entry-point group `cowork.skills`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Any, ClassVar

from tasks.rules.json_types import JSON

log = logging.getLogger(__name__)


class Effect(StrEnum):
    READ = "read"
    WRITE = "write"
    EXTERNAL = "external"
    PAYMENT = "payment"


@dataclass(frozen=True)
class OutboxMessage:
    """Chat output a step produces; written in the step's checkpoint transaction."""

    kind: str
    conversation: Mapping[str, object]
    payload: Mapping[str, object]
    idempotency_key: str | None = None
    card_key: str | None = None


@dataclass(frozen=True)
class StepResult:
    output: JSON = None
    tokens: int = 0
    cost: float = 0.0
    outbox: tuple[OutboxMessage, ...] = ()
    effects: tuple[str, ...] = ()
    # Not finished: park the step (holding no worker) and come back at this time.
    sleep_until: datetime | None = None
    # Kept in the step while it is not finished (a wait's deadline, say): given back
    # as `StepContext.saved` on every later run, through retries and restarts.
    state: dict[str, JSON] | None = None


@dataclass(frozen=True)
class Delivered:
    """What became of an outbox row: `pending`, `sending`, `sent`, `dead` (with the
    platform's reason) or `superseded`."""

    state: str
    error: str | None = None


class SkillError(Exception):
    """A step failed. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class CannotTell(Exception):
    """Reconcile could not tell whether an effect happened."""


@dataclass
class StepContext:
    task_id: int
    step_key: str
    idempotency_key: str
    requester: str
    conversation: dict[str, object]
    now: datetime
    attempt: int
    platform: str = ""
    tenant: str = ""
    lookup_outbox: Callable[[str], Awaitable[bool]] | None = None
    wake_at: datetime | None = None
    saved: Mapping[str, object] | None = None  # the `StepResult.state` this step kept
    delivery: Callable[[str], Awaitable[Delivered | None]] | None = None  # an outbox row's fate, by key
    resumed: bool = False  # run again after it parked, to see whether it is done (not a new attempt)


class Skill:
    """Base class for skills; subclasses set the class attributes and `run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    args_schema: ClassVar[dict[str, JSON]] = {"type": "object"}
    effect: ClassVar[Effect] = Effect.READ
    idempotent: ClassVar[bool] = True
    max_attempts: ClassVar[int] = 3
    timeout: ClassVar[float] = 60.0

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        raise NotImplementedError

    async def reconcile(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult | None:
        """After a crash between intent and outcome: the result if the effect
        happened, None if it did not. Idempotent skills may simply run again."""
        if self.idempotent:
            return None
        raise CannotTell(f"{self.name} cannot tell whether its effect happened")

    async def preflight(self, ctx: StepContext, args: Mapping[str, JSON]) -> None:
        """Before a person is asked to approve the step: raise a SkillError when
        it cannot work (its target does not exist, say), so nobody approves it
        in vain. The default checks nothing."""

    def describe(self, args: Mapping[str, JSON]) -> dict[str, JSON]:
        """What a person approving this step should see."""
        return {"skill": self.name, "args": dict(args)}

    def reaches(self, args: Mapping[str, object]) -> str | None:
        """The host this step sends its arguments to when the arguments choose it
        (a fetch's URL); None when they choose no host. See `tasks.rules.egress`."""
        return None


class SkillRegistry:
    def __init__(self, skills: Iterable[Skill] = ()):
        self._skills: dict[str, Skill] = {}
        for s in skills:
            self.add(s)

    def add(self, skill: Skill) -> None:
        if not skill.name:
            raise ValueError(f"{type(skill).__name__} has no name")
        self._skills[skill.name] = skill

    def get(self, name: str) -> Skill:
        try:
            return self._skills[name]
        except KeyError:
            raise KeyError(f"unknown skill {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._skills)

    def __contains__(self, name: object) -> bool:
        return name in self._skills

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills.values())

    def load_plugins(self, group: str = "cowork.skills") -> list[str]:
        """Add skills from installed distributions' entry points. An entry point
        names a Skill subclass, an instance, or a callable returning skills."""
        loaded: list[str] = []
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
                for skill in _instances(obj):
                    self.add(skill)
                    loaded.append(skill.name)
            except Exception:
                log.exception("could not load skill plugin %s", ep.name)
        return loaded


def _instances(obj: Any) -> list[Skill]:
    if isinstance(obj, Skill):
        return [obj]
    if isinstance(obj, type) and issubclass(obj, Skill):
        return [obj()]
    if callable(obj):
        got = obj()
        return list(got) if isinstance(got, list | tuple) else [got]
    raise TypeError(f"{obj!r} is not a skill")
