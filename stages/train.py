"""train NAME: one variant (every configured scale for SR) -> models/NAME/, plots/train/NAME.csv."""

from __future__ import annotations

import pandas as pd

from pipeline.atomic import atomic_dir, write_json, write_text
from pipeline.config import task_of
from pipeline.tracking import resolve_store
from pipeline.training import train
from stages.common import MODELS, PLOTS, PREPARED, ROOT, WORK, UsageError, command, params


def model_dir(name: str, scale: int | None):
    return MODELS / name / f"x{scale}" if scale else MODELS / name


@command
def train_cmd(name: str) -> None:
    """Train variant NAME with Lightning; every run is tracked in MLflow."""
    p = params()
    if name not in p.variants:
        raise UsageError(f"unknown variant '{name}', expected one of {', '.join(p.variants)}")
    variant = p.variants[name]
    store = resolve_store(p.tracking, ROOT)
    scales = p.data.sr.scales if task_of(variant) == "sr" else [None]
    runs, curves = [], []
    with atomic_dir(MODELS / name) as tmp:
        for scale in scales:
            out = tmp / f"x{scale}" if scale else tmp
            result = train(name, variant, p, PREPARED, out, WORK, store, ROOT, scale)
            runs.append({"scale": scale, "run_id": result.run_id, "params_count": result.params_count,
                         "train_time_s": result.train_time_s, "epochs": result.epochs, "best_val": result.best})
            curves += [{"scale": scale or "", **row} for row in result.history]
        write_json(tmp / "runs.json", runs)
    write_text(PLOTS / "train" / f"{name}.csv", pd.DataFrame(curves).to_csv(index=False))
    for r in runs:
        label = f"{name} x{r['scale']}" if r["scale"] else name
        print(f"{label}: best val {r['best_val']:.4f} "
              f"after {r['epochs']} epochs in {r['train_time_s']:.0f}s (MLflow run {r['run_id']})")
