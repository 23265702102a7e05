"""check: the CI regression gate over metrics/<variant>.json; --update rewrites the baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.config.architectures import BASELINES
from pipeline.core.atomic import write_json
from pipeline.core.errors import InputError
from pipeline.report.calibration import alarm_sources, calibrate, describe, merge
from pipeline.report.gate import FAILING, compare, summaries
from stages.common import METRICS, ROOT, UsageError, command, params

# The drops --calibrate injects where a profile promises none (check.detect null): the default's promise.
YARDSTICK = {"accuracy": 0.01, "true_class_prob": 0.0185, "psnr": 0.2}


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
    figure = ("a run of 3 or more seeds by its mean without its lowest seed, against what the baseline's seeds "
              "give for as many, else by means" if p.check.drop_lowest else "by means")
    return (f"family-wise false-alarm rate {p.check.alpha} per check run: {verdict.comparisons} metrics with seed "
            f"noise, each one-sided at {p.check.alpha / max(verdict.comparisons, 1):.2g} (Bonferroni); `delta`: "
            f"{figure}; `detects`: the drop found with {p.check.power:.0%} power (pipeline/report/gate.py)")


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


def _as_run(metrics: dict[str, dict[str, dict]], n: int) -> dict[str, dict[str, dict]]:
    """The same means and spreads as if measured on n seeds (deterministic figures keep their one), with n
    seeds recorded (all at the mean), so the gate judges it as it will a run of n."""
    def projected(s: dict) -> dict:
        if s["n"] == 1:
            return s
        return {**s, "n": n, "seeds": {str(i): s["mean"] for i in range(1, n + 1)}}
    return {v: {k: projected(s) for k, s in m.items()} for v, m in metrics.items()}


def _baseline(p) -> dict[str, dict[str, dict]]:
    path = ROOT / p.check.baseline
    if not path.exists():
        raise UsageError(f"no baseline at {p.check.baseline}: run `lstmvision check --update` and commit it")
    raw = _read(path)
    if not isinstance(raw, dict):
        raise InputError(f"{p.check.baseline}: expected a mapping of variants")
    # Entries are {metric key: {mean, std, n, seeds}}; flattening them gives the keys the metrics files give.
    return {k: summaries(v, f"{p.check.baseline}: {k}") for k, v in raw.items()}


def _calibrate(p, current, rule, trials: int) -> None:
    """Print the rule's false-alarm rate and power measured by resampling the recorded seeds."""
    baseline = _baseline(p)
    n_base = min(s["n"] for v, m in baseline.items() if v not in BASELINES for s in m.values())
    shift = {k: v for k, v in p.check.detect.items() if v is not None} or YARDSTICK
    result = calibrate(merge(baseline, current), n_base, len(p.seeds), trials, shift=shift, **rule)
    typer.echo(result.detection.to_markdown(index=False, floatfmt="g"))
    if result.skipped:
        typer.echo(f"left out (fewer than {n_base + len(p.seeds)} recorded seeds): {', '.join(result.skipped)}")
    typer.echo(describe(result) + f"; the rule promises at most {p.check.alpha:.0%}")
    if result.alarmed:
        typer.echo(alarm_sources(result))


@command
def check(update: bool = typer.Option(False, "--update", help="deliberately make the current metrics the baseline"),
          weak: bool = typer.Option(False, "--weak", help="with --update: write the baseline even where it gates "
                                    "more weakly than check.detect promises (say so in the commit)"),
          against: Annotated[int | None, typer.Option(
              "--against", min=1, help="with --update: the number of seeds the gated runs train (default: "
              "params.yaml's seeds); a baseline is best trained on more seeds, disjoint from them")] = None,
          calibrate_trials: Annotated[int | None, typer.Option(
              "--calibrate", min=1, help="measure the rule instead: resample this many check runs from the seeds "
              "recorded in the baseline and metrics/ (false alarms; detection of check.detect's drops)")] = None,
          ) -> None:
    """Compare every enabled variant's metrics (mean and spread over seeds) with the baseline; exit 1 on a
    regression."""
    p = params()
    names = [*p.run.classification, *p.run.sr, "bicubic"]
    current = current_metrics(names)
    rule = {"alpha": p.check.alpha, "floor": p.check.floor, "power": p.check.power,
            "deterministic": frozenset(BASELINES), "drop_lowest": p.check.drop_lowest}
    if calibrate_trials:
        _calibrate(p, current, rule, calibrate_trials)
        return
    if update:
        # What this baseline can detect against a run of `against` seeds with the same spread.
        verdict = compare(current, _as_run(current, against or len(p.seeds)), run=set(names), **rule)
        weakness = _weakness(p, verdict)
        if weakness and not weak:
            raise UsageError(f"{p.check.baseline} not written: {len(weakness)} metric(s) would be gated more weakly "
                             f"than params promise ({weakness[0]}); train more seeds, or --weak")
        write_json(ROOT / p.check.baseline, current)
        typer.echo(verdict.table.drop(columns=["now", "delta", "verdict"]).to_markdown(index=False, floatfmt="g"))
        typer.echo(_rule(p, verdict))
        typer.echo(f"baseline {p.check.baseline} updated with {len(current)} variants"
                   + (f"; weaker than promised: {'; '.join(weakness)}" if weakness else ""))
        return
    verdict = compare(_baseline(p), current, run=set(names), **rule)
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
