"""The statistics behind the report's calls and the regression gate, stated in one place.

* Spread: mean and sample standard deviation (ddof 1) over seeds, with n (pipeline.tasks.summary).
* Classifiers, A vs B: exact McNemar test (two-sided binomial on the discordant
  pairs) over per-image correctness, pairs matched by (image, seed) and pooled
  over seeds. Pooling treats the seeds' pairs as independent, which they are
  not quite (same images): the calls are slightly liberal, not conservative.
* SR, A vs B: Wilcoxon signed-rank test on per-image PSNR differences, pairs
  matched by (image, seed); a deterministic model (bicubic) pairs its one
  value with every seed of the other.
* SR, an LSTM variant vs its convolutional ablation (the report's recurrence table): the same
  signed-rank test, per scale, on per-image PSNR differences pooled over every scored set and the
  seeds, pairs matched by (set, image, seed); the direction is the side with the larger rank sum.
  The same images recur across seeds, so, as for the classifiers, the pooled pairs are not quite
  independent and the calls lean liberal.
* Many pairs: Holm's step-down correction over all pairs of one table, so the
  family-wise error of a table's "better"/"worse" calls is at most alpha.
* The regression gate (pipeline.report.gate): for classifiers, test accuracy and the mean probability of
  the true class; for every gated metric a one-sided two-sample t on the
  difference of means over seeds, each variant's spread from both sides' seeds
  (pooled across variants only for a variant seen once on each side),
  Bonferroni over every gated metric of a check run, against a baseline trained
  on many seeds disjoint from the run's; its docstring states the rule, its
  assumptions and the detectable effect it prints, and
  pipeline.report.calibration measures it on recorded seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of paired correctness arrays."""
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    if a_only + b_only == 0:
        return 1.0
    return float(sps.binomtest(a_only, a_only + b_only, 0.5).pvalue)


def signed_rank(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (1.0 when all are zero)."""
    d = np.asarray(differences, dtype=float)
    if not np.any(d != 0):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="wilcox").pvalue)


def rank_direction(differences: np.ndarray) -> int:
    """The side the signed-rank test leans to: +1 when the positive differences carry the larger rank sum, -1
    when the negative ones do, 0 when neither (a mean can point the other way on skewed differences)."""
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    return int(np.sign(ranks[d > 0].sum() - ranks[d < 0].sum()))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given)."""
    order = np.argsort(pvalues)
    adjusted = np.empty(len(pvalues))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()
