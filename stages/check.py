"""check: the CI regression gate over metrics/<variant>.json; --update rewrites the baseline."""

from __future__ import annotations

import json

import typer

from pipeline.atomic import write_json
from pipeline.config import flatten
from pipeline.gate import compare
from stages.common import METRICS, ROOT, UsageError, command, params


def current_metrics(names: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        path = METRICS / f"{name}.json"
        if path.exists():
            out[name] = flatten(json.loads(path.read_text()))
    return out


@command
def check(update: bool = typer.Option(False, "--update", help="deliberately make the current metrics the baseline")
          ) -> None:
    """Compare every enabled variant's metrics with the baseline; exit 1 on a regression."""
    p = params()
    names = [*p.run.classification, *p.run.sr, "bicubic"]
    current = current_metrics(names)
    baseline_path = ROOT / p.check.baseline
    if update:
        missing = [n for n in names if n not in current]
        if missing:
            raise UsageError(f"no metrics for {', '.join(missing)}: run `dvc repro` first")
        write_json(baseline_path, current)
        typer.echo(f"baseline {p.check.baseline} updated with {len(current)} variants")
        return
    if not baseline_path.exists():
        raise UsageError(f"no baseline at {p.check.baseline}: run `lstmvision check --update` and commit it")
    baseline = {k: v for k, v in json.loads(baseline_path.read_text()).items() if k in names}
    verdict = compare(baseline, current, p.check.tolerance)
    typer.echo(verdict.table.to_markdown(index=False, floatfmt="g"))
    if verdict.failed:
        bad = verdict.table[verdict.table.verdict.isin(["REGRESSED", "MISSING"])]
        typer.echo(f"error: {len(bad)} metric(s) regressed or missing against {p.check.baseline}", err=True)
        raise typer.Exit(1)
    typer.echo(f"no regression against {p.check.baseline}")
