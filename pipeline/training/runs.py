"""Which trainings a variant's train stage runs: one per seed (and per scale for SR), each holding the variant as
it runs there. Kept out of the training loop's imports, so how the list is made is no part of a training's key."""

from __future__ import annotations

from pipeline import tasks
from pipeline.config.schema import Params
from pipeline.training.spec import Training


def variant_trainings(name: str, p: Params) -> list[Training]:
    """Seeds x scales of variant ``name``, each with its epochs at its scale (``optim.epochs_at_scale``)."""
    variant = p.variants[name]
    scales = tasks.training(variant.task).scales(p)
    return [Training(name, variant.at_scale(x), p, s, x) for s in p.seeds for x in scales]
