"""The report: leaderboard tables (pandas) and figures (matplotlib) from the pipeline's outputs."""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from pipeline.core.host import machine  # noqa: E402
from pipeline.report.published import published_classification, published_for  # noqa: E402
from pipeline.report.stats import holm, mcnemar, signed_rank  # noqa: E402

SR_REFERENCE = "bicubic"


def _read_json(path: Path):
    return json.loads(path.read_text())


def pm(s: dict, digits: int) -> str:
    """A summary as 'mean ± std (n)'."""
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} ({s['n']})"


def calls(means: dict[str, float], pvalue, alpha: float) -> tuple[dict[str, int], dict[str, str]]:
    """Ranks where ties share a rank, and each variant's call against the leader.

    ``pvalue(a, b)`` is the test of one pair; p-values are Holm-adjusted over all
    pairs. A variant's rank is 1 + the number of variants significantly better
    than it, so variants the test cannot separate share a rank.
    """
    names = sorted(means, key=means.get, reverse=True)
    pairs = list(itertools.combinations(names, 2))
    adjusted = dict(zip(pairs, holm([pvalue(a, b) for a, b in pairs]), strict=True)) if pairs else {}

    def p_of(a, b):
        return adjusted.get((a, b), adjusted.get((b, a), 1.0))

    rank = {n: 1 + sum(1 for m in names if means[m] > means[n] and p_of(m, n) < alpha) for n in names}
    leader = names[0]
    call = {leader: "leader"}
    for n in names[1:]:
        p = p_of(leader, n)
        call[n] = f"{'worse' if p < alpha else 'tie'} (p={p:.2g})"
    return rank, call


def budget_note(epochs: dict[str, int]) -> str:
    if len(set(epochs.values())) == 1:
        return f"Equal budget: every variant trained {next(iter(epochs.values()))} epochs."
    return ("Unequal budgets (see `epochs`): the calls compare trained models at their own budgets, "
            "not architectures at equal cost.")


def classification_table(names: list[str], models_dir: Path, eval_dir: Path, alpha: float
                         ) -> tuple[pd.DataFrame, int]:
    """One row per variant: accuracy mean ± std over seeds, rank and call (McNemar, Holm); test-set size."""
    correct, rows = {}, []
    for name in names:
        per_image = pd.read_csv(eval_dir / name / "per_image.csv")
        correct[name] = per_image.pivot(index="image", columns="seed", values="correct").astype(bool)
        acc = _read_json(eval_dir / name / "metrics.json")["test"]["accuracy"]
        runs = _read_json(models_dir / name / "runs.json")
        rows.append({"variant": name, "accuracy": pm(acc, 4), "mean": acc["mean"], "std": acc["std"],
                     "seeds": acc["n"], "params": runs[0]["params_count"], "epochs": runs[0]["epochs"],
                     "train_s_per_seed": round(float(np.mean([r["train_time_s"] for r in runs])), 1),
                     "test_images_per_s": round(_read_json(eval_dir / name / "speed.json")["images_per_s"])})
    df = pd.DataFrame(rows)

    def pvalue(a, b):  # pairs matched by (image, seed index): seed lists are the same for every variant
        return mcnemar(correct[a].to_numpy().ravel(), correct[b].to_numpy().ravel())

    rank, call = calls(dict(zip(df.variant, df["mean"], strict=True)), pvalue, alpha)
    df.insert(1, "rank", df.variant.map(rank))
    df.insert(3, "vs leader", df.variant.map(call))
    n_test = len(next(iter(correct.values())))
    return df.sort_values(["rank", "mean"], ascending=[True, False], ignore_index=True), n_test


