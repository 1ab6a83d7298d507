"""PostgreSQL failing under a running bot: every backend of the bot's database
killed with pg_terminate_backend, several times, and then the server itself
stopped (immediate mode: a crash, recovered on start) and started again.

The database is a private throwaway cluster (`pgcluster`), so the restart
touches nobody else. The bot (one web process, worker processes) keeps
running through it: people's Slack events keep coming and are redelivered
until acknowledged; each task posts, calls a webhook and posts again. Back
to work means a worker's checkpoint (a plan or step event) written after the
database was available again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.slack_api import fake_slack
from tests.faults import outage
from tests.faults.crash import write_setup
from tests.faults.fleet import Fleet, base_env
from tests.faults.pgcluster import PrivateCluster, private_cluster, terminate_backends
from tests.faults.recorder import recorder
from tests.faults.scaleout import SECRET, TOKEN

EFFECT = re.compile(r"(first|last) \d+")


@dataclass(frozen=True)
class DbFaultPlan(outage.Pace):
    kills: int = 5  # rounds of pg_terminate_backend on every backend of the bot's database
    down: float = 10.0  # seconds PostgreSQL is stopped for the restart
    lease: float = 2.0  # COWORK_LEASE_SECONDS: how long a crashed turn's task waits to be taken over


def effect_of(text: str) -> str | None:
    return text.strip() if EFFECT.fullmatch(text.strip()) else None


def scratch_db(cluster: PrivateCluster) -> str:
    import psycopg

    from tasks.store.schema import upgrade

    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "cowork_fault"')
    url = cluster.admin_url.rsplit("/", 1)[0] + "/cowork_fault"
    upgrade(url)
    return url


async def run_db_faults(folder: Path, plan: DbFaultPlan) -> dict[str, Any]:
    with private_cluster() as cluster:
        url = scratch_db(cluster)
        async with recorder() as rec, fake_slack() as slack:
            rec.hang_seconds = 0.2  # tasks are in the middle of a step when the database goes
            env = base_env(DATABASE_URL=url, SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET,
                           SLACK_API_URL=slack.base_url, **write_setup(folder, rec.url))  # fmt: skip
            env["COWORK_LEASE_SECONDS"] = str(plan.lease)
            fleet = Fleet(folder, env)
            db = outage.Db(url)
            try:
                web = await outage.start_bot(fleet, plan.workers)
                async with aiohttp.ClientSession() as http:
                    feed = outage.Feed(outage.slack_sender(http, web, lambda i: f"run crashtest n={i}"), plan.rate)
                    t0 = time.monotonic()
                    faults, recovery, settled = await _scenario(cluster, url, feed, db, plan)
                died = fleet.dead()
                seen = outage.slack_delivered(slack, effect_of)
                out = outage.verdict(url, feed, db, seen, outage.slack_conversation, recovery, settled,
                                     webhook_hits=rec.hits)  # fmt: skip
                out["problems"] += [f"bot process {n} died" for n in died]
                hooks = {"webhook_calls": sum(rec.hits.values()), "webhook_called_twice": len(rec.twice())}
                return {**faults, **out, **hooks, "processes_died": died, "seconds": round(time.monotonic() - t0, 1)}
            finally:
                fleet.stop()
                db.close()


async def _scenario(cluster: PrivateCluster, url: str, feed: outage.Feed, db: outage.Db,
                    plan: DbFaultPlan) -> tuple[dict[str, Any], dict[str, float | None], bool]:  # fmt: skip
    """The faults while requests keep coming; then until everything settled."""
    timeline = outage.Timeline()
    await outage.begin(feed, db, plan.calm)
    killed = 0
    for n in range(plan.kills):
        killed += await asyncio.to_thread(terminate_backends, cluster.admin_url, url)
        await _back_to_work(db, timeline, f"backends killed #{n + 1}")
    await asyncio.to_thread(cluster.stop, "immediate")
    await asyncio.sleep(plan.down)  # the outage is a length of time
    await asyncio.to_thread(cluster.start)
    cluster.restarts += 1
    await _back_to_work(db, timeline, "restart")
    settled = await outage.finish(feed, db, plan)
    recovery = {k: await asyncio.to_thread(db.work_after, t) for k, t in timeline.ends.items()}
    faults = {"backends_killed": killed, "restarts": cluster.restarts, "down_seconds": plan.down,
              "lease_seconds": plan.lease}  # fmt: skip
    return faults, recovery, settled


async def _back_to_work(db: outage.Db, timeline: outage.Timeline, fault: str) -> None:
    """Until a worker checkpointed after the fault (or twice the allowed time)."""
    timeline.ended(fault)
    with contextlib.suppress(TimeoutError):
        await db.until(outage.WORK_AFTER, 2 * outage.RECOVERY_LIMIT, since=timeline.ends[fault])
