"""Results follow the code: every stage's deps are exactly the project files its command imports."""

from pathlib import Path

import pytest
import yaml

from pipeline.core.codedeps import closure
from stages.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# Files a module reads at run time besides imports (package data).
DATA_FILES = {"pipeline/data/sources.py": {"pipeline/data/catalog/sha256sums.txt"},
              "pipeline/report/published.py": {"pipeline/report/catalog/published_classification.csv",
                                        "pipeline/report/catalog/published_sr.csv"}}


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
    spec = STAGES[stage].get("do", STAGES[stage])
    command = spec["cmd"].split()[1]
    imported = {p.relative_to(ROOT).as_posix() for p in closure("stages.cli", COMMANDS[command][0])}
    expected = imported | {f for module in imported for f in DATA_FILES.get(module, ())}
    declared = _code_deps(spec["deps"])
    assert not expected - declared, f"{stage} imports but does not list: {sorted(expected - declared)}"
    assert not declared - expected, f"{stage} lists but never imports: {sorted(declared - expected)}"


def test_closure_follows_function_level_and_package_imports(tmp_path):
    files = {p.relative_to(ROOT).as_posix() for p in closure("stages.train")}
    assert "pipeline/tasks/classification/lstm_gates.py" in files  # through pipeline.tasks.models -> classifiers
    assert "pipeline/models/__init__.py" in files and "stages/__init__.py" in files
    assert "pipeline/report/render.py" not in files and "pipeline/tasks/sr/metrics.py" not in files


def test_checkpoint_key_hashes_the_train_stage_deps():
    from pipeline.core.codedeps import digest
    from pipeline.training.loop import code_digest

    train = STAGES["train_classification"]["do"]
    declared = sorted(ROOT / f for f in _code_deps(train["deps"]))
    assert code_digest() == digest(declared)
