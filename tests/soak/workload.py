"""What the soak asks the bot to do: a playbook of chained `wait` steps (and
one `chat.post` halfway), so every task's card changes state every few tens of
seconds for the whole run. Pure: durations come from a seeded generator."""

from __future__ import annotations

import random
from dataclasses import dataclass

EFFECT_TEXT = "soak progress"


@dataclass(frozen=True)
class Workload:
    tasks: int = 50
    seconds: float = 600.0  # how long each platform is kept busy
    ramp: float = 60.0  # the mentions arrive spread over this long
    gap: tuple[float, float] = (30.0, 60.0)  # seconds between a task's state changes
    seed: int = 7

    @property
    def steps(self) -> int:
        """Wait steps per task: enough to keep the last-started task busy to the end."""
        mean = sum(self.gap) / 2
        return max(2, round((self.seconds - self.ramp) / mean))

    @property
    def step_keys(self) -> list[str]:
        return [f"s{i + 1:02d}" for i in range(self.steps)]


def playbook(w: Workload) -> str:
    """The soak playbook: s01 -> s02 -> ... with `say` (a post in the thread) after the middle one."""
    keys = w.step_keys
    middle = keys[len(keys) // 2 - 1]
    lines = ["name: soak", "description: chained waits, one post halfway; for the rate-limit soak", "params:"]
    lines += [f"  {k}: {{type: number}}" for k in keys]
    lines.append("steps:")
    previous = None
    for k in keys:
        after = f", depends_on: [{previous}]" if previous else ""
        lines.append(f'  - {{key: {k}, skill: wait, args: {{seconds: "{{{{ {k} }}}}"}}{after}}}')
        previous = k
    lines.append(f'  - {{key: say, skill: chat.post, args: {{text: "{EFFECT_TEXT}"}}, depends_on: [{middle}]}}')
    return "\n".join(lines) + "\n"


def command(w: Workload, rng: random.Random) -> str:
    """`run soak s01=.. s02=..`: one task's durations, drawn from the gap range."""
    waits = " ".join(f"{k}={rng.uniform(*w.gap):.1f}" for k in w.step_keys)
    return f"run soak {waits}"


def schedule(w: Workload) -> list[tuple[float, str]]:
    """(seconds after the start, command) for every task, in order."""
    rng = random.Random(w.seed)
    every = w.ramp / w.tasks if w.tasks else 0.0
    return [(i * every, command(w, rng)) for i in range(w.tasks)]
