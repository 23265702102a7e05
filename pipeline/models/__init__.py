"""Architecture registry: a name in params.yaml -> the nn.Module that builds it.

An explicit dict (no import-time scanning): adding an architecture is one
entry here; adding a variant of an existing one is a params.yaml entry.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.models.classifiers import CNNLSTM, CRNN, RecurrentClassifier, StackedLSTM
from pipeline.models.sr import SRNet

SEQUENCE_VIEWS = ("rows", "pixels", "permuted")


@dataclass(frozen=True)
class Arch:
    cls: type[nn.Module]
    task: str
    views: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # constructor args the arch pins

    @property
    def supplied(self) -> set[str]:
        """Constructor args the pipeline fills in from the data, not from params."""
        if self.task == "classification":
            return {"input_size", "num_classes", "image_size"} | set(self.fixed)
        return {"scale", "channels"} | set(self.fixed)


ARCHITECTURES: dict[str, Arch] = {
    "recurrent": Arch(RecurrentClassifier, "classification", SEQUENCE_VIEWS),
    "stacked_lstm": Arch(StackedLSTM, "classification", SEQUENCE_VIEWS),
    "cnn_lstm": Arch(CNNLSTM, "classification", ("image",)),
    "crnn": Arch(CRNN, "classification", ("image",)),
    "lsrcnn": Arch(SRNet, "sr", fixed={"body": "lstm"}),
    "cnn_sr": Arch(SRNet, "sr", fixed={"body": "conv"}),
}


def build(arch: str, data_args: dict[str, Any], options: dict[str, Any]) -> nn.Module:
    spec = ARCHITECTURES[arch]
    accepted = inspect.signature(spec.cls).parameters
    kwargs = {k: v for k, v in data_args.items() if k in spec.supplied and k in accepted}
    return spec.cls(**kwargs, **spec.fixed, **options)


def save_model(net: nn.Module, spec: dict, folder: Path) -> None:
    """Export as a plain state dict plus a JSON description (no pickled code)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(json.dumps(spec, indent=2))


def load_model(folder: Path) -> tuple[nn.Module, dict]:
    """Rebuild an exported model; weights are read with ``weights_only=True``."""
    spec = json.loads((Path(folder) / "model.json").read_text())
    net = build(spec["arch"], spec["data_args"], spec["model"])
    net.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    return net.eval(), spec


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
