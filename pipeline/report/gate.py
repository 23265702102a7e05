"""The regression gate: current metrics against a baseline, each a mean over seeds with its spread.

Every metric here is higher-is-better (accuracy, PSNR, SSIM). For each one the
gate computes the critical difference of a one-sided Welch t-test at level
``alpha`` from both sides' standard deviations and seed counts, and never less
than the metric's ``floor``:

    margin = max(floor, t(1 - alpha, df_Welch) * sqrt(s_b^2 / n_b + s_c^2 / n_c))

``REGRESSED`` when now < baseline - margin, ``improved`` when now > baseline +
margin, ``ok`` otherwise. If seed-to-seed variation is roughly normal, a
metric that did not change is flagged with probability at most ``alpha``; CPU
kernels that differ between machines perturb training like another seed does,
so the same rule holds across machines. Deterministic figures (bicubic, std 0)
are held to the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from pipeline.config.schema import flatten
from pipeline.core.errors import InputError
from pipeline.report.stats import welch_margin

FAILING = ("REGRESSED", "MISSING", "NO BASELINE")


def summaries(tree: object, source: str) -> dict[str, dict]:
    """{metric key: {"mean", "std", "n"}} from a metrics file's tree; anything malformed is refused."""
    if not isinstance(tree, dict) or not tree:
        raise InputError(f"{source}: expected a mapping of metrics, got {type(tree).__name__}")
    flat = flatten(tree)
    keys = sorted({k.rsplit(".", 1)[0] for k in flat if k.endswith(".mean")})
    if not keys:
        raise InputError(f"{source}: no metric with a mean (a file from before seeds? run `dvc repro`)")
    out = {}
    for key in keys:
        mean, std, n = flat.get(f"{key}.mean"), flat.get(f"{key}.std"), flat.get(f"{key}.n")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (mean, std, n))
        if not numbers or not math.isfinite(mean) or not math.isfinite(std) or std < 0 or n != int(n) or n < 1:
            raise InputError(f"{source}: {key} needs a finite mean, std >= 0 and n >= 1, "
                             f"got mean={mean!r} std={std!r} n={n!r}")
        out[key] = {"mean": float(mean), "std": float(std), "n": int(n)}
    return out


@dataclass
class Verdict:
    table: pd.DataFrame
    failed: bool


def compare(baseline: dict[str, dict[str, dict]], current: dict[str, dict[str, dict]], alpha: float,
            floor: dict[str, float], run: set[str] | None = None) -> Verdict:
    """Baseline and current are {variant: {metric key: summary}}; every current variant is judged. A baseline
    variant outside ``run`` (the variants params.yaml runs; default: all) gets one "not run" row: said,
    not failed, since leaving a variant out is a params change a reviewer sees."""
    rows = []
    for variant in sorted(set(baseline) | set(current)):
        if run is not None and variant not in run and variant not in current:
            rows.append({"variant": variant, "metric": "*", "verdict": "not run"})
            continue
        if variant not in baseline:
            rows.append({"variant": variant, "metric": "*", "verdict": "NO BASELINE"})
            continue
        for key, base in sorted(baseline[variant].items()):
            now = current.get(variant, {}).get(key)
            row = {"variant": variant, "metric": key, "baseline": _fmt(base)}
            if now is None:
                rows.append({**row, "verdict": "MISSING"})
                continue
            margin = max(floor.get(key.rsplit(".", 1)[-1], 0.0),
                         welch_margin(base["std"], base["n"], now["std"], now["n"], alpha))
            delta = now["mean"] - base["mean"]
            verdict = "REGRESSED" if delta < -margin else "improved" if delta > margin else "ok"
            rows.append({**row, "now": _fmt(now), "delta": round(delta, 5), "margin": round(margin, 5),
                         "verdict": verdict})
    table = pd.DataFrame(rows, columns=["variant", "metric", "baseline", "now", "delta", "margin", "verdict"])
    return Verdict(table, bool(table.verdict.isin(FAILING).any()) or table.empty)


def _fmt(s: dict) -> str:
    return f"{s['mean']:.5g} ± {s['std']:.2g} (n={s['n']})"
