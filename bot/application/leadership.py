"""The delivery role: which web process delivers to the rate-limited platforms.

Rate limits are per workspace or conversation, not per process, so with several
web processes on one database only one of them (the holder of the `delivery`
role, tasks/store/roles.py) delivers to the rate-limited platforms and paces them for
all; the others stand by and take over within `LEASE_SECONDS` if it dies (at
once if it stops cleanly). The console has no rate limits and its open pages
live in each process, so every process delivers its rows (`LOCAL_PLATFORMS`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from tasks.store.roles import Roles

log = logging.getLogger(__name__)
ROLE = "delivery"
LEASE_SECONDS = 15.0  # a standby takes over this long after the delivering process was last heard of
RENEW_EVERY = 3.0  # how often the holder renews its lease, and a standby asks for it
LOCAL_PLATFORMS = frozenset({"console"})  # delivered by every process: no rate limits, pages in-process


def local_platforms(served: Collection[str]) -> frozenset[str]:
    """Of the platforms this process serves, those it delivers without the role."""
    return LOCAL_PLATFORMS & frozenset(served)


def held_through_outage(*, leading: bool, lease_until: datetime | None, now: datetime) -> bool:
    """When the database cannot be asked: the holder keeps the role until its lease
    would have lapsed (nobody else can have it before then); a standby stays one."""
    return leading and lease_until is not None and now < lease_until


class Leadership:
    """This process's claim on the delivery role, asked for at most every `RENEW_EVERY` seconds."""

    def __init__(self, roles: Roles, holder: str, clock: Callable[[], datetime]) -> None:
        self.roles = roles
        self.holder = holder
        self.clock = clock
        self.leading = False  # holds the delivery role: delivers to the rate-limited platforms
        self._asked: datetime | None = None
        self._lease_until: datetime | None = None

    async def lead(self) -> bool:
        """Take or renew the role when it is time to ask: whether this process leads."""
        now = self.clock()
        if self._asked is not None and now - self._asked < timedelta(seconds=RENEW_EVERY):
            return self.leading
        self._asked = now
        try:
            leading = await self.roles.hold(ROLE, self.holder, now, LEASE_SECONDS)
        except Exception as e:
            leading = held_through_outage(leading=self.leading, lease_until=self._lease_until, now=now)
            log.warning("could not renew the delivery role (%s); %s", e, "still held" if leading else "standing by")
        else:
            if leading:
                self._lease_until = now + timedelta(seconds=LEASE_SECONDS)
        if leading != self.leading:
            log.info("%s delivers to %s", self.holder,
                     "every platform" if leading else "the console only; another process has the rest")  # fmt: skip
        self.leading = leading
        return leading

    async def resign(self) -> None:
        """Hand the role on at a clean stop, so a standby takes over at once."""
        if not self.leading:
            return
        self.leading, self._asked, self._lease_until = False, None, None
        with contextlib.suppress(Exception):
            await self.roles.release(ROLE, self.holder, self.clock())
