"""The package keeps no dead constants and no module leans on another's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "target_adobe_aep"
MODULES = {path.stem: ast.parse(path.read_text()) for path in sorted(PACKAGE.glob("*.py"))}


def test_no_module_imports_a_private_name_of_another() -> None:
    imported = [
        f"{module}: {node.module}.{alias.name}"
        for module, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("target_adobe_aep")
        for alias in node.names
        if alias.name.startswith("_") and alias.name != "__version__"
    ]
    assert imported == []


def test_every_module_constant_is_used() -> None:
    source = "\n".join(path.read_text() for path in PACKAGE.glob("*.py"))
    constants = [
        target.id
        for tree in MODULES.values()
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]+", target.id)
    ]
    unused = [name for name in constants if len(re.findall(rf"\b{name}\b", source)) < 2]
    assert unused == []
