"""The report's parts in-process, on files shaped like the evaluate and train stages' outputs: the calls,
the tables, the figures and the rendering."""

import json

import numpy as np
import pandas as pd
import torch

from pipeline.report.calls import budget_note, calls, pm
from pipeline.report.figures import confusion, plot_confusions, plot_crops, plot_curves, variant_colours
from pipeline.report.render import html_page, markdown
from pipeline.report.tables import ablation_pairs, classification_table, comparison_curves, recurrence_table

PNG = b"\x89PNG\r\n\x1a\n"


def test_calls_share_a_rank_when_the_test_cannot_separate():
    means = {"a": 0.95, "b": 0.94, "c": 0.80}
    p = {frozenset("ab"): 0.4, frozenset("ac"): 0.001, frozenset("bc"): 0.002}
    rank, call = calls(means, lambda x, y: p[frozenset(x + y)], alpha=0.05)
    assert rank == {"a": 1, "b": 1, "c": 3}  # c: two variants significantly better
    assert call["a"] == "leader" and call["b"].startswith("tie") and call["c"].startswith("worse")
    # Holm over the three pairs: 0.001 * 3 and 0.002 * 2 stay under alpha, 0.4 does not.
    assert "p=0.003" in call["c"]
    assert pm({"mean": 0.91234, "std": 0.01, "n": 3}, 3) == "0.912 ± 0.010 (3)"
    assert budget_note({"": {"a": 5, "b": 5}}) == "Equal budget: every variant trained 5 epochs."
    assert "Unequal" in budget_note({"": {"a": 5, "b": 6}})
    assert "Unequal" in budget_note({"x2": {"a": 20, "b": 20}, "x3": {"a": 36, "b": 30}})
    assert budget_note({"x2": {"a": 20, "b": 20}, "x3": {"a": 36, "b": 36}}) == (
        "Equal budget at each scale: every variant trained 20 epochs at x2, 36 epochs at x3.")


def _classifier_outputs(root, name, correct_by_seed, params=1000, epochs=3):
    """eval/NAME and models/NAME as the evaluate and train stages write them."""
    rows = [{"seed": seed, "image": i, "label": i % 2, "predicted": i % 2 if ok else 1 - i % 2, "correct": ok}
            for seed, correct in correct_by_seed.items() for i, ok in enumerate(correct)]
    (root / "eval" / name).mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "eval" / name / "per_image.csv", index=False)
    acc = {s: float(np.mean(c)) for s, c in correct_by_seed.items()}
    values = list(acc.values())
    spread = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "n": len(values), "seeds": acc}
    test = {"accuracy": spread, "true_class_prob": spread}
    (root / "eval" / name / "metrics.json").write_text(json.dumps({"test": test}))
    (root / "eval" / name / "speed.json").write_text(json.dumps({"images_per_s": 100.0}))
    (root / "models" / name).mkdir(parents=True)
    runs = [{"seed": int(s), "scale": None, "params_count": params, "epochs": epochs, "train_time_s": 2.0}
            for s in correct_by_seed]
    (root / "models" / name / "runs.json").write_text(json.dumps(runs))


def test_classification_table_ranks_by_mcnemar_over_seeds(tmp_path):
    rng = np.random.default_rng(0)
    good = {s: rng.random(400) < 0.95 for s in ("1", "2", "3")}
    _classifier_outputs(tmp_path, "good", good)
    _classifier_outputs(tmp_path, "twin", {s: c.copy() for s, c in good.items()})  # the same answers: a tie
    _classifier_outputs(tmp_path, "poor", {s: rng.random(400) < 0.7 for s in ("1", "2", "3")})
    table, n_test = classification_table(["good", "twin", "poor"], tmp_path / "models", tmp_path / "eval", 0.05)
    assert n_test == 400
    rows = table.set_index("variant")
    assert rows.loc["good", "rank"] == rows.loc["twin", "rank"] == 1 and rows.loc["poor", "rank"] == 3
    assert rows.loc["poor", "vs leader"].startswith("worse") and rows.loc["poor", "seeds"] == 3
    assert "|" in markdown(table)


