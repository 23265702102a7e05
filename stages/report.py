"""report: metrics, runs and curves -> reports/report.{md,html} (+ figures), metrics/summary.json, MLflow.

Each variant's test figures are attached to its training runs here, once for
all variants, so that the evaluate stages stay free of MLflow's start-up cost.
"""

from __future__ import annotations

import json

import pandas as pd

from pipeline.atomic import atomic_dir, write_json
from pipeline.images import load_image
from pipeline.report import (
    CLS_REFERENCE,
    SR_REFERENCE,
    classification_table,
    html_page,
    markdown,
    plot_crops,
    plot_curves,
    plot_quality_vs_params,
    sr_table,
    variant_colours,
)
from pipeline.tracking import Store, log_test_metrics, resolve_store
from stages.common import EVAL, METRICS, MODELS, PLOTS, RAW, REPORTS, ROOT, command, params


def _curves(names: list[str]) -> dict[str, pd.DataFrame]:
    return {n: pd.read_csv(PLOTS / "train" / f"{n}.csv") for n in names}


def _publish(names: list[str], store: Store) -> None:
    log_test_metrics(store, [(json.loads((MODELS / n / "runs.json").read_text()),
                              json.loads((EVAL / n / "metrics.json").read_text())["test"]) for n in names])


@command
def report() -> None:
    """Write the leaderboard report of every enabled variant."""
    p = params()
    store = resolve_store(p.tracking, ROOT)  # an unreachable server fails before anything is written
    cls_names, sr_names = p.run.classification, p.run.sr
    cls = classification_table(cls_names, MODELS, EVAL)
    sr = sr_table(sr_names, MODELS, EVAL)
    scale = p.data.sr.scales[0]
    with atomic_dir(REPORTS) as out:
        fig = out / "figures"
        fig.mkdir()
        cls_colours, sr_colours = variant_colours(cls_names), variant_colours([*sr_names, SR_REFERENCE])
        plot_curves(_curves(cls_names), "val_acc", cls_colours, fig / "classification_curves.png")
        plot_curves(_curves(sr_names), "val_psnr", sr_colours, fig / "sr_curves.png")
        plot_quality_vs_params(cls, "accuracy", cls_colours, fig / "classification_quality_vs_params.png")
        held_out = sr[(sr.set == p.data.sr.test) & (sr.scale == f"x{scale}")]
        plot_quality_vs_params(held_out, "psnr", sr_colours, fig / "sr_quality_vs_params.png")
        sample = sorted((EVAL / SR_REFERENCE).glob(f"x{scale}_*.png"))[0]
        truth = next(q for q in (RAW / p.data.sr.test).iterdir() if q.stem == sample.stem.split("_", 1)[1])
        panels = [(n, load_image(EVAL / n / sample.name)) for n in [SR_REFERENCE, *sr_names]]
        plot_crops(panels + [("ground truth", load_image(truth))], p.report.crop_size, fig / "sr_crops.png")
        text = f"""# lstmvision report

## Classification ({p.data.classification.source}, test split)

Accuracy on the held-out test split; `vs_{CLS_REFERENCE}` is the difference to the row LSTM.
Throughput is test-set inference on this machine.

{markdown(cls)}

![validation curves](figures/classification_curves.png)
![accuracy vs parameters](figures/classification_quality_vs_params.png)

## Super-resolution (Y channel, {'/'.join(f'x{s}' for s in p.data.sr.scales)})

PSNR/SSIM under the published protocol: MATLAB-bicubic degradation, 8-bit output,
Y of BT.601 YCbCr, `scale` pixels cropped from each border. `psnr_vs_{SR_REFERENCE}`
is the gain over bicubic on the same set and scale.

{markdown(sr)}

![validation curves](figures/sr_curves.png)
![PSNR vs parameters](figures/sr_quality_vs_params.png)

Centre crop of `{truth.name}` at x{scale}:

![crops](figures/sr_crops.png)
"""
        (out / "report.md").write_text(text)
        (out / "report.html").write_text(html_page(text, "lstmvision report"))
    write_json(METRICS / "summary.json", {"classification": cls.to_dict(orient="records"),
                                          "sr": sr.to_dict(orient="records")})
    _publish(cls_names + sr_names, store)
    print(f"wrote {REPORTS}/report.md and report.html; "
          f"test metrics logged to the MLflow runs of {len(cls_names + sr_names)} variants")
