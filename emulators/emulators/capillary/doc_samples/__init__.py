"""Capillary's published sample responses, verbatim (sources in README.md next to them)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

_FILES = resources.files(__name__)


@cache
def sample_bytes(name: str) -> bytes:
    """A sample exactly as published (``.json`` files parse as JSON, ``.txt`` files do not)."""
    return (_FILES / name).read_bytes()


def sample(name: str) -> Any:
    """A ``.json`` sample, parsed."""
    return json.loads(sample_bytes(name))


def table_keys(name: str) -> dict[str, list[str] | None]:
    """Key paths (``a.b[].c``) a ``*.keys.json`` file transcribes from an endpoint's response tables, each with the
    JSON Schema types the tables publish for it (``None`` where they publish none; the file's ``_about`` says why)."""
    return json.loads(sample_bytes(name))["keys"]


def sample_names() -> list[str]:
    """Every sample (not the ``*.keys.json`` key lists transcribed from response tables)."""
    names = (f.name for f in _FILES.iterdir())
    return sorted(n for n in names if n.endswith((".json", ".txt")) and not n.endswith(".keys.json"))


def table_names() -> list[str]:
    """Every ``*.keys.json`` file (response tables transcribed where the samples fall short)."""
    return sorted(f.name for f in _FILES.iterdir() if f.name.endswith(".keys.json"))