def _sr_outputs(root, name, psnr_by_scale, params=1000, epochs=3):
    """eval/NAME/per_image.csv and models/NAME/runs.json of an SR variant: ``psnr_by_scale`` maps a scale to an
    array of (set, image, seed) PSNRs, the same layout for every variant."""
    rows, runs = [], []
    for scale, values in psnr_by_scale.items():
        it = iter(values)
        rows += [{"set": s, "scale": scale, "seed": seed, "image": f"im{i}", "psnr": next(it), "ssim": 0.9}
                 for s, images in (("set5", 5), ("set14", 14)) for seed in ("1", "2", "3") for i in range(images)]
        runs += [{"seed": seed, "scale": scale, "params_count": params, "epochs": epochs, "train_time_s": 2.0}
                 for seed in (1, 2, 3)]
    (root / "eval" / name).mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "eval" / name / "per_image.csv", index=False)
    (root / "models" / name).mkdir(parents=True)
    (root / "models" / name / "runs.json").write_text(json.dumps(runs))


def test_recurrence_table_pools_sets_and_seeds_per_scale(tmp_path):
    rng = np.random.default_rng(1)
    base = {scale: 30 + rng.normal(0, 2, 57) for scale in (2, 3, 4)}  # 57 = (5 + 14) images x 3 seeds
    # The LSTM is 0.05 dB ahead at x2 (noise 0.05 dB per image: hidden in Set5's 5 images alone), behind at x3,
    # level at x4.
    lstm = {2: base[2] + 0.05 + rng.normal(0, 0.05, 57), 3: base[3] - 0.05 + rng.normal(0, 0.05, 57),
            4: base[4] + rng.normal(0, 0.05, 57)}
    _sr_outputs(tmp_path, "lstm", lstm, params=1010, epochs=12)
    _sr_outputs(tmp_path, "conv", base, params=1000, epochs=12)
    pairs = ablation_pairs({"lstm": "lsrcnn", "conv": "cnn_sr", "other": "recurrent"})
    assert pairs == [("lstm", "conv")]
    table = recurrence_table(pairs, tmp_path / "models", tmp_path / "eval", 0.01).set_index("scale")
    assert table.loc["x2", "call"] == "LSTM better" and table.loc["x3", "call"] == "ablation better"
    assert table.loc["x4", "call"] == "tie" and table.loc["x4", "p"] >= 0.01
    assert (table.pairs == 57).all() and (table.sets == "set5+set14").all()
    assert table.loc["x2", "delta_db"] > 0 > table.loc["x3", "delta_db"]
    assert table.loc["x2", "params"] == "1010 / 1000" and table.loc["x2", "epochs"] == "12 / 12"
    assert recurrence_table([], tmp_path / "models", tmp_path / "eval", 0.01).empty


def test_comparison_curves_name_each_series():
    curve = pd.DataFrame({"seed": [1, 1], "epoch": [1, 2], "val_psnr": [30.0, 31.0], "scale": [2, 2]})
    both = comparison_curves({"a": curve, "b": curve.assign(scale=3)})
    assert set(both.series) == {"a x2", "b x3"} and list(both.columns[:3]) == ["series", "seed", "epoch"]
    assert comparison_curves({}).empty


def test_figures_are_pngs_and_the_page_embeds_them(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    curves = {"a": pd.DataFrame({"seed": [1, 1, 2, 2], "epoch": [1, 2, 1, 2], "val_acc": [0.5, 0.6, 0.55, 0.7]})}
    plot_curves(curves, "val_acc", variant_colours(["a"]), figures / "curves.png", "title")
    per_image = pd.DataFrame({"label": [0, 0, 1, 1], "predicted": [0, 1, 1, 1]})
    matrix = confusion(per_image, 2)
    assert matrix.tolist() == [[0.5, 0.5], [0.0, 1.0]]
    plot_confusions({"a": matrix}, figures / "confusion.png")
    plot_crops([("bicubic", torch.rand(3, 40, 40)), ("truth", torch.rand(1, 40, 40))], 16, figures / "crops.png")
    for name in ("curves", "confusion", "crops"):
        assert (figures / f"{name}.png").read_bytes().startswith(PNG)
    page = html_page('# Title\n\n<img src="figures/curves.png">\n\n| a | b |\n|---|---|\n| 1 | 2 |\n', "t", tmp_path)
    assert "data:image/png;base64," in page and "figures/curves.png" not in page and "<table>" in page

