"""Which trainings a train stage runs: one per seed (and per scale for SR), each holding the variant as
it runs there. Kept out of the training loop's imports, so how the list is made is no part of a training's key."""

from __future__ import annotations

from pipeline import tasks
from pipeline.config.schema import Params, RunLists
from pipeline.core.errors import ParamsError
from pipeline.training.spec import Training


def variant_trainings(name: str, p: Params) -> list[Training]:
    """Seeds x scales of variant ``name``, each with its epochs at its scale (``optim.epochs_at_scale``)."""
    variant = p.variants[name]
    scales = tasks.training(variant.task).scales(p)
    return [Training(name, variant.at_scale(x), p, s, x) for s in p.seeds for x in scales]


def stage_trainings(target: str, p: Params) -> dict[str, list[Training]]:
    """{variant: its trainings} of `train TARGET`: a task's variants in ``run`` (the stage dvc.yaml runs), or one
    variant."""
    if target in RunLists.model_fields:
        return {name: variant_trainings(name, p) for name in getattr(p.run, target)}
    if target in p.variants:
        return {target: variant_trainings(target, p)}
    raise ParamsError(f"unknown task or variant '{target}', expected one of {', '.join(RunLists.model_fields)}, "
                      f"{', '.join(p.variants)}")
