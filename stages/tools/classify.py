"""classify IMAGE...: the class of each of a user's own images (any size or mode, digits of either
polarity) by an exported classifier; everything it needs comes from the model's model.json."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.core.atomic import write_json
from pipeline.tasks.classification.predict import classify, read_digit
from stages.common import UsageError, command, human_echo
from stages.tools.args import check_json_out, check_range
from stages.tools.batch import Batch
from stages.tools.model_ref import MODEL_HELP, load


@command
def classify_cmd(
    images: list[Path] = typer.Argument(..., help="image files (PNG, JPEG, ...)"),
    model: str = typer.Option("lstm_row", help=MODEL_HELP),
    seed: int | None = typer.Option(None, help="which seed's model of a trained variant (default: the lowest)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write {model, images: [{file, class, "
                                         "probability}], refused: [{file, error}]} here ('-': stdout)"),
) -> None:
    """Classify images with a trained classifier: one line per image, class and probability. An image that
    cannot be read (or has no ink) is one error line; the others are still answered, and the exit code is 1."""
    check_json_out(json_out)
    check_range("--seed", seed, 0)
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise UsageError(f"not a file: {', '.join(missing)}")
    net, spec = load(model, "classification", seed=seed)
    if "input" not in spec:
        raise UsageError(f"--model {model}: exported before model.json recorded its input preparation; retrain it")
    say = human_echo(json_out)
    batch = Batch(images, read_digit)
    results = []
    for path, digit in batch:  # each answer printed as it comes: the progress of a long list
        [(name, probability)] = classify(net, spec, [digit])
        results.append({"file": str(path), "class": name, "probability": round(probability, 6)})
        say(f"{path}\t{name}\t{probability:.4f}")
    if json_out:
        write_json(json_out, {"model": model, "images": results, "refused": batch.refused})
    batch.finish()
