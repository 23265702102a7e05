"""The report's figures (matplotlib, written as PNG): validation curves, quality against size, confusion
matrices and SR crops. One colour per variant across a task's figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from pipeline.report.tables import SR_REFERENCE  # noqa: E402


def variant_colours(names: list[str]) -> dict[str, str]:
    """One colour per variant, shared by a task's figures."""
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


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
