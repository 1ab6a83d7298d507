"""Scale-out: web processes and worker processes on one PostgreSQL database run
every task exactly once end to end. The full load is `python -m tests.faults
scaleout` (figures in docs/deployment.md); the delivery loop's share of it
(messages move while cards wait for the rate limit) is in test_faults_delivery.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scaleout import LoadPlan, run_load


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_web_and_three_worker_processes_run_every_slack_task_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    out = await run_load(pg_url, tmp_path, LoadPlan(tasks=60, concurrency=8, within=60))
    assert out["problems"] == []
    assert out["ack_statuses"] == {200: 66}  # 60 events and 6 redeliveries, all acknowledged
    assert out["tasks_in_db"] == 60 and out["states"] == {"succeeded": 60}
    assert out["effect_posts"] == 60 and out["tasks_posted_twice"] == 0
    assert out["steps_with_repeated_intent"] == 0
    assert out["ack_p99_ms"] < 3000  # Slack's deadline
