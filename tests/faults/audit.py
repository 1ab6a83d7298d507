"""The books after a scenario: read the database (and what the outside world
recorded) and count what went right and what went wrong.

`Books.problems()` is the pass/fail verdict: a task lost or not ended, a step
that succeeded twice, a message or webhook call made twice or made for a step
that never succeeded, a finished task without exactly one summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, text

from tasks.rules.states import FINAL
from tasks.store.db import normalize_url

FINAL_STATES = {s.value for s in FINAL}


@dataclass
class Books:
    expected_tasks: int
    states: Counter[str] = field(default_factory=Counter)
    intents: Counter[tuple[int, str]] = field(default_factory=Counter)
    succeeded: Counter[tuple[int, str]] = field(default_factory=Counter)
    step_states: dict[tuple[int, str], tuple[str, str, str]] = field(default_factory=dict)
    messages: Counter[str] = field(default_factory=Counter)
    summaries: Counter[int] = field(default_factory=Counter)
    takeovers: int = 0
    reconciled: int = 0
    unknown_outcome: int = 0

    @property
    def tasks(self) -> int:
        return sum(self.states.values())

    def unfinished(self) -> int:
        return sum(n for s, n in self.states.items() if s not in FINAL_STATES)

    def problems(self, webhook_hits: Mapping[str, int] | None = None) -> list[str]:
        out: list[str] = []
        if self.tasks != self.expected_tasks:
            out.append(f"{self.expected_tasks} tasks enqueued, {self.tasks} in the database")
        if self.unfinished():
            out.append(f"{self.unfinished()} tasks did not end: {dict(self.states)}")
        out += [f"step {k} succeeded {n} times" for k, n in self.succeeded.items() if n > 1]
        out += self._effects("chat.post", self.messages, "message rows")
        if webhook_hits is not None:
            out += self._effects("webhook.call", webhook_hits, "webhook calls")
        ended = sorted(t for t, n in self.summaries.items() if n != 1)
        out += [f"task {t} has {self.summaries[t]} summaries" for t in ended]
        return out

    def _effects(self, skill: str, seen: Mapping[str, int], what: str) -> list[str]:
        """Each step of `skill`: its effect happened once if it succeeded, never twice."""
        out = []
        for key, (state, sk, idem) in self.step_states.items():
            if sk != skill:
                continue
            n = seen.get(idem, 0)
            if n > 1 or (state == "succeeded" and n != 1):
                out.append(f"step {key} ({state}) has {n} {what}")
        return out

    def counts(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "expected_tasks": self.expected_tasks,
            "states": dict(sorted(self.states.items())),
            "steps": len(self.step_states),
            "step_intents": sum(self.intents.values()),
            "steps_with_repeated_intent": sum(1 for n in self.intents.values() if n > 1),
            "step_succeeded_events": sum(self.succeeded.values()),
            "message_rows": sum(self.messages.values()),
            "lease_takeovers": self.takeovers,
            "reconciled_after_crash": self.reconciled,
            "failed_outcome_unknown": self.unknown_outcome,
        }


def read_books(url: str, expected_tasks: int) -> Books:
    engine = create_engine(normalize_url(url))
    books = Books(expected_tasks)
    try:
        with engine.connect() as conn:
            _tasks(conn, books)
            _events(conn, books)
            _outbox(conn, books)
    finally:
        engine.dispose()
    return books


def _tasks(conn: Any, books: Books) -> None:
    for state, error in conn.execute(text("SELECT state, error FROM task")):
        books.states[str(state)] += 1
        if error and "outcome unknown" in error:
            books.unknown_outcome += 1
    rows = conn.execute(text("SELECT task_id, key, state, skill, idempotency_key FROM step"))
    for task_id, key, state, skill, idem in rows:
        books.step_states[(int(task_id), str(key))] = (str(state), str(skill), str(idem or ""))


def _events(conn: Any, books: Books) -> None:
    kinds = "('step.intent', 'step.succeeded', 'lease.taken_over', 'step.reconciled')"
    for task_id, kind, detail in conn.execute(text(f"SELECT task_id, kind, detail FROM event WHERE kind IN {kinds}")):
        d = _json(detail)
        key = (int(task_id), str(d.get("step", "")))
        if kind == "step.intent":
            books.intents[key] += 1
        elif kind == "step.succeeded":
            books.succeeded[key] += 1
        elif kind == "lease.taken_over":
            books.takeovers += 1
        else:
            books.reconciled += 1


def _outbox(conn: Any, books: Books) -> None:
    rows = conn.execute(text("SELECT task_id, kind, idempotency_key FROM outbox"))
    for task_id, kind, idem in rows:
        if kind == "message" and idem:
            books.messages[str(idem)] += 1
        elif kind == "summary":
            books.summaries[int(task_id)] += 1
    for task_id, state in conn.execute(text("SELECT id, state FROM task")):
        if state in FINAL_STATES:  # every ended task owes its thread exactly one summary
            books.summaries.setdefault(int(task_id), 0)


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        import json

        return dict(json.loads(value))
    return dict(value or {})
