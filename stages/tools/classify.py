"""classify IMAGE...: the class of each of a user's own images (any size or mode, digits of either
polarity) by an exported classifier; everything it needs comes from the model's model.json."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.core.atomic import write_json
from pipeline.tasks.classification.predict import classify, read_digit
from stages.common import UsageError, command
from stages.tools.args import check_json_out, check_range
from stages.tools.model_ref import MODEL_HELP, load


@command
def classify_cmd(
    images: list[Path] = typer.Argument(..., help="image files (PNG, JPEG, ...)"),
    model: str = typer.Option("lstm_row", help=MODEL_HELP),
    seed: int | None = typer.Option(None, help="which seed's model of a trained variant (default: the lowest)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write {model, images: [{file, class, "
                                         "probability}]} here ('-': stdout)"),
) -> None:
    """Classify images with a trained classifier: one line per image, class and probability."""
    check_json_out(json_out)
    check_range("--seed", seed, 0)
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise UsageError(f"not a file: {', '.join(missing)}")
    net, spec = load(model, "classification", seed=seed)
    if "input" not in spec:
        raise UsageError(f"--model {model}: exported before model.json recorded its input preparation; retrain it")
    results = [{"file": str(p), "class": name, "probability": round(prob, 6)}
               for p in images for name, prob in classify(net, spec, [read_digit(p)])]
    for r in results:
        typer.echo(f"{r['file']}\t{r['class']}\t{r['probability']:.4f}")
    if json_out:
        write_json(json_out, {"model": model, "images": results})
