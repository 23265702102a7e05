"""Each task's champion: the report's leader, whose best seed's registered version gets the alias
``champion``, so that one name per task serves (``models:/<name>@champion``)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.tracking.registry import registered_name
from pipeline.tracking.store import Store, one_line_errors

ALIAS = "champion"


def champions(summary: dict, metrics_dir: Path, models_dir: Path, sr_test: str) -> list[tuple[list[str], str, str]]:
    """Each task's (and SR scale's) contest by the report's evidence: (every competing registered model,
    the winner's, the winning run). The winner is the report's leader (rank 1, best mean; for SR on the
    held-out set ``sr_test``); its version is the run of its best seed there."""
    contests = []
    tables = {"classification": summary.get("classification", []),
              "sr": [r for r in summary.get("sr", []) if r["set"] == sr_test and r["variant"] != "bicubic"]}
    for task, rows in tables.items():
        for scale in sorted({r.get("scale") for r in rows}, key=str):
            group = [r for r in rows if r.get("scale") == scale]
            leader = min(group, key=lambda r: (r["rank"], -r["mean"]))["variant"]
            test = json.loads((metrics_dir / f"{leader}.json").read_text())["test"]
            seeds = (test["accuracy"] if task == "classification" else test[sr_test][scale]["psnr"])["seeds"]
            best_seed = max(seeds, key=seeds.get)
            number = int(scale[1:]) if task == "sr" else None
            run = next(r for r in json.loads((models_dir / task / leader / "runs.json").read_text())
                       if str(r["seed"]) == best_seed and r["scale"] == number)
            contests.append(([registered_name(r["variant"], number) for r in group],
                             registered_name(leader, number), run["run_id"]))
    return contests


def crown(store: Store, contests: list[tuple[list[str], str, str]]) -> list[str]:
    """Alias ``champion`` on each winner's version made by the winning run, and off every other
    competitor's registered model, so that one name per task serves. Returns "name@version" per winner."""
    import mlflow

    client = mlflow.MlflowClient(store.uri)
    crowned = []
    with one_line_errors(store):
        for competitors, winner, run_id in contests:
            versions = client.search_model_versions(f"name = '{winner}' and run_id = '{run_id}'")
            if not versions:  # trained before models were registered: nothing to serve
                continue
            for name in competitors:
                if name != winner:
                    try:
                        client.delete_registered_model_alias(name, ALIAS)
                    except mlflow.exceptions.MlflowException:  # never crowned, or no such model
                        pass
            client.set_registered_model_alias(winner, ALIAS, versions[0].version)
            crowned.append(f"{winner}@{versions[0].version}")
    return crowned
