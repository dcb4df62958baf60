"""``target-adobe-aep`` and ``python -m target_adobe_aep``.

The target is imported when the command runs, not when this module is imported: conversion worker processes
import the command's module (multiprocessing re-imports ``__main__``), and must not load the SDK for nothing.
"""

from __future__ import annotations


def main() -> None:
    """The target; a configuration, credential or data error ends it with one line (``errors.py``)."""
    from target_adobe_aep.errors import FATAL_ERRORS, exit_with
    from target_adobe_aep.target import TargetAdobeAEP

    try:
        TargetAdobeAEP.cli()
    except FATAL_ERRORS as exc:
        exit_with(exc)


if __name__ == "__main__":
    main()
