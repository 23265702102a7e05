"""report: metrics, runs and curves -> reports/report.{md,html} (+ figures), metrics/summary.json,
plots/compare/<task>.csv (one `dvc plots show` chart per task), MLflow.

Each run's test figures are attached to it here, once for all variants, so
that the evaluate stages stay free of MLflow's start-up cost.
"""

from __future__ import annotations

import json

import pandas as pd

from pipeline.core.atomic import atomic_dir, write_json, write_text
from pipeline.report.champions import champions, crown
from pipeline.report.render import build_report, html_page
from pipeline.report.tables import comparison_curves
from pipeline.tracking.results import log_test_metrics
from pipeline.tracking.store import git_commit, resolve_store
from stages.common import EVAL, METRICS, MODELS, PLOTS, RAW, REPORTS, ROOT, command, params


@command
def main() -> None:
    """Write the leaderboard report of every enabled variant: mean ± std over seeds, ties called ties."""
    p = params()
    store = resolve_store(p.tracking, ROOT)  # an unreachable server fails before anything is written
    names = [*p.run.classification, *p.run.sr]
    curves = {n: pd.read_csv(PLOTS / "train" / p.variants[n].task / f"{n}.csv") for n in names}
    with atomic_dir(REPORTS) as out:
        bench = json.loads((METRICS / "bench.json").read_text())
        text, summary = build_report(p, curves, MODELS, EVAL, RAW, bench, out, git_commit(ROOT))
        (out / "report.md").write_text(text)
        (out / "report.html").write_text(html_page(text, "lstmvision report", out))
    write_json(METRICS / "summary.json", summary)
    for task, task_names in (("classification", p.run.classification), ("sr", p.run.sr)):
        table = comparison_curves({n: curves[n] for n in task_names})
        write_text(PLOTS / "compare" / f"{task}.csv", table.to_csv(index=False))
    log_test_metrics(store, [(json.loads((MODELS / p.variants[n].task / n / "runs.json").read_text()),
                              json.loads((EVAL / n / "metrics.json").read_text())) for n in names])
    crowned = crown(store, champions(summary, METRICS, MODELS, p.data.sr.test))
    print(f"wrote {REPORTS}/report.md and report.html; test metrics logged to the MLflow runs of {len(names)} "
          f"variants x {len(p.seeds)} seeds; champion: {', '.join(crowned) or 'none registered'}")
