"""Classifier test-set evaluation: every seed's predictions on the test split, accuracy over seeds."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from pipeline.data.batches import batch_loader
from pipeline.tasks.base import Evaluated, Inputs
from pipeline.tasks.classification.data import load_classification
from pipeline.tasks.models import default_device, load_model, model_folder
from pipeline.tasks.summary import summary


@torch.no_grad()
def predict_probabilities(net: torch.nn.Module, loader, device: str = "cpu") -> tuple[np.ndarray, float]:
    """(class probabilities per image, images per second) of ``net`` over a loader of (x, y) batches."""
    net = net.to(device).eval()
    probabilities = []
    started = time.perf_counter()
    for x, _ in loader:
        probabilities.append(torch.softmax(net(x.to(device)), -1).cpu().numpy())
    flat = np.concatenate(probabilities)
    return flat, len(flat) / (time.perf_counter() - started)


def accuracy_metrics(per_image: pd.DataFrame) -> dict:
    """{"accuracy", "true_class_prob": mean/std/n over seeds, "per_class_accuracy": {class: accuracy over all
    seeds}}. true_class_prob, the mean probability given to the right class, moves with accuracy but without
    its per-image all-or-nothing noise: the regression gate sees an undertrained or smaller model by it at
    ~1 point of accuracy where accuracy itself needs ~1.5 (pipeline/report/gate.py)."""
    per_class = per_image.groupby("label").correct.mean()
    by_seed = per_image.groupby("seed", sort=False)
    return {"accuracy": summary(by_seed.correct.mean().to_dict(), 5),
            "true_class_prob": summary(by_seed.true_class_prob.mean().to_dict(), 5),
            "per_class_accuracy": {str(c): round(float(a), 5) for c, a in per_class.items()}}


# A seed whose accuracy a one-sided binomial test cannot place above chance at this level learned nothing.
CHANCE_ALPHA = 1e-3


def no_better_than_chance(per_image: pd.DataFrame) -> dict[str, str]:
    """seed -> one line, for each seed whose test accuracy is no better than chance: the rate of always
    answering the test set's most frequent class (one-sided binomial test at ``CHANCE_ALPHA``)."""
    from scipy.stats import binomtest

    found = {}
    for seed, rows in per_image.groupby("seed", sort=False):
        chance = float(rows.label.value_counts(normalize=True).max())
        correct = int(rows.correct.sum())
        p = binomtest(correct, len(rows), chance, alternative="greater").pvalue
        if p > CHANCE_ALPHA:
            found[str(seed)] = (f"seed {seed}: test accuracy {correct / len(rows):.3f} is no better than chance "
                                f"({chance:.3f}, always the most frequent class; one-sided binomial p = {p:.2g}): "
                                "this model learned nothing (look at its optim settings)")
    return found


def evaluate(name: str, params, inputs: Inputs) -> Evaluated:
    """Every seed's model on the test split (prepared with the data seed, in the model's view)."""
    rows, rates = [], []
    test = None
    for seed in params.seeds:
        net, spec = load_model(model_folder(inputs.models / name, seed, None))
        test = test or load_classification(inputs.prepared / "classification", spec["view"], params.seed)["test"]
        probabilities, rate = predict_probabilities(net, batch_loader(test, 256), default_device())
        labels, predicted = test.tensors[1].numpy(), probabilities.argmax(-1)
        rows.append(pd.DataFrame({"seed": str(seed), "image": np.arange(len(labels)), "label": labels,
                                  "predicted": predicted, "correct": predicted == labels,
                                  "true_class_prob": probabilities[np.arange(len(labels)), labels]}))
        rates.append(rate)
    per_image = pd.concat(rows, ignore_index=True)
    return Evaluated(per_image, accuracy_metrics(per_image), {"images_per_s": float(np.mean(rates))}, {},
                     no_better_than_chance(per_image))
