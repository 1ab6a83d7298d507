"""A steady-rate HTTP load for the ack-latency benchmarks: sends requests on a
fixed schedule (not waiting for answers) and reports latency percentiles."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

Send = Callable[[aiohttp.ClientSession, Any, list[float], list[int]], Coroutine[Any, Any, None]]


async def steady_load(send: Send, bodies: Sequence[Any], warmup: Sequence[Any], rate: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
        for body in warmup:  # warm up connections and code paths
            await send(http, body, [], [])
        t0 = time.perf_counter()
        pending: list[asyncio.Task[None]] = []
        for i, body in enumerate(bodies):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(send(http, body, latencies, errors)))
        await asyncio.gather(*pending)
        took = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "achieved_rate": round(len(bodies) / took, 1),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(latencies), 2),
    }
