"""Sending one claimed outbox row, and recording what the platform answered.

A row is rendered from the records as they are now (so a coalesced card shows
the latest state) and sent; the platform's message id is stored so later
updates edit the same card. A post that may have happened before (a lost
answer, a crash) is looked up (`find`) before it is sent again. Failures wait
and retry (honouring Retry-After); only a permanent refusal gives up. The
decisions are pure (bot/application/pacing.py); this is their shell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from adapters.chat import ChatAdapter, ConversationRef, DeliveryError, MessageRef
from bot.application import rendering
from bot.application.pacing import Hold, Outcome, after_failure, after_look, look_first
from tasks.store.outbox import Claimed, Outboxes
from tasks.store.store import NotFound, Store

log = logging.getLogger(__name__)
RECORD_WITHIN = 50.0  # seconds; less than the claim's hold, after which another loop may take the row
RECORD_RETRY = 0.5
NO_ADAPTER_WAIT = timedelta(seconds=30)


class GivenUp(Exception):
    """A platform call a stopping process gave up on."""


class Sender:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, ChatAdapter],
        *,
        base_url: str,
        clock: Callable[[], datetime],
        on_result: Callable[[str, Outcome], None],
        on_answer: Callable[[], None],
    ) -> None:
        self.store = store
        self.outboxes = Outboxes(store)
        self.adapters = adapters
        self.base_url = base_url
        self.clock = clock
        self.on_result = on_result
        self.on_answer = on_answer  # a step waits for the platform's answer to its post
        self.hold = Hold()
        # Rows this process put back without sending them: (row id -> attempts then). Claimed
        # again with the next attempt number (nobody else tried meanwhile), they need no lookup.
        self.unsent: dict[int, int] = {}
        self.calls: dict[int, asyncio.Task[MessageRef | None]] = {}  # platform calls under way, by row id
        self.cut_short: list[int] = []  # rows whose platform call was given up at a stop: maybe sent

    def give_up(self) -> None:
        """Cancel the platform calls under way (a stop that cannot wait longer)."""
        for call in self.calls.values():
            call.cancel()

    async def deliver(self, c: Claimed) -> datetime | None:
        """Send one row; when it must be tried again, the time of that retry."""
        row = c.row
        assert row.id is not None
        adapter = self.adapters.get(row.platform)
        if adapter is None:
            retry_at = self.clock() + NO_ADAPTER_WAIT
            return await self.put_back(c, f"no adapter for platform {row.platform!r} in this process", retry_at)
        if not self.hold.may_send(row.platform, self.clock()):
            until = self.hold.until[row.platform] + timedelta(milliseconds=1)
            return await self.put_back(c, f"{row.platform} is failing; waiting for a probe", until)
        try:
            message = await self._call(adapter, c)
        except GivenUp:
            return None
        except DeliveryError as e:
            return await self._failed(c, e.reason, retry_after=e.retry_after, permanent=e.permanent)
        except NotFound as e:
            return await self._failed(c, str(e), permanent=True)
        except Exception as e:
            log.exception("delivery of outbox row %s failed", row.id)
            return await self._failed(c, f"{type(e).__name__}: {e}")
        self.hold.answered(row.platform)
        self.unsent.pop(row.id, None)
        row_id, ref = row.id, message.to_json() if message else None
        await self._record(lambda: self.outboxes.sent(row_id, ref, self.clock()))
        self.on_result(row.platform, "sent")
        if row.idempotency_key and row.task_id is not None:
            self.on_answer()
        return None

    async def put_back(self, c: Claimed, reason: str, retry_at: datetime) -> datetime:
        """Back to pending, unsent: no failure, and no lookup when it is tried next."""
        row_id = c.row.id
        assert row_id is not None
        self.unsent[row_id] = c.row.attempts
        await self._record(lambda: self.outboxes.failed(row_id, reason, self.clock(), retry_at=retry_at))
        return retry_at

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
        then = after_failure(c.row.attempts, now, retry_after=retry_after, permanent=permanent)
        if then.platform_failing and then.retry_at is not None:
            self.hold.failed(c.row.platform, then.retry_at)
        if then.unsent:
            self.unsent[row_id] = c.row.attempts
        retry_at = then.retry_at
        log.log(logging.INFO if retry_at else logging.WARNING, "outbox row %s not delivered (%s); %s", c.row.id,
                reason, f"retry at {retry_at:%H:%M:%S}" if retry_at else "giving up")  # fmt: skip
        await self._record(lambda: self.outboxes.failed(row_id, reason, now, retry_at=retry_at))
        self.on_result(c.row.platform, then.outcome)
        if permanent and c.row.idempotency_key and c.row.task_id is not None:
            self.on_answer()
        return retry_at

    async def _call(self, adapter: ChatAdapter, c: Claimed) -> MessageRef | None:
        """The platform call, as a task of its own that a stop may give up on (`give_up`)."""
        row_id = c.row.id
        assert row_id is not None
        call = self.calls[row_id] = asyncio.create_task(self._send(adapter, c))
        try:
            return await call
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not call.cancelled() or (current is not None and current.cancelling()):
                raise  # the lane itself is cancelled
            self.cut_short.append(row_id)
            raise GivenUp() from None
        finally:
            self.calls.pop(row_id, None)

    async def _send(self, adapter: ChatAdapter, c: Claimed) -> MessageRef | None:
        row = c.row
        conv = ConversationRef.from_json(row.conversation or {})
        payload = row.payload or {}
        if row.kind == "notice":
            await adapter.notify(conv, str(payload.get("user", "")), str(payload.get("text", "")))
            return None
        card = await rendering.render(self.store, row.kind, payload, self.clock(), self.base_url)
        key = row.card_key or f"outbox:{row.id}"
        if c.message:
            return await adapter.update(conv, MessageRef.from_json(c.message), card)
        assert row.id is not None
        if look_first(row.attempts, self.unsent.pop(row.id, None) if row.attempts > 1 else None):
            found = await adapter.find(conv, key)
            then = after_look(found=found is not None, card=bool(row.card_key))
            if found is not None and then == "edit":
                return await adapter.update(conv, found, card)
            if then == "done":
                return found
        return await adapter.post(conv, card, key=key)
