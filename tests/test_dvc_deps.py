"""Results follow the code: every stage's deps are exactly the project files its command runs, and the
layering keeps report-time code, user tools and the other task out of trainings."""

from pathlib import Path

import pytest
import yaml

from pipeline.core.codedeps import closure, stage_closure
from pipeline.tasks import loaded_by_name

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# What a stage imports by name (pipeline.tasks), beside what its module imports.
TASK_PARTS = {"train_classification": loaded_by_name("classification", "train"),
              "train_sr": loaded_by_name("sr", "train"),
              "evaluate_classification": loaded_by_name("classification", "evaluate"),
              "evaluate_sr": loaded_by_name("sr", "evaluate"),
              "baseline": loaded_by_name("sr", "evaluate")}
# Files a module reads at run time besides imports (package data, the served model's code).
DATA_FILES = {"pipeline/data/sources.py": {"pipeline/data/catalog/sha256sums.txt"},
              "pipeline/report/published.py": {"pipeline/report/catalog/published_classification.csv",
                                               "pipeline/report/catalog/published_sr.csv"},
              "pipeline/tracking/registry.py": {"pipeline/tracking/served_model.py"}}


def _rel(files) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in files}


def expected_deps(stage: str) -> set[str]:
    spec = STAGES[stage].get("do", STAGES[stage])
    python, flag, package, command = spec["cmd"].split()[:4]
    assert (python, flag, package) == ("python", "-m", "stages"), f"{stage}: run it as `python -m stages ...`"
    parts = TASK_PARTS.get(stage, [])
    imported = _rel(stage_closure(command, *parts))
    return imported | {f for module in imported for f in DATA_FILES.get(module, ())}


def _code_deps(deps: list[str]) -> set[str]:
    """The deps that are project source: files, or folders expanded to their .py files."""
    out = set()
    for dep in deps:
        path = ROOT / dep
        if dep.split("/")[0] not in ("pipeline", "stages"):
            continue
        out |= {p.relative_to(ROOT).as_posix() for p in path.rglob("*.py")} if path.is_dir() else {dep}
    return out


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_its_import_closure(stage):
    expected = expected_deps(stage)
    declared = _code_deps(STAGES[stage].get("do", STAGES[stage])["deps"])
    assert not expected - declared, f"{stage} imports but does not list: {sorted(expected - declared)}"
    assert not declared - expected, f"{stage} lists but never imports: {sorted(declared - expected)}"


def test_closure_follows_function_level_and_package_imports():
    files = _rel(closure("stages.train"))
    assert "pipeline/training/distributed.py" in files  # a package's module, through `from ... import`
    assert "pipeline/tasks/__init__.py" in files and "stages/__init__.py" in files


@pytest.mark.parametrize("task,other", [("classification", "sr"), ("sr", "classification")])
def test_a_training_imports_its_task_alone_and_no_report_time_code_or_tools(task, other):
    train = expected_deps(f"train_{task}")
    assert not {f for f in train if f.startswith(f"pipeline/tasks/{other}/")}
    assert not {f for f in train if f.startswith(("pipeline/report/", "stages/tools/", "pipeline/data/fetch"))}
    assert {"stages/cli.py", "pipeline/tracking/results.py", "pipeline/tracking/team.py"}.isdisjoint(train)
    evaluate = expected_deps(f"evaluate_{task}")
    assert not {f for f in evaluate if f.startswith((f"pipeline/tasks/{other}/", "pipeline/report/",
                                                     "pipeline/training/", "pipeline/tracking/"))}
