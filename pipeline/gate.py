"""The regression gate: compare metrics with a baseline, metric by metric, with tolerances.

Every metric here is higher-is-better (accuracy, PSNR, SSIM). A metric fails
when it dropped by more than its tolerance, or when the baseline has it and
the current run does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


@dataclass
class Verdict:
    table: pd.DataFrame
    failed: bool


def compare(baseline: dict[str, dict[str, float]], current: dict[str, dict[str, float]],
            tolerance: dict[str, float]) -> Verdict:
    """Baseline and current are {variant: {metric key: value}}."""
    rows = []
    for variant, metrics in sorted(baseline.items()):
        for key, base in sorted(metrics.items()):
            now = current.get(variant, {}).get(key, math.nan)
            tol = tolerance.get(key.rsplit(".", 1)[-1], 0.0)
            delta = now - base
            if math.isnan(now):
                verdict = "MISSING"
            elif delta < -tol:
                verdict = "REGRESSED"
            elif delta > tol:
                verdict = "improved"
            else:
                verdict = "ok"
            rows.append({"variant": variant, "metric": key, "baseline": base, "now": now,
                         "delta": round(delta, 5), "tolerance": tol, "verdict": verdict})
    table = pd.DataFrame(rows, columns=["variant", "metric", "baseline", "now", "delta", "tolerance", "verdict"])
    return Verdict(table, bool(table.verdict.isin(["REGRESSED", "MISSING"]).any()) or table.empty)
