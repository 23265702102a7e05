"""The statistics behind the report's calls and the regression gate, stated in one place.

* Spread: mean and sample standard deviation (ddof 1) over seeds, with n (pipeline.tasks.summary).
* Classifiers, A vs B: exact McNemar test (two-sided binomial on the discordant
  pairs) over per-image correctness, pairs matched by (image, seed) and pooled
  over seeds. Pooling treats the seeds' pairs as independent, which they are
  not quite (same images): the calls are slightly liberal, not conservative.
* SR, A vs B: Wilcoxon signed-rank test on per-image PSNR differences, pairs
  matched by (image, seed); a deterministic model (bicubic) pairs its one
  value with every seed of the other.
* Many pairs: Holm's step-down correction over all pairs of one table, so the
  family-wise error of a table's "better"/"worse" calls is at most alpha.
"""

from __future__ import annotations

import math
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


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given)."""
    order = np.argsort(pvalues)
    adjusted = np.empty(len(pvalues))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def welch_margin(std_a: float, n_a: int, std_b: float, n_b: int, alpha: float) -> float:
    """One-sided (1 - alpha) critical difference of two means under Welch's t; 0 without any spread."""
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    if va + vb == 0:
        return 0.0
    # Welch-Satterthwaite degrees of freedom; a side measured once contributes no estimate of its own.
    dof_terms = [v**2 / (n - 1) for v, n in ((va, n_a), (vb, n_b)) if n > 1 and v > 0]
    dof = (va + vb) ** 2 / sum(dof_terms) if dof_terms else 1.0
    return float(sps.t.ppf(1 - alpha, dof)) * math.sqrt(va + vb)
