"""A step's arguments against its skill's schema: the checks a step gets before
it runs, however often the same arguments come again."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.skills.arguments import args_error
from tasks.skills.core import Wait


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"seconds": 5}, None),
        ({"seconds": True}, "seconds: True is not of type 'number'"),
        ({"seconds": 5}, None),
        ({"seconds": 1e20}, "seconds: 1e+20 is greater than the maximum of 7776000"),
        ({"seconds": 5.0}, None),
        ({"hours": 1}, "args: Additional properties are not allowed ('hours' was unexpected)"),
    ],
)
def test_arguments_are_checked_each_time_they_come(args: dict[str, Any], error: str | None) -> None:
    assert args_error(Wait(), args) == error
    assert args_error(Wait(), args) == error  # the second time is recognised, with the same answer


def test_valid_arguments_seen_before_do_not_vouch_for_lookalikes() -> None:
    skill = Wait()
    assert args_error(skill, {"until": ["2026-01-01"]}) is not None
    assert args_error(skill, {"seconds": 1}) is None
    assert args_error(skill, {"seconds": True}) is not None  # True == 1, but not a number here
    assert args_error(skill, {"seconds": 0}, later=frozenset({"seconds"})) is None


def test_arguments_filled_in_later_count_as_present() -> None:
    from tasks.skills.base import Skill

    class Needs(Skill):
        name = "test.needs"
        args_schema = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}

    assert args_error(Needs(), {}) == "args: 'text' is a required property"
    assert args_error(Needs(), {}, later=frozenset({"text"})) is None
    assert args_error(Needs(), {}) == "args: 'text' is a required property"
