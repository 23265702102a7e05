"""The report's calls: ranks where ties share a rank, each variant against the leader, and how its
figures are written (mean ± std (n)); the tests behind them are in pipeline.report.stats."""

from __future__ import annotations

import itertools

from pipeline.report.stats import holm


def pm(s: dict, digits: int) -> str:
    """A summary as 'mean ± std (n)'."""
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} ({s['n']})"


def calls(means: dict[str, float], pvalue, alpha: float) -> tuple[dict[str, int], dict[str, str]]:
    """Ranks where ties share a rank, and each variant's call against the leader.

    ``pvalue(a, b)`` is the test of one pair; p-values are Holm-adjusted over all
    pairs. A variant's rank is 1 + the number of variants significantly better
    than it, so variants the test cannot separate share a rank.
    """
    names = sorted(means, key=means.get, reverse=True)
    pairs = list(itertools.combinations(names, 2))
    adjusted = dict(zip(pairs, holm([pvalue(a, b) for a, b in pairs]), strict=True)) if pairs else {}

    def p_of(a, b):
        return adjusted.get((a, b), adjusted.get((b, a), 1.0))

    rank = {n: 1 + sum(1 for m in names if means[m] > means[n] and p_of(m, n) < alpha) for n in names}
    leader = names[0]
    call = {leader: "leader"}
    for n in names[1:]:
        p = p_of(leader, n)
        call[n] = f"{'worse' if p < alpha else 'tie'} (p={p:.2g})"
    return rank, call


def budget_note(epochs: dict[str, dict[str, int]]) -> str:
    """Whether the calls compare at equal cost: ``epochs`` per group (an SR scale, or one group "") per variant;
    the calls compare within a group, so the budgets must be equal within each one."""
    if any(len(set(group.values())) > 1 for group in epochs.values()):
        return ("Unequal budgets (see `epochs`): the calls compare trained models at their own budgets, "
                "not architectures at equal cost.")
    each = {label: next(iter(group.values())) for label, group in epochs.items()}
    if len(set(each.values())) == 1:
        return f"Equal budget: every variant trained {next(iter(each.values()))} epochs."
    return "Equal budget at each scale: every variant trained " + ", ".join(
        f"{n} epochs at {label}" for label, n in each.items()) + "."
