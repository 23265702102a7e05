"""check: the CI regression gate over metrics/<variant>.json; --update rewrites the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import typer

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


@command
def check(update: bool = typer.Option(False, "--update", help="deliberately make the current metrics the baseline")
          ) -> None:
    """Compare every enabled variant's metrics (mean and spread over seeds) with the baseline; exit 1 on a
    regression."""
    p = params()
    names = [*p.run.classification, *p.run.sr, "bicubic"]
    current = current_metrics(names)
    baseline_path = ROOT / p.check.baseline
    if update:
        write_json(baseline_path, current)
        typer.echo(f"baseline {p.check.baseline} updated with {len(current)} variants")
        return
    if not baseline_path.exists():
        raise UsageError(f"no baseline at {p.check.baseline}: run `lstmvision check --update` and commit it")
    raw = _read(baseline_path)
    if not isinstance(raw, dict):
        raise InputError(f"{p.check.baseline}: expected a mapping of variants")
    # Entries are {metric key: {mean, std, n}}; flattening them gives the keys the metrics files give.
    baseline = {k: summaries(v, f"{p.check.baseline}: {k}") for k, v in raw.items()}
    verdict = compare(baseline, current, p.check.alpha, p.check.floor, run=set(names))
    typer.echo(verdict.table.to_markdown(index=False, floatfmt="g"))
    if verdict.failed:
        bad = verdict.table[verdict.table.verdict.isin(FAILING)]
        typer.echo(f"error: {len(bad)} metric(s) regressed, missing or without baseline against "
                   f"{p.check.baseline} (margins: one-sided Welch t at alpha {p.check.alpha})", err=True)
        raise typer.Exit(1)
    not_run = verdict.table.variant[verdict.table.verdict == "not run"].tolist()
    skipped = f"; not run (not in params.yaml's run lists): {', '.join(not_run)}" if not_run else ""
    typer.echo(f"no regression against {p.check.baseline} (alpha {p.check.alpha} per metric){skipped}")
