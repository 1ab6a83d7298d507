"""The delivery loop: sends outbox rows through the platform adapters.

Rows are claimed (so several processes never send one twice), rendered from the
records as they are now (so a coalesced card shows the latest state), and sent
one conversation at a time in order, conversations in parallel. The platform's
message id is stored so later updates edit the same card; a post that may have
happened before a crash is looked up (`find`) before it is sent again. Failures
wait and retry (honouring Retry-After); only a permanent refusal gives up.

Retries of a platform that failed (5xx, connection refused) back off to at most
`RETRY.cap` seconds, so a platform that comes back after an outage of any
length is used again within seconds. While a platform fails, one row at a time
probes it and the others wait without calling it (`Hold`), so an outage costs
neither the platform's rate limits nor a lookup (`find`) per row afterwards. A
new message that waits for its retry holds back the rows queued after it in
its conversation, which keeps their order; behind a card (a status display)
for `ORDER_PATIENCE` at most, so a card the platform keeps refusing never
holds people's messages.

Rate limits are per workspace or conversation, not per process, so with several
web processes on one database only one of them (the holder of the `delivery`
role, tasks/store/roles.py) delivers to the rate-limited platforms and paces them for
all; the others stand by and take over within `LEASE_SECONDS` if it dies (at
once if it stops cleanly). The console has no rate limits and its open pages
live in each process, so every process delivers its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from adapters.chat import Card, ChatAdapter, ConversationRef, DeliveryError, MessageRef
from bot.application import cards
from tasks.rules.retry import RetryPolicy, backoff
from tasks.store.outbox import Claimed, Outboxes
from tasks.store.roles import Roles
from tasks.store.store import NotFound, Store

log = logging.getLogger(__name__)
RETRY = RetryPolicy(max_attempts=10**9, base=1.0, cap=3.0)
RECORD_WITHIN = 50.0  # seconds; less than the claim's hold, after which another loop may take the row
RECORD_RETRY = 0.5
ORDER_PATIENCE = 30.0  # seconds a row waits behind a card the platform keeps refusing before it goes ahead
ROLE = "delivery"
LEASE_SECONDS = 15.0  # a standby takes over this long after the delivering process was last heard of
RENEW_EVERY = 3.0  # how often the holder renews its lease, and a standby asks for it
LOCAL_PLATFORMS = frozenset({"console"})  # delivered by every process: no rate limits, pages in-process


Lane = tuple[str, str]  # (platform, channel): one conversation's rows go in order


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds before a failed row is tried again: the backoff (at most
    `RETRY.cap`), or longer when the platform said how long to wait."""
    return max(backoff(attempts, RETRY, 0.5), retry_after or 0.0)


def look_first(attempts: int, put_back_at: int | None) -> bool:
    """Before posting a row tried before: the platform may have it already (the
    answer was lost, or the process died after posting), so look for it by its
    key first; unless this process put it back unsent at its last attempt
    (`put_back_at`: that attempt's number), when nobody else tried it meanwhile."""
    return attempts > 1 and put_back_at != attempts - 1


def after_look(*, found: bool, card: bool) -> Literal["edit", "done", "post"]:
    """What the lookup found decides: a card found is edited to the state it
    shows now; a message found was posted already; nothing found is posted."""
    if not found:
        return "post"
    return "edit" if card else "done"


