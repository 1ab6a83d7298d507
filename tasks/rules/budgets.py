"""Budgets per task: steps, wall time, tokens and dollars. Pure checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Budget:
    steps: int | None = 100
    wall_seconds: float | None = 24 * 3600
    tokens: int | None = None
    dollars: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Budget:
        if not data:
            return cls()
        known = {k: data[k] for k in ("steps", "wall_seconds", "tokens", "dollars") if k in data}
        return cls(**known)


@dataclass(frozen=True)
class Usage:
    steps: int
    tokens: int
    dollars: float
    started_at: datetime | None


def over_budget(budget: Budget, usage: Usage, now: datetime) -> str | None:
    """The reason the task must stop before its next step, or None."""
    if budget.steps is not None and usage.steps >= budget.steps:
        return f"step budget reached: {usage.steps} of {budget.steps} steps run"
    if budget.tokens is not None and usage.tokens >= budget.tokens:
        return f"token budget reached: {usage.tokens} of {budget.tokens} tokens used"
    if budget.dollars is not None and usage.dollars >= budget.dollars:
        return f"cost budget reached: ${usage.dollars:.4f} of ${budget.dollars:.2f} spent"
    if budget.wall_seconds is not None and usage.started_at is not None:
        elapsed = (now - usage.started_at).total_seconds()
        if elapsed >= budget.wall_seconds:
            return f"time budget reached: ran {elapsed:.0f}s of {budget.wall_seconds:.0f}s"
    return None
