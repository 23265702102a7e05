"""The report itself: each task's section (tables, figures, published rows), cost and provenance, as
Markdown and as one self-contained HTML page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd

from pipeline.core.host import machine
from pipeline.report.calls import budget_note
from pipeline.report.figures import (
    confusion,
    plot_confusions,
    plot_crops,
    plot_curves,
    plot_quality_vs_params,
    variant_colours,
)
from pipeline.report.published import published_classification, published_for
from pipeline.report.tables import SR_REFERENCE, ablation_pairs, classification_table, recurrence_table, sr_table


def markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt="g")


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px}
td{text-align:right}td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}img{max-width:100%}"""


def html_page(markdown_text: str, title: str, folder: Path) -> str:
    """The Markdown report as one self-contained page: figures (relative to ``folder``) embedded as data URIs."""
    import markdown as md

    def embed(match: re.Match) -> str:
        data = base64.b64encode((folder / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[^"]+\.png)"', embed, md.markdown(markdown_text, extensions=["tables"]))
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


_SHOWN = {"classification": ["variant", "rank", "accuracy", "vs leader", "true_class_prob", "seeds", "params", "epochs",
                             "train_s_per_seed", "test_images_per_s"],
          "sr": ["variant", "rank", "psnr", "vs leader", "gain_db", "ssim", "images", "params", "epochs",
                 "train_s_per_seed", "test_images_per_s"]}


def _classification_section(p, curves: dict[str, pd.DataFrame], models_dir: Path, eval_dir: Path, fig: Path
                            ) -> tuple[str, dict]:
    names = p.run.classification
    cls, n_test = classification_table(names, models_dir, eval_dir, p.report.alpha)
    colours = variant_colours(names)
    plot_curves({n: curves[n] for n in names}, "val_acc", colours, fig / "classification_curves.png",
                "Validation accuracy during training (held-out split of the training data)")
    plot_quality_vs_params(cls, "test accuracy (mean ± std over seeds)", colours,
                           fig / "classification_quality_vs_params.png")
    per_image = {n: pd.read_csv(eval_dir / n / "per_image.csv") for n in names}
    classes = int(max(df.label.max() for df in per_image.values())) + 1
    matrices = {n: confusion(df, classes) for n, df in per_image.items()}
    plot_confusions(matrices, fig / "classification_confusion.png")
    per_class = pd.DataFrame({"variant": names, **{str(c): [f"{matrices[n][c, c]:.3f}" for n in names]
                                                   for c in range(classes)}})
    text = f"""## Classification ({p.data.classification.source}, {n_test} test images)

Exact McNemar test on per-image correctness, pairs matched by image and seed. `true_class_prob`: the
mean probability given to each test image's true class (the regression gate's second classifier metric).
{budget_note({"": dict(zip(cls.variant, cls.epochs, strict=True))})}
Throughput is test-set inference on this machine.

{markdown(cls[_SHOWN['classification']])}

![validation curves](figures/classification_curves.png)
![accuracy vs parameters](figures/classification_quality_vs_params.png)

{_published_classification_block({p.variants[n].view for n in names}, p.data.classification.source)}

Per-class test accuracy, pooled over seeds (class by column):

{markdown(per_class)}

![confusion matrices](figures/classification_confusion.png)
"""
    return text, {"classification_test_images": n_test, "classification": cls.to_dict(orient="records")}


def _published_classification_block(views: set[str], source: str) -> str:
    rows = published_classification(views)
    if rows.empty:
        return ("No published figures are catalogued for these sequence views (row by row: 28 steps; "
                "`pipeline/report/catalog/published_classification.csv` covers pixel-by-pixel and permuted MNIST, "
                "run by lstm_pixel and lstm_permuted in the GPU profile).")
    return (f"Published on full MNIST (60,000 training images; ours: `{source}`), for the views run here "
            "(`pipeline/report/catalog/published_classification.csv`):\n\n" + markdown(rows))


def _published_block(set_name: str, scale: int) -> str:
    rows = published_for(set_name, scale)
    if rows.empty:
        return ""
    return (f"\n\nPublished on {set_name} x{scale}, same protocol (`pipeline/report/catalog/published_sr.csv`):\n\n"
            + markdown(rows[["method", "psnr", "ssim", "params", "source"]]))


def _sr_section(p, curves: dict[str, pd.DataFrame], models_dir: Path, eval_dir: Path, raw_dir: Path, fig: Path
                ) -> tuple[str, dict]:
    from pipeline.imaging.images import load_image

    names = p.run.sr
    sr = sr_table(names, models_dir, eval_dir, p.report.alpha)
    scale = p.data.sr.scales[0]
    colours = variant_colours([*names, SR_REFERENCE])
    plot_curves({n: curves[n] for n in names}, "val_psnr", colours, fig / "sr_curves.png",
                "Validation PSNR during training (held-out patches, not the protocol)")
    held_out = sr[(sr.set == p.data.sr.test) & (sr.scale == f"x{scale}")]
    reference = float(held_out[held_out.variant == SR_REFERENCE]["mean"].iloc[0])
    plot_quality_vs_params(held_out[held_out.variant != SR_REFERENCE], f"PSNR on {p.data.sr.test} x{scale} (dB)",
                           colours, fig / "sr_quality_vs_params.png", reference)
    sample = sorted((eval_dir / SR_REFERENCE).glob(f"x{scale}_*.png"))[0]
    image = sample.stem.split("_", 1)[1]
    truth = next(q for q in (raw_dir / p.data.sr.test).iterdir() if q.stem == image)

    def crop_title(n: str) -> str:  # the whole image's PSNR of the sample shown (first seed)
        rows = pd.read_csv(eval_dir / n / "per_image.csv", dtype={"seed": str})
        row = rows[(rows.set == p.data.sr.test) & (rows.scale == scale) & (rows.image == image)].iloc[0]
        return f"{n}: {row.psnr:.2f} dB"

    panels = [(crop_title(n), load_image(eval_dir / n / sample.name)) for n in [SR_REFERENCE, *names]]
    plot_crops(panels + [("ground truth", load_image(truth))], p.report.crop_size, fig / "sr_crops.png")

    order = {name: i for i, name in enumerate([p.data.sr.test, *p.data.sr.benchmarks])}  # as params lists them
    groups = sorted(sr.groupby(["set", "scale"], sort=False), key=lambda g: (order[g[0][0]], int(g[0][1][1:])))
    sections = "\n\n".join(
        f"### {set_name} x{s[1:]} ({int(part.images.iloc[0])} images)\n\n{markdown(part[_SHOWN['sr']])}"
        + _published_block(set_name, int(s[1:]))
        for (set_name, s), part in groups)
    recurrence = recurrence_table(ablation_pairs({n: p.variants[n].arch for n in names}), models_dir, eval_dir,
                                  p.report.alpha)
    if len(recurrence):
        sections += f"""

### Does the recurrence buy anything?

Each LSTM variant against its convolutional ablation (the same network, two 3x3 convolutions in place of
the LSTM sweeps), per scale: `delta_db` is the mean PSNR difference (LSTM minus ablation) over `pairs`
(set, image, seed) pairs pooled over every scored set and the seeds, `lstm_ahead` the share of pairs
the LSTM wins; Wilcoxon signed-rank test, Holm over this table. `params` and `epochs`: LSTM / ablation;
the call speaks of the architectures only where both are equal or close.

{markdown(recurrence)}"""
    epochs = {x: {n: int(sr[(sr.variant == n) & (sr.scale == x)].epochs.iloc[0]) for n in names}
              for x in (f"x{s}" for s in p.data.sr.scales)}  # per scale: a budget may be sized per scale
    text = f"""## Super-resolution (Y channel, {'/'.join(f'x{s}' for s in p.data.sr.scales)})

PSNR/SSIM under the published protocol: MATLAB-bicubic degradation, 8-bit output,
Y of BT.601 YCbCr, `scale` pixels cropped from each border. `gain_db` is the mean gain
over bicubic on the same set and scale. Wilcoxon signed-rank test on per-image PSNR,
pairs matched by image and seed. {budget_note(epochs)} Training data: {', '.join(p.data.sr.train)}.

{sections}

![validation curves](figures/sr_curves.png)
![PSNR vs parameters](figures/sr_quality_vs_params.png)

Centre crop of `{truth.name}` at x{scale} (first seed):

![crops](figures/sr_crops.png)
"""
    return text, {"sr": sr.to_dict(orient="records"), "recurrence": recurrence.to_dict(orient="records")}


def provenance(raw_dir: Path, commit: str) -> str:
    """Where each dataset came from, which benchmarks were skipped and why, and what produced the report."""
    manifest = json.loads((raw_dir / "manifest.json").read_text())
    data = "\n".join(f"- `{name}`: {entry['origin']}" if entry["available"]
                      else f"- `{name}`: **skipped**: {entry['reason']}" for name, entry in sorted(manifest.items()))
    skipped = sum(not entry["available"] for entry in manifest.values())
    return f"""## Provenance

Code at commit `{commit}`; report built on {machine()} (training times above were measured
by the train stages of the same `dvc repro`).

Datasets ({skipped or "none"} of the {len(manifest)} configured skipped):

{data}
"""


def cost(bench: dict) -> str:
    """This machine's `lstmvision bench` figures, each against its same-run reference."""
    sizes = {"quick": "; **quick sizes: a smoke test, not figures to quote**",
             "short": "; short sizes (full shapes, fewer repeats: the SR step's ratio within ~+-4%; "
                      "`lstmvision bench` gives full ones)"}.get(bench["size"], "")
    rows = pd.DataFrame(bench["summary"]).assign(ratio=lambda d: d.ratio.map("{:.2f}x".format))
    return f"""## Cost

`lstmvision bench` on {bench['machine']}: each figure against a reference timed in the same run
(ratios cancel the machine's speed){sizes}. SR patch extraction: {bench['patches']['hr_megapixels_per_s']:.1f} HR
megapixels/s.

{markdown(rows)}
"""


def learned_nothing(names: list[str], eval_dir: Path) -> dict[str, dict[str, str]]:
    """variant -> {seed: line} for each seed its evaluation found no better than chance."""
    found = {n: json.loads((eval_dir / n / "metrics.json").read_text()).get("warnings", {}) for n in names}
    return {n: lines for n, lines in found.items() if lines}


def build_report(p, curves: dict[str, pd.DataFrame], models_dir: Path, eval_dir: Path, raw_dir: Path,
                 bench: dict, out: Path, commit: str) -> tuple[str, dict]:
    """The report's Markdown (figures written under out/figures) and the summary behind it; a task
    with no enabled variant has no section."""
    fig = out / "figures"
    fig.mkdir()
    sections, summary = [], {"seeds": p.seeds, "alpha": p.report.alpha}
    if p.run.classification:
        text, part = _classification_section(p, curves, models_dir / "classification", eval_dir, fig)
        sections.append(text)
        summary.update(part)
    if p.run.sr:
        text, part = _sr_section(p, curves, models_dir / "sr", eval_dir, raw_dir, fig)
        sections.append(text)
        summary.update(part)
    head = f"""# lstmvision report

Every figure is the mean ± standard deviation over training seeds (n in brackets; seeds
{', '.join(map(str, p.seeds))}). `rank`: 1 + the number of variants significantly better
(ties share a rank); `vs leader`: the call against the top variant. A difference is called
only when a test supports it at alpha = {p.report.alpha} after Holm's correction over all pairs of
the table; otherwise it is a tie. Tests: see `pipeline/report/stats.py`.
"""
    warned = learned_nothing([*p.run.classification, *p.run.sr], eval_dir)
    if warned:
        summary["warnings"] = warned
        lines = "\n".join(f"- **{n}** {line}" for n, seeds in warned.items() for line in seeds.values())
        head += f"\n## Warning: models that learned nothing\n\nTheir figures below are not results.\n\n{lines}\n"
    return "\n".join([head, *sections, cost(bench), provenance(raw_dir, commit)]), summary
