"""The delivery loop: sends outbox rows through the platform adapters.

Rows are claimed (so several processes never send one twice) and sent one
conversation at a time in order (a lane each), conversations in parallel. How
one row is sent and recorded: bot/application/sending.py; when rows wait, retry
and look before posting: bot/application/pacing.py; which process delivers to
the rate-limited platforms: bot/application/leadership.py. At a stop the sends
under way get `STOP_GRACE` seconds, and the rest go back to the outbox
(`hand_back`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from adapters.chat import ChatAdapter
from bot.application.leadership import Leadership, local_platforms
from bot.application.pacing import Lane, waits_behind
from bot.application.sending import Sender
from tasks.rules.coalescing import FIRST_POST_WAIT
from tasks.store.outbox import Claimed
from tasks.store.roles import Roles
from tasks.store.store import Store

log = logging.getLogger(__name__)
STOP_GRACE = 5.0  # seconds a stopping process gives the sends under way; the rest go back to the outbox

Queued = deque[tuple[int, Claimed]]  # (claim round, row)


class Delivery:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, ChatAdapter],
        *,
        base_url: str = "",
        clock: Callable[[], datetime],
        batch: int = 50,
        idle_seconds: float = 0.25,
        on_result: Callable[[str, str], None] | None = None,
        holder: str | None = None,
        on_answer: Callable[[], None] | None = None,
        first_card_wait: float = FIRST_POST_WAIT,
        stop_grace: float = STOP_GRACE,
    ):
        self.store = store
        self.adapters = adapters
        self.clock = clock
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.stop_grace = stop_grace  # how long a stop waits for the sends under way
        self.first_card_wait = first_card_wait  # a new task card's first post waits for the plan
        self.on_result = on_result or (lambda platform, outcome: None)
        # A step waits for the platform's answer to its post: wake this process's engine
        # (the database already says the step is due; other processes find it by polling).
        self.on_answer = on_answer or (lambda: None)
        self.sender = Sender(store, adapters, base_url=base_url, clock=clock,
                             on_result=lambda platform, outcome: self.on_result(platform, outcome),
                             on_answer=lambda: self.on_answer())  # fmt: skip
        self.outboxes = self.sender.outboxes
        self.hold = self.sender.hold
        holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.roles = Roles(store.db)
        self.leadership = Leadership(self.roles, holder, clock)
        self._wake = asyncio.Event()
        self._lanes: dict[Lane, asyncio.Task[None]] = {}
        self._queued: dict[Lane, Queued] = {}
        self._round = 0
        self._in_flight = 0  # rows claimed and not yet handled: the next claim takes only the rest
        self._stopping = False

    @property
    def holder(self) -> str:
        return self.leadership.holder

    @property
    def leading(self) -> bool:
        """Holds the delivery role: delivers to the rate-limited platforms."""
        return self.leadership.leading

    async def lead(self) -> bool:
        """Take or renew the delivery role (bot/application/leadership.py)."""
        return await self.leadership.lead()

    async def resign(self) -> None:
        """Hand the role on at a clean stop, so a standby takes over at once."""
        await self.leadership.resign()

    def wake(self) -> None:
        self._wake.set()

    async def serve(self, stop: asyncio.Event) -> None:
        """Claim rows and hand each to its conversation's lane until `stop`. Lanes
        run on their own: one that waits (a rate limit, a slow platform) holds up
        no other conversation."""
        try:
            while not stop.is_set():
                try:
                    claimed = await self.round()
                except Exception as e:
                    log.warning("delivery round failed: %s", e)
                    claimed = 0
                if claimed:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_seconds)
        finally:
            await self.hand_back()
            await self.resign()

    async def hand_back(self) -> int:
        """Stop delivering: the sends under way get `stop_grace` seconds to finish; the
        rows claimed and not sent go back to the outbox, due at once for the next
        holder (a send given up on counts as an attempt, so it is looked up before it
        is posted again). Nothing is lost, and a row is never sent twice by skipping
        the lookup. The number of rows handed back."""
        self._stopping = True
        self.wake()
        lanes = list(self._lanes.values())
        if lanes:
            _, late = await asyncio.wait(lanes, timeout=self.stop_grace)
            if late:
                self.sender.give_up()
                await asyncio.wait(late)
        unsent = [c.row.id for queue in self._queued.values() for _, c in queue if c.row.id is not None]
        maybe, self.sender.cut_short = self.sender.cut_short, []
        self._queued.clear()
        if not unsent and not maybe:
            return 0
        n = await self.outboxes.hand_back(unsent, maybe, self.clock())
        log.info("stopping: %d outbox rows handed back (%d were being sent)", n, len(maybe))
        return n

    async def round(self) -> int:
        """One look at the outbox while serving: ask for the delivery role, then claim
        (and start delivering) what this process may send; the number of rows claimed."""
        await self.lead()
        return await self._dispatch(None if self.leading else local_platforms(self.adapters))

    async def run_once(self) -> int:
        """Claim what is due and deliver it, all of it before returning (burst
        mode, tests); the number of rows handled."""
        claimed = await self._dispatch()
        await self._lanes_done()
        return claimed

    async def drain(self, rounds: int = 100) -> int:
        total = 0
        for _ in range(rounds):
            n = await self.run_once()
            if not n:
                break
            total += n
        return total

    async def _dispatch(self, platforms: frozenset[str] | None = None) -> int:
        """Claim due rows (of `platforms` only, when given), as many as there is room
        for, and queue each on its conversation's lane (starting the lane if it is idle)."""
        room = self.batch - self._in_flight
        if room <= 0 or platforms == frozenset():
            return 0
        claimed = await self.outboxes.claim(self.clock(), room, platforms=platforms,
                                            first_wait=self.first_card_wait)  # fmt: skip
        self._round += 1
        for c in claimed:
            conv = c.row.conversation or {}
            lane = (c.row.platform, str(conv.get("channel", "")))
            self._queued.setdefault(lane, deque()).append((self._round, c))
            self._in_flight += 1
            if lane not in self._lanes:
                self._lanes[lane] = asyncio.create_task(self._lane(lane))
        return len(claimed)

    async def _lanes_done(self) -> None:
        while self._lanes:
            await asyncio.gather(*list(self._lanes.values()), return_exceptions=True)

    async def _lane(self, lane: Lane) -> None:
        """One conversation's rows in order; once a new message must wait for a
        retry, the rows claimed with it or before it wait too (never posted ahead
        of it), without counting a failure. A card edit that must wait holds
        nothing back: the card keeps its place."""
        queue = self._queued[lane]
        try:
            while queue and not self._stopping:
                claim_round, c = queue.popleft()
                try:
                    retry_at = await self.sender.deliver(c)
                except Exception as e:  # the lane goes on; the row's claim lapses and it is tried again
                    log.warning("delivery of outbox row %s failed: %s", c.row.id, e)
                    continue
                finally:
                    self._in_flight -= 1
                if retry_at is not None and c.message is None:
                    await self._hold_back(queue, claim_round, c, retry_at)
        finally:
            self._lanes.pop(lane, None)
            if not queue:
                self._queued.pop(lane, None)

    async def _hold_back(self, queue: Queued, claim_round: int, first: Claimed, retry_at: datetime) -> None:
        """Put back the rows queued behind `first` that were claimed with it, a
        millisecond apart after it: they are claimed by due time, so they come back
        in order. Those that need not wait (`waits_behind`) stay in the lane and go ahead."""
        now = self.clock()
        stay: list[tuple[int, Claimed]] = []
        k = 0
        while queue and queue[0][0] <= claim_round:
            item = queue.popleft()
            later = item[1]
            if not waits_behind(behind_card=bool(first.row.card_key), written=later.row.created_at, now=now):
                stay.append(item)
                continue
            k += 1
            try:
                await self.sender.put_back(later, f"waiting behind outbox row {first.row.id}",
                                           retry_at + timedelta(milliseconds=k))  # fmt: skip
            finally:
                self._in_flight -= 1
        queue.extendleft(reversed(stay))
