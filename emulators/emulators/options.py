"""Argument types shared by the emulators' ``--capillary-*`` and ``--adobe-*`` options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    msg = f"not a boolean: {value!r}"
    raise argparse.ArgumentTypeError(msg)


def parse_json_object(value: str) -> dict[str, Any]:
    """A JSON object given inline or as ``@path/to/file.json``."""
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        msg = f"not valid JSON: {exc}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not isinstance(parsed, dict):
        msg = "expected a JSON object"
        raise argparse.ArgumentTypeError(msg)
    return parsed
