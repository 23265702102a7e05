"""The report's tables, read from the evaluate and train stages' files: one row per variant with its
figures over seeds, rank and call; and each task's validation curves in one long table for DVC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.report.calls import calls, pm
from pipeline.report.stats import holm, mcnemar, rank_direction, signed_rank

SR_REFERENCE = "bicubic"

# Each SR architecture's convolutional ablation: the same network with two 3x3 convolutions in place of the
# LSTM sweeps (pipeline/tasks/sr/networks.py), so a pair shows what the recurrence buys.
ABLATION_OF = {"lsrcnn": "cnn_sr"}


def _read_json(path: Path):
    return json.loads(path.read_text())


def classification_table(names: list[str], models_dir: Path, eval_dir: Path, alpha: float
                         ) -> tuple[pd.DataFrame, int]:
    """One row per variant: accuracy (and the true class's mean probability) mean ± std over seeds, rank and call
    (McNemar, Holm); test-set size."""
    correct, rows = {}, []
    for name in names:
        per_image = pd.read_csv(eval_dir / name / "per_image.csv")
        correct[name] = per_image.pivot(index="image", columns="seed", values="correct").astype(bool)
        test = _read_json(eval_dir / name / "metrics.json")["test"]
        acc = test["accuracy"]
        runs = _read_json(models_dir / name / "runs.json")
        rows.append({"variant": name, "accuracy": pm(acc, 4), "true_class_prob": pm(test["true_class_prob"], 4),
                     "mean": acc["mean"], "std": acc["std"],
                     "seeds": acc["n"], "params": runs[0]["params_count"], "epochs": runs[0]["epochs"],
                     "train_s_per_seed": round(float(np.mean([r["train_time_s"] for r in runs])), 1),
                     "test_images_per_s": round(_read_json(eval_dir / name / "speed.json")["images_per_s"])})
    df = pd.DataFrame(rows)

    def pvalue(a, b):  # pairs matched by (image, seed index): seed lists are the same for every variant
        return mcnemar(correct[a].to_numpy().ravel(), correct[b].to_numpy().ravel())

    rank, call = calls(dict(zip(df.variant, df["mean"], strict=True)), pvalue, alpha)
    df.insert(1, "rank", df.variant.map(rank))
    df.insert(3, "vs leader", df.variant.map(call))
    n_test = len(next(iter(correct.values())))
    return df.sort_values(["rank", "mean"], ascending=[True, False], ignore_index=True), n_test


def _psnr_pvalue(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Signed-rank test of per-image PSNR tables (image x seed); a deterministic side (one column)
    pairs with every seed of the other."""
    if a.shape[1] == 1:
        a = pd.concat([a] * b.shape[1], axis=1)
    if b.shape[1] == 1:
        b = pd.concat([b] * a.shape[1], axis=1)
    return signed_rank(a.to_numpy().ravel() - b.to_numpy().ravel())


def sr_table(names: list[str], models_dir: Path, eval_dir: Path, alpha: float) -> pd.DataFrame:
    """One row per (set, scale, variant incl. bicubic): PSNR/SSIM mean ± std, gain, rank and call
    (Wilcoxon signed-rank on per-image PSNR, Holm, per set and scale)."""
    everyone = [SR_REFERENCE, *names]
    per_image = {n: pd.read_csv(eval_dir / n / "per_image.csv", dtype={"seed": str}) for n in everyone}
    tests = {n: _read_json(eval_dir / n / "metrics.json")["test"] for n in everyone}
    runs = {n: _read_json(models_dir / n / "runs.json") for n in names}
    speed = {n: _read_json(eval_dir / n / "speed.json") for n in everyone}
    rows = []
    for set_name, per_scale in tests[SR_REFERENCE].items():
        for scale_key in per_scale:
            scale = int(scale_key[1:])
            psnr = {n: per_image[n][(per_image[n].set == set_name) & (per_image[n].scale == scale)]
                    .pivot(index="image", columns="seed", values="psnr") for n in everyone}
            means = {n: tests[n][set_name][scale_key]["psnr"]["mean"] for n in everyone}
            rank, call = calls(means, lambda a, b, t=psnr: _psnr_pvalue(t[a], t[b]), alpha)
            base = means[SR_REFERENCE]
            for n in everyone:
                m = tests[n][set_name][scale_key]
                mine = [r for r in runs.get(n, []) if r["scale"] == scale] or [{}]
                rows.append({"set": set_name, "scale": scale_key, "variant": n, "rank": rank[n],
                             "psnr": pm(m["psnr"], 3), "vs leader": call[n], "gain_db": round(means[n] - base, 3),
                             "ssim": pm(m["ssim"], 4), "mean": m["psnr"]["mean"], "std": m["psnr"]["std"],
                             "images": len(psnr[n]), "params": mine[0].get("params_count", 0),
                             "epochs": mine[0].get("epochs", 0),
                             "train_s_per_seed": round(float(np.mean([r.get("train_time_s", 0) for r in mine])), 1),
                             "test_images_per_s": round(speed[n][scale_key], 2)})
    df = pd.DataFrame(rows)
    return df.sort_values(["set", "scale", "rank", "mean"], ascending=[True, True, True, False], ignore_index=True)


def ablation_pairs(arch: dict[str, str]) -> list[tuple[str, str]]:
    """(LSTM variant, its convolutional ablation) for every such pair among ``arch`` (variant -> architecture)."""
    return [(n, m) for n, a in arch.items() if a in ABLATION_OF for m, b in arch.items() if b == ABLATION_OF[a]]


def recurrence_table(pairs: list[tuple[str, str]], models_dir: Path, eval_dir: Path, alpha: float) -> pd.DataFrame:
    """Does the recurrence buy anything: per scale, each LSTM variant against its convolutional ablation on
    per-image PSNR differences pooled over every scored set and the seeds (pairs matched by set, image and
    seed), far more pairs than one benchmark's images; Wilcoxon signed-rank, Holm over the whole table. The
    params and epochs of both sides are shown, since the call is about architectures only at equal cost."""
    rows = []
    for lstm, conv in pairs:
        psnr = {n: pd.read_csv(eval_dir / n / "per_image.csv", dtype={"seed": str})
                .set_index(["scale", "set", "image", "seed"]).psnr for n in (lstm, conv)}
        runs = {n: _read_json(models_dir / n / "runs.json") for n in (lstm, conv)}
        diff = (psnr[lstm] - psnr[conv]).dropna()  # both scored: same sets, images and seeds
        for scale, d in diff.groupby(level="scale"):
            cost = {n: next(r for r in runs[n] if r["scale"] == scale) for n in (lstm, conv)}
            rows.append({"scale": scale, "lstm": lstm, "ablation": conv,
                         "sets": "+".join(d.index.unique("set")), "pairs": len(d),
                         "delta_db": round(float(d.mean()), 3), "lstm_ahead": round(float((d > 0).mean()), 2),
                         "p": signed_rank(d.to_numpy()), "direction": rank_direction(d.to_numpy()),
                         "params": f"{cost[lstm]['params_count']} / {cost[conv]['params_count']}",
                         "epochs": f"{cost[lstm]['epochs']} / {cost[conv]['epochs']}"})
    df = pd.DataFrame(rows, columns=["scale", "lstm", "ablation", "sets", "pairs", "delta_db", "lstm_ahead", "p",
                                     "direction", "params", "epochs"])
    df["p"] = holm(df.p.tolist()) if len(df) else []
    df["call"] = ["tie" if q >= alpha or d == 0 else "LSTM better" if d > 0 else "ablation better"
                  for q, d in zip(df.p, df.direction, strict=True)]
    df["p"] = [float(f"{q:.2g}") for q in df.p]
    df = df.drop(columns="direction").sort_values(["scale", "lstm"], ignore_index=True)
    df["scale"] = "x" + df.scale.astype(str)
    return df


def comparison_curves(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One task's validation curves in one long table, a ``series`` column naming the variant (and the
    scale when several are trained), so `dvc plots show` draws one chart that compares the variants."""
    if not curves:
        return pd.DataFrame(columns=["series", "seed", "epoch"])
    table = pd.concat([df.assign(series=name) for name, df in curves.items()], ignore_index=True)
    if "scale" in table and table["scale"].nunique() > 1:
        table["series"] += " x" + table["scale"].astype(int).astype(str)
    return table[["series", *table.columns.drop("series")]]
