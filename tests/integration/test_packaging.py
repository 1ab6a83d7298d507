"""What a clone and an installed (non-editable) Cowork need stands inside the repository:
the tests' schemas are in tests/schemas, no tracked file points outside, and a build of
the package ships what `cowork teams-package` reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT, SCHEMAS
from tests.faults.fleet import base_env

APP_ID = "6f1c2a53-0d7e-4c3b-9a61-2b8e5f0c4d17"


def _project_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def test_the_schemas_the_tests_read_are_in_the_repository() -> None:
    assert SCHEMAS == ROOT / "tests" / "schemas"
    readme = (SCHEMAS / "README.md").read_text()
    for schema in sorted(SCHEMAS.glob("*.json")):
        json.loads(schema.read_text())
        assert schema.name in readme
    assert {p.name for p in SCHEMAS.glob("*.json")} >= {
        "adaptive-card-1.5.json", "teams-manifest-1.17.json", "slack-app-manifest-1.0.0.json"}  # fmt: skip


def test_no_file_of_the_project_points_outside_it() -> None:
    outside = re.compile(r"\.\./shared|[/]work/|parents\[[2-9]\]")
    offenders = []
    for name in _project_files():
        if name.startswith("tests/schemas/") or name.endswith((".png", ".ico")):
            continue
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {m.group(0)}" for m in outside.finditer(text)]
    assert offenders == []


def _build(tmp_path: Path) -> Path:
    """What `pip install .` would copy (setuptools' build_py from pyproject.toml, in a copy of the project)."""
    src, lib = tmp_path / "src", tmp_path / "lib"
    for name in _project_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    build = [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(lib)]
    subprocess.run(build, cwd=src, capture_output=True, text=True, check=True, timeout=120)
    shutil.rmtree(src)
    return lib


def test_a_build_of_the_package_makes_the_teams_package(tmp_path: Path) -> None:
    """What `pip install .` would copy (setuptools' build_py from pyproject.toml, in a copy of the
    project), run alone: `cowork teams-package` must find its manifest and icons there."""
    lib = _build(tmp_path)
    env = base_env(PYTHONPATH=str(lib), MicrosoftAppId=APP_ID, COWORK_LOG_JSON="0")
    where = subprocess.run([sys.executable, "-c", "import bot.ops.teams_package as t; print(t.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(lib)
    out = tmp_path / "cowork-teams.zip"
    run = subprocess.run([sys.executable, "-m", "bot.ops.cli", "teams-package", "--output", str(out)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert json.loads(package.read("manifest.json"))["bots"][0]["botId"] == APP_ID


def test_the_benchmarks_are_not_shipped_and_cowork_bench_says_where_they_are(tmp_path: Path) -> None:
    lib = _build(tmp_path)
    assert (lib / "bot" / "ops" / "cli.py").is_file() and (lib / "tasks" / "engine" / "engine.py").is_file()
    assert not (lib / "benchmarks").exists()
    env = base_env(PYTHONPATH=str(lib), COWORK_LOG_JSON="0")
    run = subprocess.run([sys.executable, "-m", "bot.ops.cli", "bench", "--tasks", "1"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2
    assert "python -m benchmarks.engine" in run.stderr
