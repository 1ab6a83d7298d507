"""A monotonic clock for the adapters' rate-limit pacing, moved instead of slept."""

from __future__ import annotations


class MovedTime:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
