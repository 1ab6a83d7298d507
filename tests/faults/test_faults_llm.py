"""The LLM server hanging under a running bot (issue 7): requests accepted and
not answered (planning, then the llm.* skills), the client timing out and
retrying. Full size: `python -m tests.faults llm`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.llm_outage import LlmFaultPlan, run_llm_faults


@pytest.mark.slow
@pytest.mark.postgres
async def test_hung_llm_server_ends_every_task_visibly_and_planning_resumes(pg_url: str, tmp_path: Path) -> None:
    plan = LlmFaultPlan(outage=2.5, timeout=1.0, rate=2.0, calm=1.0, within=40, workers=1)
    out = await run_llm_faults(pg_url, tmp_path, plan)
    assert out["problems"] == []
    assert out["llm_requests_held"] > 0  # the server did hang on some
    assert out["lost"] == 0 and out["duplicate_messages"] == 0 and out["tasks"] == out["requests"]
    assert set(out["ended_by_state"]) <= {"succeeded", "failed"}
    assert all(s is not None and s <= 5.0 for s in out["recovery_seconds"].values())
