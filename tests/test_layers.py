"""The architecture, enforced: imports run one way between pipeline's packages, tasks never import each
other, nothing of ours imports in a cycle, and pipeline never imports stages."""

from pathlib import Path

import pytest

from pipeline.core.codedeps import PROJECT, imports, source_file

# Lowest first: a package may import its own modules and those of packages before it, never after.
LAYERS = ["core", "config", "imaging", "data", "tasks", "tracking", "training", "report", "bench", "fanout"]
TASKS = ["classification", "sr"]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((PROJECT / "pipeline").rglob("*.py")) + sorted((PROJECT / "stages").rglob("*.py")):
        parts = list(path.relative_to(PROJECT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()
# Direct imports between our modules ("from pkg import name" counts when name is a module).
EDGES = {m: {i for i in imports(m, p) if source_file(i) is not None and i != m} for m, p in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pipeline" and len(parts) > 1 else None


def _task(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["pipeline", "tasks"] and len(parts) > 2 and parts[2] in TASKS else None


def test_every_pipeline_package_has_a_layer():
    assert {_layer(m) for m in MODULES if _layer(m)} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_imports_go_down_the_layers(module):
    rank = LAYERS.index(_layer(module))
    upward = sorted(i for i in EDGES[module] if i.startswith("stages") or
                    (_layer(i) and LAYERS.index(_layer(i)) > rank))
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_tasks_never_import_each_other_and_generic_code_imports_no_task():
    """The training loop, tracking and the tasks' shared code reach a task only by name (pipeline.tasks)."""
    for module, imported in EDGES.items():
        other = {_task(i) for i in imported if _task(i)} - {_task(module)}
        if _task(module) or _layer(module) in ("tasks", "tracking", "training") or module == "stages.train":
            assert not other, f"{module} imports task {other} (tasks are loaded by name: pipeline.tasks)"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(EDGES.get(module, ())):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(path[path.index(nxt):] + [module, nxt])}")
            if nxt not in state:
                visit(nxt, path + [module])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [])
