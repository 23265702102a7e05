"""Which project source files a module imports, directly or through others.

One answer for two questions: which files a DVC stage must list as deps
(tests/test_dvc_deps.py derives them from here), and which code a finished
training or a packaged model belongs to (their keys hash the files' code).
Imports are read from the source (every ``import`` statement, function-level
ones included, except those made for type annotations only), not executed. A
task's parts are imported by name at run time (pipeline.tasks); a stage names
the part it runs (``stage_closure``).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "stages")


def source_file(module: str) -> Path | None:
    base = PROJECT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _typing_only(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``: imports for annotations, which never run."""
    blocks = [node for node in ast.walk(tree) if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name | ast.Attribute)
              and (getattr(node.test, "id", None) or getattr(node.test, "attr", None)) == "TYPE_CHECKING"]
    return {id(inner) for block in blocks for stmt in block.body for inner in ast.walk(stmt)}


def imports(module: str, path: Path) -> set[str]:
    """The project modules ``module`` (at ``path``) imports, wherever the statement is, except for
    annotations only (``if TYPE_CHECKING:``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skipped = _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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
        path = source_file(module)
        if path is None:  # a name imported from a module, not a module itself
            continue
        seen[module] = path
        todo.extend(m for imported in imports(module, path) for m in _with_parents(imported))
    return sorted(set(seen.values()))


def stage_closure(stage: str, *parts: str) -> list[Path]:
    """The files ``python -m stages STAGE`` runs: the stage runner, the stage's module and what they import,
    plus the task parts (modules) it imports by name."""
    return closure("stages.__main__", f"stages.{stage}", *parts)


class _Docstrings(ast.NodeTransformer):
    """Drops every module, class and function docstring: prose, not computation."""

    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip


def code_of(path: Path) -> str:
    """A source file's code without comments, docstrings or formatting: its syntax tree, docstrings removed."""
    tree = _Docstrings().visit(ast.parse(path.read_text(), str(path)))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def digest(files: list[Path]) -> str:
    """sha256 over the files' project-relative paths and code (``code_of``): a comment, a docstring or a
    reformatting leaves it unchanged, any change to what runs does not."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(PROJECT).as_posix().encode() + b"\0" + code_of(path).encode() + b"\0")
    return h.hexdigest()
