"""``target-adobe-aep`` and ``python -m target_adobe_aep``.

The target is imported when the command runs, not when this module is imported: conversion worker processes
import the command's module (multiprocessing re-imports ``__main__``), and must not load the SDK for nothing.
"""

from __future__ import annotations


def main() -> None:
    from target_adobe_aep.target import TargetAdobeAEP

    TargetAdobeAEP.cli()


if __name__ == "__main__":
    main()
