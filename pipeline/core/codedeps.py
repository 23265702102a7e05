"""Which project source files a module imports, directly or through others.

One answer for two questions: which files a DVC stage must list as deps
(tests/test_dvc_deps.py derives them from here), and which code a training
checkpoint belongs to (its resume key hashes exactly the train stage's files).
Imports are read from the source (every ``import`` statement, function-level
ones included), not executed.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "stages")


def _file(module: str) -> Path | None:
    base = PROJECT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {m for m in found if m.split(".")[0] in PACKAGES}


def closure(*modules: str) -> list[Path]:
    """Source files of ``modules`` and of every project module they import, transitively; sorted."""
    seen: dict[str, Path] = {}
    todo = [m for module in modules for m in _with_parents(module)]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = _file(module)
        if path is None:  # a name imported from a module, not a module itself
            continue
        seen[module] = path
        todo.extend(m for imported in _imports(module, path) for m in _with_parents(imported))
    return sorted(set(seen.values()))


def digest(files: list[Path]) -> str:
    """sha256 over the files' project-relative paths and contents."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(PROJECT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