@dataclass
class Hold:
    """Which platforms are failing, and until when only a probe may call them.
    Pure: time is passed in."""

    until: dict[str, datetime] = field(default_factory=dict)

    def may_send(self, platform: str, now: datetime) -> bool:
        """Whether a row may call the platform now; past the hold, the first row
        asking is the probe and the others wait another `RETRY.cap` for its answer."""
        until = self.until.get(platform)
        if until is None:
            return True
        if now < until:
            return False
        self.until[platform] = now + timedelta(seconds=RETRY.cap)
        return True

    def failed(self, platform: str, retry_at: datetime) -> None:
        self.until[platform] = retry_at

    def answered(self, platform: str) -> None:
        self.until.pop(platform, None)


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
    ):
        self.store = store
        self.outboxes = Outboxes(store)
        self.adapters = adapters
        self.base_url = base_url
        self.clock = clock
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.on_result = on_result or (lambda platform, outcome: None)
        # A step waits for the platform's answer to its post: wake this process's engine
        # (the database already says the step is due; other processes find it by polling).
        self.on_answer = on_answer or (lambda: None)
        self._wake = asyncio.Event()
        self.hold = Hold()
        self._lanes: dict[Lane, asyncio.Task[None]] = {}
        self._queued: dict[Lane, deque[tuple[int, Claimed]]] = {}  # (claim round, row)
        self._round = 0
        self._in_flight = 0  # rows claimed and not yet handled: the next claim takes only the rest
        # Rows this process put back without sending them: (row id -> attempts then). Claimed
        # again with the next attempt number (nobody else tried meanwhile), they need no lookup.
        self._unsent: dict[int, int] = {}
        self.roles = Roles(store.db)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leading = False  # holds the delivery role: delivers to the rate-limited platforms
        self._lease_asked: datetime | None = None
        self._lease_until: datetime | None = None

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
            await self._lanes_done()
            await self.resign()

    async def round(self) -> int:
        """One look at the outbox while serving: ask for the delivery role, then claim
        (and start delivering) what this process may send; the number of rows claimed."""
        await self.lead()
        return await self._dispatch(None if self.leading else self._local())

    async def lead(self) -> bool:
        """Take or renew the delivery role every `RENEW_EVERY` seconds: whether
        this process delivers to the rate-limited platforms. Through a database
        outage the holder keeps the role until its lease would have lapsed."""
        now = self.clock()
        if self._lease_asked is not None and now - self._lease_asked < timedelta(seconds=RENEW_EVERY):
            return self.leading
        self._lease_asked = now
        try:
            leading = await self.roles.hold(ROLE, self.holder, now, LEASE_SECONDS)
        except Exception as e:
            leading = self.leading and self._lease_until is not None and now < self._lease_until
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
        self.leading, self._lease_asked, self._lease_until = False, None, None
        with contextlib.suppress(Exception):
            await self.roles.release(ROLE, self.holder, self.clock())

    def _local(self) -> frozenset[str]:
        """The platforms every process delivers itself (no role needed)."""
        return LOCAL_PLATFORMS & frozenset(self.adapters)

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
        claimed = await self.outboxes.claim(self.clock(), room, platforms=platforms)
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
            while queue:
                claim_round, c = queue.popleft()
                try:
                    retry_at = await self._deliver(c)
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

    async def _hold_back(self, queue: deque[tuple[int, Claimed]], claim_round: int, first: Claimed,
                         retry_at: datetime) -> None:  # fmt: skip
        """Put back the rows queued behind `first` that were claimed with it, a
        millisecond apart after it: they are claimed by due time, so they come back in order.
        Behind a card (a status display, not a person's message) order is kept for
        `ORDER_PATIENCE` only: a row written longer ago stays in the lane and goes ahead."""
        now = self.clock()
        stay: list[tuple[int, Claimed]] = []
        k = 0
        while queue and queue[0][0] <= claim_round:
            item = queue.popleft()
            later = item[1]
            if first.row.card_key and (now - later.row.created_at).total_seconds() > ORDER_PATIENCE:
                stay.append(item)
                continue
            k += 1
            try:
                await self._put_back(later, f"waiting behind outbox row {first.row.id}",
                                     retry_at + timedelta(milliseconds=k))  # fmt: skip
            finally:
                self._in_flight -= 1
        queue.extendleft(reversed(stay))

    async def _put_back(self, c: Claimed, reason: str, retry_at: datetime) -> datetime:
        """Back to pending, unsent: no failure, and no lookup when it is tried next."""
        row_id = c.row.id
        assert row_id is not None
        self._unsent[row_id] = c.row.attempts
        await self._record(lambda: self.outboxes.failed(row_id, reason, self.clock(), retry_at=retry_at))
        return retry_at

    async def _deliver(self, c: Claimed) -> datetime | None:
        """Send one row; when it must be tried again, the time of that retry."""
        row = c.row
        assert row.id is not None
        adapter = self.adapters.get(row.platform)
        if adapter is None:
            retry_at = self.clock() + timedelta(seconds=30)
            return await self._put_back(c, f"no adapter for platform {row.platform!r} in this process", retry_at)
        if not self.hold.may_send(row.platform, self.clock()):
            until = self.hold.until[row.platform] + timedelta(milliseconds=1)
            return await self._put_back(c, f"{row.platform} is failing; waiting for a probe", until)
        try:
            message = await self._send(adapter, c)
        except DeliveryError as e:
            return await self._failed(c, e.reason, retry_after=e.retry_after, permanent=e.permanent)
        except NotFound as e:
            return await self._failed(c, str(e), permanent=True)
        except Exception as e:
            log.exception("delivery of outbox row %s failed", row.id)
            return await self._failed(c, f"{type(e).__name__}: {e}")
        self.hold.answered(row.platform)
        self._unsent.pop(row.id, None)
        row_id, ref = row.id, message.to_json() if message else None
        await self._record(lambda: self.outboxes.sent(row_id, ref, self.clock()))
        self.on_result(row.platform, "sent")
        if row.idempotency_key and row.task_id is not None:
            self.on_answer()
        return None

    async def _record(self, write: Callable[[], Awaitable[None]]) -> None:
        """Record what the platform answered, through a short database outage:
        a delivered row left `sending` would wait for its claim to lapse (a
        minute) before it is looked up and its card shown again."""
        deadline = time.monotonic() + RECORD_WITHIN
        while True:
            try:
                await write()
                return
            except Exception as e:
                if time.monotonic() > deadline:
                    raise
                log.warning("could not record a delivery (%s); trying again", e)
                await asyncio.sleep(RECORD_RETRY)

    async def _failed(self, c: Claimed, reason: str, *, retry_after: float | None = None,
                      permanent: bool = False) -> datetime | None:  # fmt: skip
        row_id = c.row.id
        assert row_id is not None
        now = self.clock()
        retry_at = None if permanent else now + timedelta(seconds=retry_delay(c.row.attempts, retry_after))
        if retry_at is not None and retry_after is None:
            self.hold.failed(c.row.platform, retry_at)  # the platform itself is failing (5xx, unreachable)
        if retry_after is not None:
            self._unsent[row_id] = c.row.attempts  # asked to wait: it did not take the message
        log.log(logging.INFO if retry_at else logging.WARNING, "outbox row %s not delivered (%s); %s", c.row.id,
                reason, f"retry at {retry_at:%H:%M:%S}" if retry_at else "giving up")  # fmt: skip
        await self._record(lambda: self.outboxes.failed(row_id, reason, now, retry_at=retry_at))
        self.on_result(c.row.platform, "dead" if permanent else ("throttled" if retry_after else "retry"))
        if permanent and c.row.idempotency_key and c.row.task_id is not None:
            self.on_answer()
        return retry_at

    async def _send(self, adapter: ChatAdapter, c: Claimed) -> MessageRef | None:
        row = c.row
        conv = ConversationRef.from_json(row.conversation or {})
        payload = row.payload or {}
        if row.kind == "notice":
            await adapter.notify(conv, str(payload.get("user", "")), str(payload.get("text", "")))
            return None
        card = await self.render(row.kind, payload)
        key = row.card_key or f"outbox:{row.id}"
        if c.message:
            return await adapter.update(conv, MessageRef.from_json(c.message), card)
        assert row.id is not None
        if look_first(row.attempts, self._unsent.pop(row.id, None) if row.attempts > 1 else None):
            found = await adapter.find(conv, key)
            then = after_look(found=found is not None, card=bool(row.card_key))
            if found is not None and then == "edit":
                return await adapter.update(conv, found, card)
            if then == "done":
                return found
        return await adapter.post(conv, card, key=key)

    async def render(self, kind: str, payload: dict[str, Any]) -> Card:
        now = self.clock()
        if kind == "task_card":
            view = await self.store.view(int(payload["task_id"]))
            return cards.task_card(view, now, self.base_url)
        if kind == "approval_card":
            approval = await self.store.get_approval(int(payload["approval_id"]))
            if approval is None:
                raise NotFound(f"no approval {payload['approval_id']}")
            task = await self.store.get_task(approval.task_id)
            if task is None:
                raise NotFound(f"no task {approval.task_id}")
            return cards.approval_card(approval, task, now, self.base_url)
        if kind == "summary":
            view = await self.store.view(int(payload["task_id"]))
            events = await self.store.events(view.task.id)
            return cards.summary_card(view, events, now, self.base_url)
        if "card" in payload:
            return Card.from_json(payload["card"])
        text = str(payload.get("text", ""))
        return Card(title="", text=text, body=(text,))
