"""The distributions of the running interpreter's environment, and the top-level modules more than one of them
installs, as JSON (``{"distributions": [...], "shared_modules": {module: [distribution, ...]}}``).

Run with the environment's own interpreter (``<venv>/bin/python tests/module_owners.py``); stdlib only. Owners are
read from each distribution's RECORD: ``name.py``, ``name/__init__.py`` or an extension module ``name.<suffix>``
(namespace packages, shared by design, have no ``__init__.py`` and are not counted)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.metadata import distributions


def top_level_module(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) == 2 and parts[1] == "__init__.py":
        return parts[0]
    if len(parts) == 1:
        for suffix in (".py", *EXTENSION_SUFFIXES):
            if parts[0].endswith(suffix):
                return parts[0].removesuffix(suffix)
    return None


def main() -> int:
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for dist in distributions():
        for file in dist.files or ():
            module = top_level_module(file.as_posix())
            if module:
                owners[module].add(dist.metadata["Name"])
    shared = {module: sorted(names) for module, names in sorted(owners.items()) if len(names) > 1}
    names = sorted(dist.metadata["Name"] for dist in distributions())
    json.dump({"distributions": names, "shared_modules": shared}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
