"""Sliding-window rate limits, kept by the bot so it never sends past a
platform's published limits. Pure: the time is passed in.

Token buckets refilled at N/period would let up to 2N through in one period (a
full bucket plus its refill), so each rule ("at most N per P seconds") is a
window of send times instead: exact, at most N floats per key and rule.

A send is reserved before it goes out and stamped again when its answer is
back (`done`). The platform counts a request when it arrives, which is some
time after the reservation; counting it from the answer's time is always late
enough, so jitter on the network can never push two sends into one window.
"""

from __future__ import annotations

from collections import deque

Rules = tuple[tuple[int, float], ...]  # (at most this many sends, per this many seconds)
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

    def restamp(self, at: float, done: float) -> None:
        """The send reserved for `at` finished at `done`: count it from then."""
        for i in range(len(self.sends) - 1, -1, -1):
            if self.sends[i] == at:
                self.sends[i] = max(at, done)
                break
        if any(self.sends[i] > self.sends[i + 1] for i in range(len(self.sends) - 1)):
            self.sends = deque(sorted(self.sends))


class SlidingLimits:
    """One set of windows per key (a conversation, a channel, a workspace)."""

    def __init__(self, rules: Rules) -> None:
        self._rules = rules
        self._windows: dict[str, list[Window]] = {}

    def reserve(self, key: str, now: float, max_wait: float) -> float:
        """Seconds to wait before sending to `key`.

        A wait up to `max_wait` is reserved (recorded as a send at now + wait:
        the caller sleeps, sends, then calls `done`); a longer one is not, and
        the caller should try again later.
        """
        wait = self.wait(key, now)
        if wait <= max_wait:
            self.book(key, now + wait)
        return wait

    def wait(self, key: str, now: float) -> float:
        """Seconds until one more send to `key` fits every window; records nothing."""
        windows = self._windows.get(key)
        if windows is None:
            self._forget_idle(now)
            windows = self._windows[key] = [Window(n, per) for n, per in self._rules]
        for window in windows:
            window.forget_before(now)
        last = max((w.sends[-1] for w in windows if w.sends), default=now)
        return max(max(now, last), *(w.earliest(max(now, last)) for w in windows)) - now

    def book(self, key: str, at: float) -> None:
        """Record a send at `at` (a time `wait` allowed)."""
        for window in self._windows.setdefault(key, [Window(n, per) for n, per in self._rules]):
            window.sends.append(at)

    def done(self, key: str, at: float, now: float) -> None:
        """The send reserved at `at` has had its answer at `now`."""
        for window in self._windows.get(key, []):
            window.restamp(at, now)

    def _forget_idle(self, now: float) -> None:
        if len(self._windows) < MAX_TRACKED:
            return
        for key, windows in list(self._windows.items()):
            if all(w.idle(now) for w in windows):
                del self._windows[key]
