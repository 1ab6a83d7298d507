"""`whole`: a schema-checked integer argument read as `int(value or default)` did before."""

from __future__ import annotations

import pytest

from tasks.rules.json_types import whole


def test_whole_reads_numbers_and_falls_back_to_the_default() -> None:
    assert whole(7, 50) == 7
    assert whole(3.0, 50) == 3
    assert whole("12", 50) == 12
    assert whole(None, 50) == 50
    assert whole(0, 50) == 50


def test_whole_refuses_lists_and_objects_as_int_does() -> None:
    with pytest.raises(TypeError):
        whole([1], 50)
    with pytest.raises(TypeError):
        whole({"a": 1}, 50)
