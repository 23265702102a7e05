"""The regression gate: current metrics against a baseline, each a mean over seeds with its spread.

Every metric here is higher-is-better (accuracy, true_class_prob, PSNR, SSIM). A classifier is gated on
two: its test accuracy, and true_class_prob, the mean probability it gives each test digit's true class.
The second is there for power: accuracy scores each of the 1,000 embedded test digits right or wrong, so
seeds differ mostly by which borderline digits tip over, while the probability moves smoothly; a change
that costs accuracy costs it too, by more of its own spread (20 seeds each of nine injected regressions,
see the README's gate section). Assumption: what costs accuracy costs the true class's probability; a
change that cost accuracy alone would be seen at accuracy's own, larger, detectable drop.

The rule, one-sided, for each gated metric of each variant:

* Noise: the variant's seed-to-seed standard deviation, estimated from both sides' seeds together
  (the baseline and the current run train the same recipe, so they share one spread: a two-sample t
  with n_baseline + n_now - 2 degrees of freedom, where Welch's per-side estimate gave about 2 for
  3 + 3 seeds). Assumption: seed-to-seed variation is roughly normal apart from a rare seed far below
  the rest (what dropping a run's lowest seed, below, is for), and another machine's CPU kernels
  perturb a training as another seed does. A variant measured once on each side borrows the spread
  pooled over the other variants of that metric; pooling is not the rule for the rest, because the
  spreads differ too much between variants (0.009 to 0.5 dB on Set14 among the default's SR
  variants): a pooled figure would blind the gate on the calm ones.
* What is compared (``drop_lowest``, params' check.drop_lowest): a run of 3 or more seeds (its seeds
  recorded) by its mean without its lowest seed, against what as many of the baseline's seeds give for
  that on average (``expected_trimmed``, exact over every subset); otherwise the means. Why: a training
  now and then ends far below its siblings (the default's lsrcnn_sa and lsrcnn_mixed: one seed in 23 at
  4 sigma below the mean, at 2 epochs), and a run that drew it beside two low seeds had a mean that the
  normal tails call a regression: `check --calibrate` measured 2.5% false alarms for the 1% promised
  with plain means, 0.8% with the lowest seed dropped (0% with medians, which cost more power). The
  price: that figure varies 1.17 times as much as the mean of 3 normal draws (``trimmed_variance``), so
  a drop that moves every seed must be ~8% larger to be seen, and a change that breaks one seed in three
  is seen only when it breaks two. So it is chosen per profile by calibration: the ci profile, whose
  recorded seeds hold no such seed (0 false alarms in 400 with means), compares means.
* Family: ``alpha`` is the false-alarm rate of a whole check run, all gated metrics together; each of
  the m comparisons is tested at alpha / m (Bonferroni: valid however the metrics correlate).
* margin = max(floor, t(1 - alpha/m, df) * SE), SE = sigma * sqrt(1/n_baseline + c/n_now), c =
  ``trimmed_variance(n_now)`` with the lowest seed dropped, 1 for means: ``REGRESSED`` when the run's
  figure < the baseline's - margin, ``improved`` when > the baseline's + margin, else ``ok``.
* detects = margin + t(power, df) * SE: a drop of every seed that the gate finds with probability
  ``power``.
* Deterministic figures (the untrained baselines, bicubic) have no seed noise: held to the floor.

Power comes from the baseline's seeds: it is recorded once, on more seeds than a run trains and
disjoint from them (the default's: 20 seeds, 4-23, against a run's 1-3), so df = 21 and SE = 0.66
sigma for 3 seeds less the lowest, where 3 + 3 seeds gave df 4 and 0.82 sigma for means (with 38
metrics the margin is 2.7 sigma instead of 8.3). Disjoint seeds keep the two sides independent, as
the t assumes; a run on the baseline's own seeds only makes the gate more lenient.
pipeline.report.calibration measures the rule's false alarms and power by resampling recorded seeds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import comb

from pipeline.config.schema import flatten
from pipeline.core.errors import InputError

FAILING = ("REGRESSED", "MISSING", "NO BASELINE")


def summaries(tree: object, source: str) -> dict[str, dict]:
    """{metric key: {"mean", "std", "n"[, "seeds"]}} from a metrics file's tree (``seeds``: {seed: value}, where
    the file records them); anything malformed is refused."""
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
        seeds = {k.rsplit(".", 1)[-1]: v for k, v in flat.items() if k.startswith(f"{key}.seeds.")}
        if seeds:
            if len(seeds) != n or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                          and math.isfinite(v) for v in seeds.values()):
                raise InputError(f"{source}: {key}.seeds needs n={n} finite values, got {len(seeds)}")
            out[key]["seeds"] = {k: float(v) for k, v in seeds.items()}
    return out


@dataclass
class Verdict:
    table: pd.DataFrame
    failed: bool
    comparisons: int  # m: the gated metrics that carry seed noise (each tested at alpha / m)
    unestimated: list[tuple[str, str]]  # (variant, metric) of a trained variant with no estimate of its noise


def pooled_spread(*sides: dict[str, dict[str, dict]]) -> dict[str, tuple[float, int]]:
    """metric key -> (pooled seed-to-seed standard deviation, degrees of freedom) over every variant of every
    side measured with two or more seeds."""
    sums: dict[str, list[float]] = {}
    for side in sides:
        for metrics in side.values():
            for key, s in metrics.items():
                if s["n"] > 1:
                    acc = sums.setdefault(key, [0.0, 0])
                    acc[0] += (s["n"] - 1) * s["std"] ** 2
                    acc[1] += s["n"] - 1
    return {key: (math.sqrt(ss / df), df) for key, (ss, df) in sums.items()}


@functools.cache
def trimmed_variance(n: int) -> float:
    """n times the variance of the mean of the n - 1 highest of n standard normal draws (1.17 at 3, 1.10 at 5):
    what dropping a run's lowest seed costs in precision. Measured once on 400,000 draws with a fixed seed
    (0.2% precise)."""
    draws = np.sort(np.random.default_rng(0).standard_normal((400_000, n)), axis=1)
    return float(n * draws[:, 1:].mean(axis=1).var())


def expected_trimmed(values: list[float], k: int) -> float:
    """The mean of the k - 1 highest of k of ``values`` drawn without replacement, averaged over every such draw:
    the baseline's figure for a run of k seeds under the same recipe (exact, from the order statistics: the
    j-th lowest of k comes from the i-th lowest of n with probability C(i-1, j-1) C(n-i, k-j) / C(n, k))."""
    x, n = np.sort(np.asarray(values, dtype=float)), len(values)
    i = np.arange(1, n + 1)
    return float(np.mean([np.sum(x * comb(i - 1, j - 1) * comb(n - i, k - j)) / comb(n, k) for j in range(2, k + 1)]))


def _centres(base: dict, now: dict, drop_lowest: bool) -> tuple[float, float, float]:
    """(the run's figure, the baseline's figure for it, the run's variance factor c): with ``drop_lowest``, for a
    run of 3 or more recorded seeds, its mean without its lowest seed (against the baseline's mean where the
    baseline recorded fewer seeds than the run); else the means."""
    seeds = sorted(now.get("seeds", {}).values())
    if not drop_lowest or len(seeds) < 3:
        return now["mean"], base["mean"], 1.0
    recorded = list(base.get("seeds", {}).values())
    reference = expected_trimmed(recorded, len(seeds)) if len(recorded) >= len(seeds) else base["mean"]
    return float(np.mean(seeds[1:])), reference, trimmed_variance(len(seeds))


def _noise(base: dict, now: dict, pooled: tuple[float, int] | None) -> tuple[float, int]:
    """(sigma, df) for one comparison: the variant's own spread, both sides pooled; the other variants' only
    where it has none (one seed on each side); (0, 0) without either."""
    own = pooled_spread({"v": {"k": base}}, {"v": {"k": now}}).get("k")
    return own or pooled or (0.0, 0)


def compare(baseline: dict[str, dict[str, dict]], current: dict[str, dict[str, dict]], alpha: float,
            floor: dict[str, float], run: set[str] | None = None, power: float = 0.8,
            deterministic: frozenset[str] = frozenset(), drop_lowest: bool = True) -> Verdict:
    """Baseline and current are {variant: {metric key: summary}}; every current variant is judged by the rule
    above (``alpha``: family-wise). A baseline variant outside ``run`` (the variants params.yaml runs;
    default: all) gets one "not run" row: said, not failed, since leaving a variant out is a params change a
    reviewer sees. Variants in ``deterministic`` are held to the floor; ``drop_lowest``: see the rule above."""
    pooled = pooled_spread(baseline, current)
    rows, pending = [], []
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
            sigma, df = (0.0, 0) if variant in deterministic else _noise(base, now, pooled.get(key))
            pending.append((len(rows), base, now, sigma, df, floor.get(key.rsplit(".", 1)[-1], 0.0)))
            rows.append({**row, "now": _fmt(now, trimmed=drop_lowest)})
    m = sum(1 for *_, sigma, _df, _floor in pending if sigma > 0)
    unestimated = [(rows[i]["variant"], rows[i]["metric"]) for i, *_, sigma, _df, _floor in pending
                   if sigma == 0 and rows[i]["variant"] not in deterministic]
    for i, base, now, sigma, df, least in pending:
        figure, reference, c = _centres(base, now, drop_lowest)
        se = sigma * math.sqrt(1 / base["n"] + c / now["n"])
        margin, detects = least, least
        if se > 0:
            margin = max(least, float(sps.t.ppf(1 - alpha / m, df)) * se)
            detects = margin + float(sps.t.ppf(power, df)) * se
        delta = figure - reference
        verdict = "REGRESSED" if delta < -margin else "improved" if delta > margin else "ok"
        if c != 1.0:  # the baseline's figure for a run judged without its lowest seed
            rows[i]["baseline"] = rows[i]["baseline"][:-1] + f"; {reference:.5g} as {now['n']} less the lowest)"
        rows[i].update(delta=round(delta, 5), margin=round(margin, 5), detects=round(detects, 5), verdict=verdict)
    table = pd.DataFrame(rows, columns=["variant", "metric", "baseline", "now", "delta", "margin", "detects",
                                        "verdict"])
    return Verdict(table, bool(table.verdict.isin(FAILING).any()) or table.empty, m, unestimated)


def _fmt(s: dict, trimmed: bool = False) -> str:
    seeds = sorted(s.get("seeds", {}).values())
    less = f"; {np.mean(seeds[1:]):.5g} less the lowest" if trimmed and len(seeds) >= 3 else ""
    return f"{s['mean']:.5g} ± {s['std']:.2g} (n={s['n']}{less})"
