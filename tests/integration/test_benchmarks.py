"""The benchmarks are commands (issue 11): each runs with `python -m benchmarks.NAME` from a
clone and prints JSON; the engine one is what `cowork bench` runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["engine", "slack", "teams", "retention"])
def test_each_benchmark_is_a_command(name: str) -> None:
    run = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage:")


def test_the_engine_benchmark_prints_its_figures_as_json() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.engine", "--tasks", "20"], cwd=ROOT, capture_output=True,
                         text=True, timeout=110)  # fmt: skip
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    assert figures["sqlite_one_process"]["tasks"] == 20 <= figures["sqlite_one_process"]["succeeded"]
    assert figures["sqlite_step_overhead"]["steps"] > 0
