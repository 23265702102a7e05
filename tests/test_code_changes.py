"""Results follow computation, not keystrokes: the code keys of finished trainings and packaged models
(pipeline.core.codedeps.digest) ignore comments, docstrings and formatting, and see any change to what
runs; DVC's stage deps follow the import closure (tests/test_dvc_deps.py)."""

import hashlib
import json
import subprocess
import sys

import mlflow
import pytest

from pipeline.core.codedeps import code_of


def test_code_of_ignores_comments_docstrings_and_formatting(tmp_path):
    def code(text: str) -> str:
        path = tmp_path / "m.py"
        path.write_text(text)
        return code_of(path)

    base = code('"""Module."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # one more\n')
    assert base == code('"""Other words."""\n# a comment\ndef f( x ):\n    return (x+1)\n')
    assert base == code("def f(x):\n    '''Longer\n    prose.'''\n    return x + 1\n")
    assert base != code("def f(x):\n    return x + 2\n")  # a constant
    assert base != code("def f(y):\n    return y + 1\n")  # a name
    assert code("class A:\n    '''Doc.'''\n") == code("class A:\n    pass\n")


def test_a_file_edited_while_a_process_trains_keeps_its_keys(make_project):
    """A stage runs the code it imported: an edit made meanwhile moves neither its trainings' key (where it
    finds the finished training to package) nor its packaging record, while the files now key differently
    (what the next process reads)."""
    project = make_project()
    script = """
from pathlib import Path
from pipeline.training.identity import code_digest
from pipeline.tracking.registry import packaging_digest
digests = (code_digest, packaging_digest)
before = [d("classification") for d in digests]
for f in ("pipeline/training/loop.py", "pipeline/tracking/registry.py"):
    Path(f).write_text(Path(f).read_text() + "\\n_EDITED = 1\\n")
print([d("classification") for d in digests] == before,
      all(d.__wrapped__("classification") != b for d, b in zip(digests, before)))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "True"]


def _digests(project, pattern: str) -> dict[str, str]:
    return {p.relative_to(project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(project.glob(pattern))}


@pytest.mark.slow
def test_comments_reuse_trainings_packaging_repackages_and_a_constant_retrains(reproduced, dvc):
    models = _digests(reproduced, "models/**/model.pt")
    assert models
    trainings = ("train_classification", "train_sr")  # what is asserted; the stages after them are tested elsewhere

    # A comment and a docstring in the LightningModules' module: DVC re-runs the trainings' stages, which
    # reuse every finished training and re-export the same bytes, so nothing after them is stale.
    lit = reproduced / "pipeline/tasks/lit.py"
    text = lit.read_text()
    lit.write_text(text.replace('"""The loop shared by every task;', '"""(Reworded.) The loop shared by every task;')
                   + "\n# a closing comment\n")
    proc = dvc(reproduced, "repro", *trainings)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Running stage 'train_classification'" in proc.stdout and " epoch " not in proc.stdout
    assert "registered as version" not in proc.stdout
    assert _digests(reproduced, "models/**/model.pt") == models
    stale = json.loads(dvc(reproduced, "status", "--json").stdout)
    assert not {s for s in stale if s.startswith(("evaluate_", "report"))}, stale

    # How a model is packaged for MLflow: every training is packaged and registered again, none retrained.
    registry = reproduced / "pipeline/tracking/registry.py"
    registry.write_text(registry.read_text().replace('"pyyaml", "scipy", "mlflow")',
                                                     '"pyyaml", "scipy", "mlflow", "tabulate")'))
    proc = dvc(reproduced, "repro", *trainings)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " epoch " not in proc.stdout and proc.stdout.count("registered as version") == 4  # 2 seeds x 2 variants
    assert _digests(reproduced, "models/**/model.pt") == models
    client = mlflow.MlflowClient(f"sqlite:///{reproduced / 'mlflow.db'}")
    runs = {r["run_id"] for r in json.loads((reproduced / "models/classification/lstm_row/runs.json").read_text())}
    assert {v.run_id for v in client.search_model_versions("name = 'lstm_row'")} == runs  # same runs, new versions
    newest = max(client.search_model_versions("name = 'lstm_row'"), key=lambda v: int(v.version))
    packaged = client.get_logged_model(newest.source.removeprefix("models:/"))  # the run's new LoggedModel
    assert packaged.source_run_id == newest.run_id
    requirements = mlflow.artifacts.download_artifacts(f"{packaged.artifact_location}/requirements.txt")
    assert "tabulate==" in open(requirements).read()

    # A constant of the training loop: the training it shapes runs again.
    loop = reproduced / "pipeline/training/loop.py"
    loop.write_text(loop.read_text().replace("num_sanity_val_steps=0", "num_sanity_val_steps=1"))
    proc = dvc(reproduced, "repro", "train_classification")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[lstm_row_s1] epoch 1/3" in proc.stdout
