"""The gate's rule measured on recorded seeds instead of trusted on paper: its false-alarm rate and power.

Given many recorded seeds per variant (a baseline's and a run's, per-seed values in their metrics files), each
trial splits every variant's seeds at random into a baseline of ``n_base`` and a run of ``n_now`` disjoint
seeds and applies the gate (pipeline.report.gate.compare) twice: as recorded, where any REGRESSED is a false
alarm of that check run; and with every run value lowered by ``shift[metric name]``, where a REGRESSED row is
a detection of that metric. The trials share seeds, so they are not independent: the rates are what the
recorded seeds support, not a sample of fresh trainings (the README states how many seeds lie behind them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from pipeline.report.gate import compare


@dataclass
class Calibration:
    n_base: int
    n_now: int
    trials: int
    false_alarms: int  # trials in which a healthy split made any metric REGRESSED
    alarmed: dict[tuple[str, str], int]  # (variant, metric) -> healthy trials in which it was REGRESSED
    detection: pd.DataFrame  # variant, metric, shift, seeds, detects (the rule's, median), detected (share)
    skipped: list[str]  # variants with too few recorded seeds to split

    @property
    def upper(self) -> float:
        """One-sided 95% Clopper-Pearson upper bound of the false-alarm rate."""
        if self.false_alarms == self.trials:
            return 1.0
        return float(sps.beta.ppf(0.95, self.false_alarms + 1, self.trials - self.false_alarms))


def merge(*sides: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """{variant: {metric key: {seed: value}}}: the union of the sides' recorded seeds (summaries with
    ``seeds``); a seed recorded on two sides keeps its first value."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for side in sides:
        for variant, metrics in side.items():
            for key, s in metrics.items():
                seen = out.setdefault(variant, {}).setdefault(key, {})
                for seed, value in s.get("seeds", {}).items():
                    seen.setdefault(seed, value)
    return out


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values), "seeds": {str(i): float(v) for i, v in enumerate(values)}}


def calibrate(recorded: dict[str, dict[str, dict[str, float]]], n_base: int, n_now: int, trials: int,
              alpha: float, floor: dict[str, float], shift: dict[str, float], power: float = 0.8,
              deterministic: frozenset[str] = frozenset(), drop_lowest: bool = True, seed: int = 0) -> Calibration:
    """Resample ``recorded`` (see ``merge``) ``trials`` times as the module docstring says. Deterministic
    variants enter every split with their one value; a trained variant with fewer than n_base + n_now seeds
    is left out and named."""
    rng = np.random.default_rng(seed)
    fixed = {v: {k: _summary(np.array(list(seeds.values()))) for k, seeds in m.items()}
             for v, m in recorded.items() if v in deterministic}
    trained = {v: m for v, m in recorded.items() if v not in deterministic}
    skipped = sorted(v for v, m in trained.items() if min(len(s) for s in m.values()) < n_base + n_now)
    trained = {v: m for v, m in trained.items() if v not in skipped}
    alarms, alarmed, hits, detects = 0, {}, {}, {}
    for _ in range(trials):
        base, now, lowered = dict(fixed), dict(fixed), dict(fixed)
        for variant, metrics in trained.items():
            names = sorted(next(iter(metrics.values())))
            order = rng.permutation(names)
            b, n = order[:n_base], order[n_base:n_base + n_now]
            base[variant] = {k: _summary(np.array([s[x] for x in b])) for k, s in metrics.items()}
            now[variant] = {k: _summary(np.array([s[x] for x in n])) for k, s in metrics.items()}
            lowered[variant] = {k: _summary(np.array([s[x] for x in n]) - shift.get(k.rsplit(".", 1)[-1], 0.0))
                                for k, s in metrics.items()}
        healthy = compare(base, now, alpha, floor, power=power, deterministic=deterministic,
                          drop_lowest=drop_lowest)
        false = healthy.table[healthy.table.verdict == "REGRESSED"]
        alarms += not false.empty
        for row in false.itertuples():
            alarmed[(row.variant, row.metric)] = alarmed.get((row.variant, row.metric), 0) + 1
        shifted = compare(base, lowered, alpha, floor, power=power, deterministic=deterministic,
                          drop_lowest=drop_lowest).table
        for row in shifted.itertuples():
            if row.variant in trained and row.metric.rsplit(".", 1)[-1] in shift:
                key = (row.variant, row.metric)
                hits[key] = hits.get(key, 0) + (row.verdict == "REGRESSED")
                detects.setdefault(key, []).append(row.detects)
    rows = [{"variant": v, "metric": k, "shift": shift[k.rsplit(".", 1)[-1]], "seeds": len(trained[v][k]),
             "detects": float(np.median(detects[(v, k)])), "detected": hits[(v, k)] / trials}
            for v, k in sorted(hits)]
    table = pd.DataFrame(rows, columns=["variant", "metric", "shift", "seeds", "detects", "detected"])
    return Calibration(n_base, n_now, trials, alarms, dict(sorted(alarmed.items(), key=lambda kv: -kv[1])), table,
                       skipped)


def describe(c: Calibration) -> str:
    """The headline line: false alarms over the trials, with the upper bound."""
    rate = c.false_alarms / c.trials if c.trials else math.nan
    return (f"{c.trials} resampled check runs ({c.n_base} baseline vs {c.n_now} run seeds, disjoint, drawn from "
            f"the recorded seeds): false alarm in {c.false_alarms} ({rate:.1%}, 95% upper bound {c.upper:.1%})")


def alarm_sources(c: Calibration) -> str:
    """Which metrics raised the false alarms, most first: where the rule's normal-noise assumption fails (a rare
    seed far below the others makes a run of few seeds look like a regression)."""
    return "false alarms raised by: " + ", ".join(f"{v} {k} ({n})" for (v, k), n in c.alarmed.items())
