"""The delivery loop: sends outbox rows through the platform adapters.

Rows are claimed (so several processes never send one twice), rendered from the
records as they are now (so a coalesced card shows the latest state), and sent
one conversation at a time in order, conversations in parallel. The platform's
message id is stored so later updates edit the same card; a post that may have
happened before a crash is looked up (`find`) before it is sent again. Failures
wait and retry (honouring Retry-After); only a permanent refusal gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from adapters.chat import Card, ChatAdapter, ConversationRef, DeliveryError, MessageRef
from bot import cards
from tasks.outbox import Claimed, Outboxes
from tasks.retry import RetryPolicy, backoff
from tasks.store import NotFound, Store

log = logging.getLogger(__name__)
RETRY = RetryPolicy(max_attempts=10**9, base=1.0, cap=300.0)


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
    ):
        self.store = store
        self.outboxes = Outboxes(store)
        self.adapters = adapters
        self.base_url = base_url
        self.clock = clock
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.on_result = on_result or (lambda platform, outcome: None)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def serve(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.run_once()
            except Exception as e:
                log.warning("delivery round failed: %s", e)
                sent = 0
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_seconds)

    async def run_once(self) -> int:
        """Claim what is due and deliver it; the number of rows handled."""
        claimed = await self.outboxes.claim(self.clock(), self.batch)
        if not claimed:
            return 0
        lanes: dict[tuple[str, str], list[Claimed]] = defaultdict(list)
        for c in claimed:
            conv = c.row.conversation or {}
            lanes[(c.row.platform, str(conv.get("channel", "")))].append(c)
        await asyncio.gather(*(self._lane(rows) for rows in lanes.values()))
        return len(claimed)

    async def drain(self, rounds: int = 100) -> int:
        total = 0
        for _ in range(rounds):
            n = await self.run_once()
            if not n:
                break
            total += n
        return total

    async def _lane(self, rows: list[Claimed]) -> None:
        for c in rows:
            await self._deliver(c)

    async def _deliver(self, c: Claimed) -> None:
        row = c.row
        assert row.id is not None
        adapter = self.adapters.get(row.platform)
        if adapter is None:
            await self.outboxes.failed(row.id, f"no adapter for platform {row.platform!r} in this process",
                                       self.clock(), retry_at=self.clock() + timedelta(seconds=30))  # fmt: skip
            return
        try:
            message = await self._send(adapter, c)
        except DeliveryError as e:
            await self._failed(c, e.reason, retry_after=e.retry_after, permanent=e.permanent)
            return
        except NotFound as e:
            await self._failed(c, str(e), permanent=True)
            return
        except Exception as e:
            log.exception("delivery of outbox row %s failed", row.id)
            await self._failed(c, f"{type(e).__name__}: {e}")
            return
        await self.outboxes.sent(row.id, message.to_json() if message else None, self.clock())
        self.on_result(row.platform, "sent")

    async def _failed(self, c: Claimed, reason: str, *, retry_after: float | None = None,
                      permanent: bool = False) -> None:  # fmt: skip
        assert c.row.id is not None
        now = self.clock()
        retry_at = None
        if not permanent:
            delay = backoff(c.row.attempts, RETRY, 0.5)
            retry_at = now + timedelta(seconds=max(delay, retry_after or 0.0))
        log.info("outbox row %s not delivered (%s); %s", c.row.id, reason,
                 f"retry at {retry_at:%H:%M:%S}" if retry_at else "giving up")  # fmt: skip
        await self.outboxes.failed(c.row.id, reason, now, retry_at=retry_at)
        self.on_result(c.row.platform, "dead" if permanent else ("throttled" if retry_after else "retry"))

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
        if row.attempts > 1:
            found = await adapter.find(conv, key)
            if found is not None:
                return await adapter.update(conv, found, card) if row.card_key else found
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
