"""Networks by architecture name, and exported models: build, save, load, where they live.

Each task's ``networks`` module maps its architecture names to constructors in an explicit dict (no
import-time scanning), imported only for the task asked for. Adding an architecture is a network there
plus its options schema in pipeline.config.architectures; a variant of an existing one is a params.yaml
entry.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config.architectures import ARCHITECTURES
from pipeline.core.errors import ModelError, first_line
from pipeline.tasks import networks


def build(arch: str, data_args: dict[str, Any], options: dict[str, Any]) -> nn.Module:
    """The network with the data's shape arguments and the (validated) options; missing ones default."""
    spec = ARCHITECTURES[arch]
    full = spec.options.model_validate(options).model_dump()
    constructor = networks(spec.task)[arch]
    accepted = inspect.signature(constructor).parameters
    return constructor(**{k: v for k, v in data_args.items() if k in accepted}, **full)


def model_folder(variant_dir: Path, seed: int, scale: int | None) -> Path:
    """Where one run's exported model lives: <variant>/s<seed>[/x<scale>]."""
    folder = Path(variant_dir) / f"s{seed}"
    return folder / f"x{scale}" if scale else folder


def save_model(net: nn.Module, spec: dict, folder: Path) -> None:
    """Export as a plain state dict plus a JSON description (no pickled code)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(json.dumps(spec, indent=2))


def read_spec(folder: Path) -> dict:
    """An exported model's description (model.json); a missing or broken one is one line."""
    path = Path(folder) / "model.json"
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{folder}: no model.json (not an exported model folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    missing = [k for k in ("task", "arch", "model", "data_args") if not isinstance(spec, dict) or k not in spec]
    if missing:
        raise ModelError(f"{path}: incomplete, missing {', '.join(missing)}")
    if spec["arch"] not in ARCHITECTURES:
        raise ModelError(f"{path}: unknown architecture '{spec['arch']}'")
    if ARCHITECTURES[spec["arch"]].task != spec["task"]:
        raise ModelError(f"{path}: architecture '{spec['arch']}' is not a {spec['task']} architecture")
    return spec


def load_model(folder: Path) -> tuple[nn.Module, dict]:
    """Rebuild an exported model; weights are read with ``weights_only=True``. Any defect is one line."""
    spec = read_spec(folder)
    try:
        net = build(spec["arch"], spec["data_args"], spec["model"])
        net.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise ModelError(f"{folder}: no model.pt") from None
    except Exception as exc:  # torch and pydantic raise many types for a corrupt or mismatched export
        raise ModelError(f"{folder}: not a usable exported model ({type(exc).__name__}: {first_line(exc, 200)})"
                         ) from None
    return net.eval(), spec


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def default_device() -> str:
    """Where inference runs: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"
