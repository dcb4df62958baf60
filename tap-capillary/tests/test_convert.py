"""The one boolean parser: the spellings the target's boolean transform takes, whatever their case."""

from __future__ import annotations

import pytest

from tap_capillary.convert import boolean


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (None, None), ("", None)]
    + [(v, True) for v in ("true", "TRUE", "True", "1", "yes", "Yes", " yes ")]
    + [(v, False) for v in ("false", "FALSE", "0", "no", "NO")],
)
def test_booleans_in_every_spelling_of_both_plugins(value: object, expected: bool | None) -> None:
    assert boolean(value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "on", "t", "y", "n"])
def test_anything_else_is_not_a_boolean(value: str) -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        boolean(value)
