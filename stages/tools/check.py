"""check: the CI regression gate over metrics/<variant>.json; --update rewrites the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.config.architectures import BASELINES
from pipeline.core.atomic import write_json
from pipeline.core.errors import InputError
from pipeline.report.gate import FAILING, compare, summaries
from stages.common import METRICS, ROOT, UsageError, command, params


def _read(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def current_metrics(names: list[str]) -> dict[str, dict[str, dict]]:
    missing = [n for n in names if not (METRICS / f"{n}.json").exists()]
    if missing:
        raise UsageError(f"no metrics for {', '.join(missing)}: run `dvc repro` first")
    return {n: summaries(_read(METRICS / f"{n}.json"), str(METRICS / f"{n}.json")) for n in names}


def _rule(p, verdict) -> str:
    return (f"family-wise false-alarm rate {p.check.alpha} per check run: {verdict.comparisons} metrics with seed "
            f"noise, each one-sided at {p.check.alpha / max(verdict.comparisons, 1):.2g} (Bonferroni); `detects`: "
            f"the drop found with {p.check.power:.0%} power (pipeline/report/gate.py)")


def _weakness(p, verdict) -> list[str]:
    """Why a baseline would gate more weakly than params promise: a trained variant's metric with no estimate
    of its seed noise, or a detectable drop larger than check.detect allows."""
    table = verdict.table.dropna(subset=["detects"])
    found = [f"{v} {k}: no estimate of its seed noise (one seed, and no other variant's spread to pool)"
             for v, k in verdict.unestimated]
    for row in table.itertuples():
        promise = p.check.detect.get(row.metric.rsplit(".", 1)[-1])
        if promise is not None and row.detects > promise and row.variant not in BASELINES:
            found.append(f"{row.variant} {row.metric} detects a drop of {row.detects:g} > check.detect {promise:g}")
    return found


@command
def check(update: bool = typer.Option(False, "--update", help="deliberately make the current metrics the baseline"),
          weak: bool = typer.Option(False, "--weak", help="with --update: write the baseline even where it gates "
                                    "more weakly than check.detect promises (say so in the commit)")) -> None:
    """Compare every enabled variant's metrics (mean and spread over seeds) with the baseline; exit 1 on a
    regression."""
    p = params()
    names = [*p.run.classification, *p.run.sr, "bicubic"]
    current = current_metrics(names)
    baseline_path = ROOT / p.check.baseline
    rule = {"alpha": p.check.alpha, "floor": p.check.floor, "power": p.check.power,
            "deterministic": frozenset(BASELINES)}
    if update:
        # What this baseline can detect against a rerun with the same seeds.
        verdict = compare(current, current, run=set(names), **rule)
        weakness = _weakness(p, verdict)
        if weakness and not weak:
            raise UsageError(f"{p.check.baseline} not written: {len(weakness)} metric(s) would be gated more weakly "
                             f"than params promise ({weakness[0]}); train more seeds, or --weak")
        write_json(baseline_path, current)
        typer.echo(verdict.table.drop(columns=["now", "delta", "verdict"]).to_markdown(index=False, floatfmt="g"))
        typer.echo(_rule(p, verdict))
        typer.echo(f"baseline {p.check.baseline} updated with {len(current)} variants"
                   + (f"; weaker than promised: {'; '.join(weakness)}" if weakness else ""))
        return
    if not baseline_path.exists():
        raise UsageError(f"no baseline at {p.check.baseline}: run `lstmvision check --update` and commit it")
    raw = _read(baseline_path)
    if not isinstance(raw, dict):
        raise InputError(f"{p.check.baseline}: expected a mapping of variants")
    # Entries are {metric key: {mean, std, n}}; flattening them gives the keys the metrics files give.
    baseline = {k: summaries(v, f"{p.check.baseline}: {k}") for k, v in raw.items()}
    verdict = compare(baseline, current, run=set(names), **rule)
    typer.echo(verdict.table.to_markdown(index=False, floatfmt="g"))
    typer.echo(_rule(p, verdict))
    if verdict.failed:
        bad = verdict.table[verdict.table.verdict.isin(FAILING)]
        typer.echo(f"error: {len(bad)} metric(s) regressed, missing or without baseline against "
                   f"{p.check.baseline}", err=True)
        raise typer.Exit(1)
    not_run = verdict.table.variant[verdict.table.verdict == "not run"].tolist()
    skipped = f"; not run (not in params.yaml's run lists): {', '.join(not_run)}" if not_run else ""
    typer.echo(f"no regression against {p.check.baseline}{skipped}")
