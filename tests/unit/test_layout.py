"""The house by its rooms (issue 11): `tasks/` and `bot/` are a few packages with one job
each, the adapter packages name the same job alike, benchmarks are not shipped, and the tests
are grouped by kind with their shared fakes in tests/fakes."""

from __future__ import annotations

import ast
import fnmatch
import tomllib

from tests.conftest import ROOT

TASKS_ROOMS = {"rules", "store", "planning", "skills", "engine"}
BOT_ROOMS = {"application", "assembly", "wiring", "web", "ops"}
TEST_KINDS = {"unit", "integration", "e2e", "faults", "soak"}


def _entries(folder: str) -> set[str]:
    return {p.name for p in (ROOT / folder).iterdir() if p.name != "__pycache__"}


def test_tasks_and_bot_are_a_few_rooms_each_with_its_own_docstring() -> None:
    assert _entries("tasks") == {"__init__.py", *TASKS_ROOMS}
    assert _entries("bot") == {"__init__.py", *BOT_ROOMS}
    for room in [f"tasks/{r}" for r in TASKS_ROOMS] + [f"bot/{r}" for r in BOT_ROOMS]:
        init = ROOT / room / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{room} says what it owns"


def test_every_room_stays_about_a_dozen_modules() -> None:
    for room in [f"tasks/{r}" for r in TASKS_ROOMS] + [f"bot/{r}" for r in BOT_ROOMS]:
        modules = [p for p in (ROOT / room).glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 16, room


def test_adapter_packages_name_the_same_job_alike() -> None:
    for platform in ("slack", "teams", "console"):
        names = _entries(f"adapters/{platform}")
        assert {"inbound.py", "render.py", "client.py", "endpoint.py"} <= names, platform
        assert not names & {"blocks.py", "cards.py", "adapter.py", "ratelimit.py", "pacing.py"}, platform
    for platform in ("slack", "teams"):
        assert "limits.py" in _entries(f"adapters/{platform}")


def test_benchmarks_are_a_top_level_folder_the_package_does_not_ship() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(fnmatch.fnmatch("benchmarks", pattern) for pattern in shipped)
    assert any(fnmatch.fnmatch("bot.ops", pattern) for pattern in shipped)
    assert not list((ROOT / "bot").rglob("bench*.py")) and not list((ROOT / "bot").rglob("loadgen.py"))
    for name in ("engine", "slack", "teams", "retention"):
        source = (ROOT / "benchmarks" / f"{name}.py").read_text()
        assert 'if __name__ == "__main__":' in source, f"python -m benchmarks.{name} runs it"


def test_tests_are_grouped_by_kind() -> None:
    top = _entries("tests")
    assert not [name for name in top if name.startswith("test_")]
    assert top <= {"__init__.py", "conftest.py", "fakes", "schemas", "golden", *TEST_KINDS}
    for kind in TEST_KINDS:
        assert list((ROOT / "tests" / kind).glob("test_*.py")), kind


def test_no_test_module_imports_another() -> None:
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.startswith("tests.") and n.split(".")[-1].startswith("test_")
            ]
    assert offenders == []


def test_the_composition_root_is_typed() -> None:
    """No service dictionary keyed by strings, no imports by string: a skill is built with the
    typed collaborators it declares (`ChatHistory(reader)`, `ChatPost(targets)`, `ScheduleCreate(schedules)`)."""
    from dataclasses import fields
    from inspect import signature

    from tasks.skills.base import StepContext
    from tasks.skills.chat import ChatHistory, ChatReader
    from tasks.skills.core import ChatPost, TargetCheck
    from tasks.skills.schedule import ScheduleBook, ScheduleCreate

    assert "services" not in {f.name for f in fields(StepContext)}
    for skill, needs in ((ChatHistory, ChatReader), (ChatPost, TargetCheck), (ScheduleCreate, ScheduleBook)):
        assert needs.__name__ in str(signature(skill).parameters)
    offenders = []
    for package in ("bot", "tasks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            if "import_module(" in text or 'services["' in text or "services.get(" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
