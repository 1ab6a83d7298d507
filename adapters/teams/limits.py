"""Per-conversation rate limits for posting to Teams.

Teams throttles a bot per conversation: at most 7 messages per second, 60 per
30 seconds and 1,800 per hour. Token buckets refilled at N/period would let
up to 2N through in one period (a full bucket plus its refill), so each rule
is kept as a sliding window of send times instead: exact, and at most 1,800
floats per busy conversation. `ConversationLimits.reserve` is a pure decision
on a clock value passed in: how long to wait before the next send.
"""

from __future__ import annotations

from collections import deque

TEAMS_RULES: tuple[tuple[int, float], ...] = ((7, 1.0), (60, 30.0), (1800, 3600.0))
MAX_TRACKED = 10_000


class Window:
    """At most `limit` sends in any `period` seconds. Send times are kept in
    order (later requests queue behind earlier reservations)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self.sends: deque[float] = deque()

    def earliest(self, at: float) -> float:
        """The first time >= `at` when one more send fits."""
        if len(self.sends) < self.limit:
            return at
        return max(at, self.sends[-self.limit] + self.period)

    def forget_before(self, now: float) -> None:
        while self.sends and self.sends[0] <= now - self.period:
            self.sends.popleft()

    def idle(self, now: float) -> bool:
        return not self.sends or self.sends[-1] <= now - self.period


class ConversationLimits:
    """One set of windows per conversation id."""

    def __init__(self, rules: tuple[tuple[int, float], ...] = TEAMS_RULES) -> None:
        self._rules = rules
        self._windows: dict[str, list[Window]] = {}

    def reserve(self, key: str, now: float, max_wait: float) -> float:
        """Seconds to wait before sending to `key`.

        A wait up to `max_wait` is reserved (recorded as a send at now + wait:
        the caller sleeps, then sends); a longer one is not, and the caller
        should try again later.
        """
        windows = self._windows.get(key)
        if windows is None:
            self._forget_idle(now)
            windows = self._windows[key] = [Window(n, per) for n, per in self._rules]
        for window in windows:
            window.forget_before(now)
        last = max((w.sends[-1] for w in windows if w.sends), default=now)
        at = max(max(now, last), *(w.earliest(max(now, last)) for w in windows))
        wait = at - now
        if wait <= max_wait:
            for window in windows:
                window.sends.append(at)
        return wait

    def _forget_idle(self, now: float) -> None:
        if len(self._windows) < MAX_TRACKED:
            return
        for key, windows in list(self._windows.items()):
            if all(w.idle(now) for w in windows):
                del self._windows[key]
