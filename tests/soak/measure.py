"""What the soak measured, computed from records: pure functions.

A task's progress is a level: 0 before the plan, 1 planned, +1 per finished
step, and `steps + 2` once it is over. A state change (an event in the task's
timeline) raises the level; the card that shows that level, or a later one,
ends the change's staleness: the time from the change until the fake platform
received a post or update of the card showing it.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TITLE = re.compile(r"^Task #(\d+): .* · ([A-Za-z ]+)$", re.S)
DONE = re.compile(r"✓ (\w+)")
OPEN = frozenset({"Queued", "Planning"})


@dataclass(frozen=True)
class Seen:
    """A card as the platform received it: whose, which level, when (epoch seconds)."""

    task: int
    level: int
    at: float


@dataclass(frozen=True)
class Change:
    task: int
    level: int
    at: float
    kind: str


def card_level(text: str, content: Any, steps: int) -> tuple[int, int] | None:
    """(task id, level) of a task card from its fallback text and rendered content; None for other messages."""
    m = TITLE.match(text.strip())
    if m is None:
        return None
    status = m.group(2).strip()
    if status in OPEN:
        return int(m.group(1)), 0
    if status == "Running":
        done = set(DONE.findall(json.dumps(content, ensure_ascii=False)))
        return int(m.group(1)), 1 + len(done)
    return int(m.group(1)), steps + 2


def changes(events: Iterable[tuple[int, str, float]], steps: int) -> list[Change]:
    """The level changes in task timelines: (task id, event kind, epoch seconds), in time order."""
    done: dict[int, int] = defaultdict(int)
    out = []
    for task, kind, at in events:
        if kind == "task.created":
            level = 0
        elif kind == "plan.ready":
            level = 1
        elif kind == "step.succeeded":
            done[task] += 1
            level = 1 + done[task]
        elif kind in ("task.succeeded", "task.failed", "task.cancelled", "task.expired"):
            level = steps + 2
        else:
            continue
        out.append(Change(task, level, at, kind))
    return out


def staleness(found: Sequence[Change], seen: Iterable[Seen], end: float) -> tuple[list[float], int]:
    """Seconds each change waited to be shown (or until `end`, if it never was), and how many never were."""
    by_task: dict[int, list[Seen]] = defaultdict(list)
    for s in seen:
        by_task[s.task].append(s)
    best: dict[int, tuple[list[float], list[int]]] = {}
    for task, cards in by_task.items():
        cards.sort(key=lambda s: s.at)
        times, running = [], []
        top = -1
        for c in cards:  # the highest level shown so far, at each arrival
            top = max(top, c.level)
            times.append(c.at)
            running.append(top)
        best[task] = (times, running)
    waits, unseen = [], 0
    for ch in found:
        times, running = best.get(ch.task, ([], []))
        i = bisect.bisect_left(running, ch.level)  # running maxima are sorted
        if i < len(times):
            waits.append(max(0.0, times[i] - ch.at))
        else:
            unseen += 1
            waits.append(max(0.0, end - ch.at))
    return waits, unseen


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}  # type: ignore[dict-item]
    s = sorted(values)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 2)

    return {"n": len(s), "p50": q(0.5), "p95": q(0.95), "max": round(s[-1], 2)}


def summarize(found: Sequence[Change], seen: Iterable[Seen], end: float) -> dict[str, Any]:
    """Staleness of all changes, of the start (created, planned) and of progress after it."""
    seen = list(seen)
    waits, unseen = staleness(found, seen, end)
    start = [w for w, c in zip(waits, found, strict=True) if c.level <= 1]
    rest = [w for w, c in zip(waits, found, strict=True) if c.level > 1]
    return {"all": percentiles(waits), "start": percentiles(start), "progress": percentiles(rest),
            "never_shown": unseen, "over_15s": sum(1 for w in waits if w > 15.0)}  # fmt: skip


def counts(items: Iterable[str]) -> Mapping[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return dict(sorted(out.items()))
