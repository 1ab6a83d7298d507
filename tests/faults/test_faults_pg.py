"""PostgreSQL faults under a running bot (issue 7): backends of the bot's
database killed with pg_terminate_backend, then a private PostgreSQL cluster
stopped (immediate) and started again. The full size is
`python -m tests.faults pg`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.db_outage import DbFaultPlan, run_db_faults
from tests.faults.pgcluster import BIN, private_cluster, terminate_backends

pytestmark = pytest.mark.skipif(not (BIN / "initdb").exists() or os.geteuid() != 0,
                                reason="needs PostgreSQL 15 binaries and root (runuser -u postgres)")  # fmt: skip


def test_terminating_backends_touches_only_the_named_database() -> None:
    import psycopg

    with private_cluster() as cluster:
        with psycopg.connect(cluster.admin_url, autocommit=True) as admin:
            admin.execute('CREATE DATABASE "a"')
            admin.execute('CREATE DATABASE "b"')
        base = cluster.admin_url.rsplit("/", 1)[0]
        with psycopg.connect(f"{base}/a") as a, psycopg.connect(f"{base}/b") as b:
            assert terminate_backends(cluster.admin_url, f"{base}/a") == 1
            assert b.execute("SELECT 1").fetchone() == (1,)
            with pytest.raises(psycopg.OperationalError):
                a.execute("SELECT 1")


@pytest.mark.slow
@pytest.mark.postgres
async def test_bot_keeps_running_through_killed_backends_and_a_postgres_restart(tmp_path: Path) -> None:
    out = await run_db_faults(tmp_path, DbFaultPlan(kills=2, down=2.0, rate=2.0, calm=1.0, within=40))
    assert out["problems"] == []
    assert out["backends_killed"] >= 4 and out["restarts"] == 1  # web + 2 workers + harness, twice
    assert out["processes_died"] == []
    assert out["redeliveries"] > 0  # events sent while PostgreSQL was down were refused, then taken
    assert out["lost"] == 0 and out["duplicate_effects"] == 0 and out["duplicate_messages"] == 0
    assert out["tasks"] == out["requests"] and set(out["ended_by_state"]) <= {"succeeded", "failed"}
    # A webhook called just before its checkpoint was lost cannot be told apart from one never
    # called: such a step fails for a person to check (see the xfail in test_faults_engine.py).
    assert all(r.startswith("step hook failed: outcome unknown") for r in out["failed_reasons"])
    assert out["webhook_calls"] == out["tasks"] and out["webhook_called_twice"] == 0
    assert all(s is not None and s <= 5.0 for s in out["recovery_seconds"].values())
