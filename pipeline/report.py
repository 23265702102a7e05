"""The report: leaderboard tables (pandas) and figures (matplotlib) from the pipeline's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

CLS_REFERENCE, SR_REFERENCE = "lstm_row", "bicubic"


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def classification_table(names: list[str], models_dir: Path, eval_dir: Path) -> pd.DataFrame:
    rows = []
    for name in names:
        run = _read_json(models_dir / name / "runs.json")[0]
        rows.append({
            "variant": name,
            "accuracy": _read_json(eval_dir / name / "metrics.json")["test"]["accuracy"],
            "params": run["params_count"], "train_time_s": run["train_time_s"], "epochs": run["epochs"],
            "images_per_s": round(_read_json(eval_dir / name / "speed.json")["images_per_s"]),
        })
    df = pd.DataFrame(rows)
    if CLS_REFERENCE in names:
        ref = df.loc[df.variant == CLS_REFERENCE, "accuracy"].iloc[0]
        df.insert(2, f"vs_{CLS_REFERENCE}", (df.accuracy - ref).round(5))
    return df.sort_values("accuracy", ascending=False, ignore_index=True)


def sr_table(names: list[str], models_dir: Path, eval_dir: Path) -> pd.DataFrame:
    rows = []
    for name in [SR_REFERENCE, *names]:
        test = _read_json(eval_dir / name / "metrics.json")["test"]
        runs = {r["scale"]: r for r in _read_json(models_dir / name / "runs.json") or []}
        speed = _read_json(eval_dir / name / "speed.json")
        for set_name, per_scale in test.items():
            for scale_key, m in per_scale.items():
                run = runs.get(int(scale_key[1:]), {})
                rows.append({"variant": name, "set": set_name, "scale": scale_key, "psnr": m["psnr"],
                             "ssim": m["ssim"], "params": run.get("params_count", 0),
                             "train_time_s": run.get("train_time_s", 0.0), "epochs": run.get("epochs", 0),
                             "images_per_s": round(speed[scale_key], 2)})
    df = pd.DataFrame(rows)
    ref = df[df.variant == SR_REFERENCE].set_index(["set", "scale"]).psnr
    df.insert(5, f"psnr_vs_{SR_REFERENCE}", [round(r.psnr - ref[(r.set, r.scale)], 4) for r in df.itertuples()])
    return df.sort_values(["set", "scale", "psnr"], ascending=[True, True, False], ignore_index=True)


def variant_colours(names: list[str]) -> dict[str, str]:
    """One colour per variant, shared by a task's figures."""
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def plot_curves(curves: dict[str, pd.DataFrame], metric: str, colours: dict[str, str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, df in curves.items():
        if metric not in df:
            continue
        scales = df["scale"].fillna(0).astype(int) if "scale" in df else pd.Series(0, index=df.index)
        for style, (scale, part) in zip(["-", "--", ":", "-."], df.groupby(scales), strict=False):
            label = f"{name} x{scale}" if scale else name
            ax.plot(part.epoch, part[metric], style, marker="o", color=colours[name], label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_quality_vs_params(df: pd.DataFrame, metric: str, colours: dict[str, str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in df.itertuples():
        ax.scatter(r.params, getattr(r, metric), color=colours[r.variant])
        ax.annotate(r.variant, (r.params, getattr(r, metric)), fontsize=8)
    ax.set_xscale("symlog")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_crops(panels: list[tuple[str, torch.Tensor]], size: int, path: Path) -> None:
    """Side-by-side centre crops of the same image (bicubic / models / ground truth)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (title, image) in zip(axes, panels, strict=True):
        h, w = image.shape[-2:]
        top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
        crop = image[:, top:top + size, left:left + size].clamp(0, 1)
        arr = crop[0].numpy() if crop.shape[0] == 1 else crop.permute(1, 2, 0).numpy()
        ax.imshow(arr, cmap="gray" if crop.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt="g")


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px}
td{text-align:right}td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}img{max-width:100%}"""


def html_page(markdown_text: str, title: str) -> str:
    """The Markdown report as one standalone page (figures stay relative links)."""
    import markdown as md

    body = md.markdown(markdown_text, extensions=["tables"])
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
