"""Fault injection for the crash tests, and nothing else.

`COWORK_FAULT=crash_after_effect:0.2` makes a worker kill itself with SIGKILL,
with that probability, at the named point (after a step's effect, before its
checkpoint). Several points may be given, comma-separated. Unset — as it is in
every real deployment — `crash_point` does nothing.
"""

from __future__ import annotations

import os
import random
import signal


def parse(spec: str) -> dict[str, float]:
    """Pure: "crash_after_effect:0.2,crash_x:1" -> {"after_effect": 0.2, "x": 1.0}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, p = part.partition(":")
        if name.startswith("crash_"):
            out[name.removeprefix("crash_")] = float(p or 1)
    return out


_PLAN = parse(os.environ.get("COWORK_FAULT", ""))


def crash_point(name: str) -> None:
    p = _PLAN.get(name)
    if p and random.random() < p:
        os.kill(os.getpid(), signal.SIGKILL)
