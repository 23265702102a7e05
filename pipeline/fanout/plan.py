"""What a fanout runs: the stages before the trainings, the train stages `dvc repro TARGETS` would run, and
their trainings that have not finished, read from DVC's own view of the pipeline."""

from __future__ import annotations

import shlex
from pathlib import Path

from pipeline.config.schema import Params
from pipeline.core.errors import ParamsError, first_line
from pipeline.training.loop import result_file
from pipeline.training.runs import stage_trainings
from pipeline.training.spec import Places

from .jobs import Job

TRAIN_COMMAND = ["python", "-m", "stages", "train"]


def _target(cmd: str | list[str]) -> str | None:
    """What a stage trains (a task, or one variant), when its command is `python -m stages train TARGET`."""
    words = shlex.split(cmd if isinstance(cmd, str) else " ".join(cmd))
    return words[4] if len(words) == 5 and words[:4] == TRAIN_COMMAND else None


def train_stages(root: Path, targets: list[str]) -> tuple[list[str], dict[str, str]]:
    """(the stages the train stages depend on, {train stage: its task or variant}) among TARGETS and what they
    depend on, as `dvc repro TARGETS` collects them (no targets: the whole pipeline)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        try:
            stages = ({s.addressing: s for t in targets for s in repo.stage.collect(t, with_deps=True)} if targets
                      else {s.addressing: s for s in repo.index.stages})
        except DvcException as exc:
            raise ParamsError(f"fanout {' '.join(targets)}: {first_line(exc)}") from None
        trains = {a: v for a, s in stages.items() if (v := _target(s.cmd))}
        before = {s.addressing for a in trains for s in repo.stage.collect(a, with_deps=True)} - trains.keys()
    return sorted(before), trains


def stale(root: Path, stages: list[str]) -> list[str]:
    """Those of ``stages`` that `dvc repro` would run now (`dvc status`)."""
    if not stages:
        return []
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        changed = repo.status(targets=stages)
    return [s for s in stages if s in changed]


def pending(trains: dict[str, str], p: Params, places: Places) -> list[Job]:
    """Every training of these train stages (seeds x scales) whose result is not in its work folder."""
    jobs = []
    for stage, name in trains.items():
        for t in (t for ts in stage_trainings(name, p).values() for t in ts):
            done = places.root / result_file(t, places)
            if not done.exists():
                jobs.append(Job(t, stage, done))
    return jobs
