"""The paper profile for a few steps on CPU: its whole protocol (the 291 training images, Set5/Set14 at
x2/x3/x4, export, the report's published anchors) runs, so a long run does not fail at its end."""

import json

import numpy as np
import pytest

from pipeline.report.published import published_for

pytestmark = pytest.mark.slow

SCALES = (2, 3, 4)
VARIANTS = ("lsrcnn", "cnn_sr")  # the LSTM body and its convolutional ablation


def test_paper_profile_runs_every_scale_to_a_report_with_published_rows(make_project, set_params, dvc, mirror):
    project = make_project(profile="paper")
    few_steps = {f"variants.{v}.optim.{k}": n for v in VARIANTS
                 for k, n in (("epochs", 1), ("max_steps_per_epoch", 3), ("epochs_at_scale", {}))}
    # The bench stage's full-size figures are a measurement, not protocol (a minute here): quick.
    set_params(project, **{"data.mirror": str(mirror), "seeds": [1], "run.sr": list(VARIANTS), "bench.size": "quick",
                           **few_steps})
    proc = dvc(project, "repro", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for scale in SCALES:  # 48 px HR patches of all 291 images, LR at 48 / scale
        lr = np.load(project / f"data/prepared/sr/x{scale}/lr.npy", mmap_mode="r")
        hr = np.load(project / f"data/prepared/sr/x{scale}/hr.npy", mmap_mode="r")
        assert hr.shape[1:] == (1, 48, 48) and lr.shape[1:] == (1, 48 // scale, 48 // scale)
        assert len(hr) == len(lr) > 40_000
        for variant in VARIANTS:
            folder = project / f"models/sr/{variant}/s1/x{scale}"
            spec = json.loads((folder / "model.json").read_text())
            assert spec["data_args"]["scale"] == scale and (folder / "model.pt").exists()

    bicubic = json.loads((project / "metrics/bicubic.json").read_text())["test"]
    for set_name in ("set5", "set14"):
        for scale in SCALES:
            published = published_for(set_name, scale).set_index("method")
            ours = bicubic[set_name][f"x{scale}"]["psnr"]["mean"]
            assert abs(ours - published.loc["bicubic", "psnr"]) <= 0.03, (set_name, scale, ours)
            for variant in VARIANTS:
                metrics = json.loads((project / f"metrics/{variant}.json").read_text())["test"]
                assert metrics[set_name][f"x{scale}"]["psnr"]["n"] == 1

    report = (project / "reports/report.md").read_text()
    assert "## Classification" not in report and "Training data: t91, bsd200" in report
    for set_name in ("set5", "set14"):
        for scale in SCALES:
            section = report.split(f"### {set_name} x{scale} ")[1].split("###")[0]
            assert f"Published on {set_name} x{scale}" in section
            assert all(method in section for method in ("SRCNN", "FSRCNN", "VDSR", "DRCN", "DRRN"))
            assert all(f"| {variant} " in section for variant in VARIANTS)
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert "classification" not in summary and len(summary["sr"]) == 3 * len(SCALES) * (len(VARIANTS) + 1)
    # The recurrence call: lsrcnn against its ablation at each scale, pooled over the three scored sets.
    assert "### Does the recurrence buy anything?" in report
    assert [(r["scale"], r["lstm"], r["ablation"], r["sets"]) for r in summary["recurrence"]] == [
        (f"x{scale}", "lsrcnn", "cnn_sr", "skimage_test+set5+set14") for scale in SCALES]