def _psnr_pvalue(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Signed-rank test of per-image PSNR tables (image x seed); a deterministic side (one column)
    pairs with every seed of the other."""
    if a.shape[1] == 1:
        a = pd.concat([a] * b.shape[1], axis=1)
    if b.shape[1] == 1:
        b = pd.concat([b] * a.shape[1], axis=1)
    return signed_rank(a.to_numpy().ravel() - b.to_numpy().ravel())


def sr_table(names: list[str], models_dir: Path, eval_dir: Path, alpha: float) -> pd.DataFrame:
    """One row per (set, scale, variant incl. bicubic): PSNR/SSIM mean ± std, gain, rank and call
    (Wilcoxon signed-rank on per-image PSNR, Holm, per set and scale)."""
    everyone = [SR_REFERENCE, *names]
    per_image = {n: pd.read_csv(eval_dir / n / "per_image.csv", dtype={"seed": str}) for n in everyone}
    tests = {n: _read_json(eval_dir / n / "metrics.json")["test"] for n in everyone}
    runs = {n: _read_json(models_dir / n / "runs.json") for n in names}
    speed = {n: _read_json(eval_dir / n / "speed.json") for n in everyone}
    rows = []
    for set_name, per_scale in tests[SR_REFERENCE].items():
        for scale_key in per_scale:
            scale = int(scale_key[1:])
            psnr = {n: per_image[n][(per_image[n].set == set_name) & (per_image[n].scale == scale)]
                    .pivot(index="image", columns="seed", values="psnr") for n in everyone}
            means = {n: tests[n][set_name][scale_key]["psnr"]["mean"] for n in everyone}
            rank, call = calls(means, lambda a, b, t=psnr: _psnr_pvalue(t[a], t[b]), alpha)
            base = means[SR_REFERENCE]
            for n in everyone:
                m = tests[n][set_name][scale_key]
                mine = [r for r in runs.get(n, []) if r["scale"] == scale] or [{}]
                rows.append({"set": set_name, "scale": scale_key, "variant": n, "rank": rank[n],
                             "psnr": pm(m["psnr"], 3), "vs leader": call[n], "gain_db": round(means[n] - base, 3),
                             "ssim": pm(m["ssim"], 4), "mean": m["psnr"]["mean"], "std": m["psnr"]["std"],
                             "images": len(psnr[n]), "params": mine[0].get("params_count", 0),
                             "epochs": mine[0].get("epochs", 0),
                             "train_s_per_seed": round(float(np.mean([r.get("train_time_s", 0) for r in mine])), 1),
                             "test_images_per_s": round(speed[n][scale_key], 2)})
    df = pd.DataFrame(rows)
    return df.sort_values(["set", "scale", "rank", "mean"], ascending=[True, True, True, False], ignore_index=True)


def variant_colours(names: list[str]) -> dict[str, str]:
    """One colour per variant, shared by a task's figures."""
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def comparison_curves(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One task's validation curves in one long table, a ``series`` column naming the variant (and the
    scale when several are trained), so `dvc plots show` draws one chart that compares the variants."""
    if not curves:
        return pd.DataFrame(columns=["series", "seed", "epoch"])
    table = pd.concat([df.assign(series=name) for name, df in curves.items()], ignore_index=True)
    if "scale" in table and table["scale"].nunique() > 1:
        table["series"] += " x" + table["scale"].astype(int).astype(str)
    return table[["series", *table.columns.drop("series")]]


def plot_curves(curves: dict[str, pd.DataFrame], metric: str, colours: dict[str, str], path: Path,
                title: str) -> None:
    """Validation curves: the mean over seeds as a line, the seeds' range as a band."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_title(title, fontsize=10)
    for name, df in curves.items():
        if metric not in df:
            continue
        scales = df["scale"].fillna(0).astype(int) if "scale" in df else pd.Series(0, index=df.index)
        for style, (scale, part) in zip(["-", "--", ":", "-."], df.groupby(scales), strict=False):
            by_epoch = part.groupby("epoch")[metric]
            mean, low, high = by_epoch.mean(), by_epoch.min(), by_epoch.max()
            n = part.seed.nunique()
            label = f"{name} x{scale} (n={n})" if scale else f"{name} (n={n})"
            ax.plot(mean.index, mean.values, style, marker="o", markersize=3, color=colours[name], label=label)
            ax.fill_between(mean.index, low.values, high.values, color=colours[name], alpha=0.15, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (mean over seeds; band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_quality_vs_params(df: pd.DataFrame, label: str, colours: dict[str, str], path: Path,
                           reference: float | None = None) -> None:
    """Mean over seeds against parameter count, the seeds' standard deviation as error bars; an untrained
    reference (bicubic) is a horizontal line, not a point at zero parameters."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(df.itertuples()):
        ax.errorbar(r.params, r.mean, yerr=r.std, fmt="o", color=colours[r.variant], capsize=3, label=r.variant)
        # alternate label sides so that variants of equal size do not print over each other
        ax.annotate(r.variant, (r.params, r.mean), textcoords="offset points", xytext=(8, 10 - 20 * (i % 2)),
                    fontsize=8, color=colours[r.variant])
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label=f"{SR_REFERENCE} ({reference:.2f})")
    ax.set_xscale("log")
    thousands = FuncFormatter(lambda v, _: f"{v / 1000:g}k")
    ax.xaxis.set_major_formatter(thousands)
    ax.xaxis.set_minor_formatter(thousands)
    ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=45)
    ax.margins(x=0.12)  # room for the outermost point labels
    ax.set_xlabel("parameters")
    ax.set_ylabel(label)
    ax.set_title(label.split(" (")[0] + " against model size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion(per_image: pd.DataFrame, classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (true class by row) pooled over seeds."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (per_image.label.to_numpy(), per_image.predicted.to_numpy()), 1)
    return counts / counts.sum(axis=1, keepdims=True).clip(min=1)


def plot_confusions(matrices: dict[str, np.ndarray], path: Path) -> None:
    """One small confusion matrix per variant, on one colour scale, diagonal hidden so errors show."""
    cols = min(4, len(matrices))
    rows = -(-len(matrices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    errors = {n: m * (1 - np.eye(len(m))) for n, m in matrices.items()}
    top = max(float(e.max()) for e in errors.values()) or 1.0
    for ax, (name, err) in zip(axes.flat, errors.items(), strict=False):
        image = ax.imshow(err, cmap="Reds", vmin=0, vmax=top)
        ax.set_title(f"{name}\n{np.trace(matrices[name]) / len(err):.1%} mean per-class", fontsize=8)
        ax.set_xticks(range(len(err)))
        ax.set_yticks(range(len(err)))
        ax.tick_params(labelsize=6)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    for ax in list(axes.flat)[len(errors):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.6, label="share of the true class (errors only)")
    fig.suptitle("Confusion matrices, pooled over seeds (diagonal omitted)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_crops(panels: list[tuple[str, torch.Tensor]], size: int, path: Path) -> None:
    """Side-by-side centre crops of the same image (bicubic / models / ground truth), two rows when many."""
    columns = min(len(panels), 3)  # three a row: each tile about a third of the page, large enough to compare
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, image) in zip(axes.ravel(), panels, strict=False):
        h, w = image.shape[-2:]
        top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
        crop = image[:, top:top + size, left:left + size].clamp(0, 1)
        arr = crop[0].numpy() if crop.shape[0] == 1 else crop.permute(1, 2, 0).numpy()
        ax.imshow(arr, cmap="gray" if crop.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


_SHOWN = {"classification": ["variant", "rank", "accuracy", "vs leader", "seeds", "params", "epochs",
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

Exact McNemar test on per-image correctness, pairs matched by image and seed.
{budget_note(dict(zip(cls.variant, cls.epochs, strict=True)))}
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
    epochs = {n: int(sr[sr.variant == n].epochs.iloc[0]) for n in names}
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
    return text, {"sr": sr.to_dict(orient="records")}


def provenance(raw_dir: Path, commit: str) -> str:
    """Where each dataset came from, which benchmarks were skipped and why, and what produced the report."""
    manifest = _read_json(raw_dir / "manifest.json")
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
    quick = "; **quick sizes: a smoke test, not figures to quote**" if bench["size"] == "quick" else ""
    rows = pd.DataFrame(bench["summary"]).assign(ratio=lambda d: d.ratio.map("{:.2f}x".format))
    return f"""## Cost

`lstmvision bench` on {bench['machine']}: each figure against a reference timed in the same run
(ratios cancel the machine's speed){quick}. SR patch extraction: {bench['patches']['hr_megapixels_per_s']:.1f} HR
megapixels/s.

{markdown(rows)}
"""


def build_report(p, curves: dict[str, pd.DataFrame], models_dir: Path, eval_dir: Path, raw_dir: Path,
                 bench: dict, out: Path, commit: str) -> tuple[str, dict]:
    """The report's Markdown (figures written under out/figures) and the summary behind it; a task
    with no enabled variant has no section."""
    fig = out / "figures"
    fig.mkdir()
    sections, summary = [], {"seeds": p.seeds, "alpha": p.report.alpha}
    if p.run.classification:
        text, part = _classification_section(p, curves, models_dir, eval_dir, fig)
        sections.append(text)
        summary.update(part)
    if p.run.sr:
        text, part = _sr_section(p, curves, models_dir, eval_dir, raw_dir, fig)
        sections.append(text)
        summary.update(part)
    head = f"""# lstmvision report

Every figure is the mean ± standard deviation over training seeds (n in brackets; seeds
{', '.join(map(str, p.seeds))}). `rank`: 1 + the number of variants significantly better
(ties share a rank); `vs leader`: the call against the top variant. A difference is called
only when a test supports it at alpha = {p.report.alpha} after Holm's correction over all pairs of
the table; otherwise it is a tie. Tests: see `pipeline/report/stats.py`.
"""
    return "\n".join([head, *sections, cost(bench), provenance(raw_dir, commit)]), summary
