"""params.yaml schema: the single source of knobs, validated before any stage touches an output.

A bad value raises :class:`ParamsError` whose message is one line naming the
key path and what was expected; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.errors import ParamsError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tracking(Strict):
    uri: str = "sqlite:///mlflow.db"
    artifacts: str = "mlartifacts"
    # What to do when the tracking server does not answer: stop, or log to the local store.
    on_unreachable: Literal["fail", "local"] = "fail"
    timeout_s: float = Field(5.0, gt=0)


class UrlSource(Strict):
    url: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    subdir: str = ""  # folder inside the archive that holds the images


class ClassificationData(Strict):
    source: str = "mnist_embedded"
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    limit: int | None = Field(None, gt=0)  # cap on training samples, for tiny profiles


class SRData(Strict):
    train: list[str] = ["skimage_train"]
    test: str = "skimage_test"
    benchmarks: list[str] = []
    scales: list[int] = Field([2], min_length=1)
    patch_size: int = Field(48, ge=8, le=512)  # HR patch side
    stride: int = Field(24, ge=1)
    augment: bool = True  # the 8 flips/rotations of each patch
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    max_patches: int | None = Field(None, gt=0)

    @field_validator("scales")
    @classmethod
    def _known_scales(cls, scales: list[int]) -> list[int]:
        for s in scales:
            if s not in (2, 3, 4):
                raise ValueError(f"{s} is not one of 2, 3, 4")
        return scales

    @field_validator("patch_size")
    @classmethod
    def _patch_fits_scales(cls, size: int, info: ValidationInfo) -> int:
        for s in info.data.get("scales", []):
            if size % s:
                raise ValueError(f"{size} is not a multiple of scale {s}")
        return size


class Data(Strict):
    mirror: str | None = None  # LSTMVISION_MIRROR overrides
    sources: dict[str, UrlSource] = {}  # extra or overriding URL sources by dataset name
    classification: ClassificationData = ClassificationData()
    sr: SRData = SRData()


class Trainer(Strict):
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: str = "auto"  # 16-mixed on a GPU, 32 elsewhere
    num_workers: int = Field(0, ge=0)
    deterministic: bool = True


class Optim(Strict):
    epochs: int = Field(ge=1)
    lr: float = Field(ge=0)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(0.0, ge=0)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(None, gt=0)  # gradient-norm clipping (vanilla RNNs need it)


class Variant(Strict):
    arch: str  # a key of pipeline.models.ARCHITECTURES, which also fixes the task
    view: Literal["rows", "pixels", "permuted", "image"] = "image"
    model: dict[str, Any] = {}
    optim: Optim


class RunLists(Strict):
    """Which variants `dvc repro` trains, per task (dvc.yaml iterates over these lists)."""

    classification: list[str] = Field(min_length=1)
    sr: list[str] = Field(min_length=1)


class Check(Strict):
    """The regression gate: current metrics against a committed baseline."""

    baseline: str = "baselines/default.json"
    # Allowed drop per metric name (the last part of a metric key); a bigger drop fails.
    tolerance: dict[str, float] = {"accuracy": 0.01, "psnr": 0.05, "ssim": 0.002}


class Report(Strict):
    crop_size: int = Field(96, ge=16)


class Params(Strict):
    seed: int = 42
    tracking: Tracking = Tracking()
    data: Data = Data()
    trainer: Trainer = Trainer()
    run: RunLists
    variants: dict[str, Variant]
    report: Report = Report()
    check: Check = Check()

    @model_validator(mode="after")
    def _run_names_known(self):
        for task in ("classification", "sr"):
            for name in getattr(self.run, task):
                if name not in self.variants:
                    raise ValueError(f"run.{task}: '{name}' is not a key of variants")
        if "bicubic" in self.variants:
            raise ValueError("variants: 'bicubic' is reserved for the untrained baseline")
        return self

    def enabled(self, task: str) -> dict[str, Variant]:
        return {n: self.variants[n] for n in getattr(self.run, task)}


def task_of(variant: Variant) -> str:
    from pipeline.models import ARCHITECTURES

    return ARCHITECTURES[variant.arch].task


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"params.yaml: {path + ': ' if path else ''}{msg}{more}"


def check_arch_options(params: Params) -> None:
    """Each variant's ``model`` options must be keyword arguments of its architecture."""
    from pipeline.models import ARCHITECTURES

    def bad(where: str, what: str) -> ParamsError:
        return ParamsError(f"params.yaml: {where}: {what}")

    for name, variant in params.variants.items():
        where = f"variants.{name}"
        if variant.arch not in ARCHITECTURES:
            raise bad(f"{where}.arch", f"unknown '{variant.arch}', expected one of {', '.join(sorted(ARCHITECTURES))}")
        arch = ARCHITECTURES[variant.arch]
        for task in ("classification", "sr"):
            if name in getattr(params.run, task) and arch.task != task:
                raise bad(f"run.{task}", f"'{name}' has {arch.task} architecture '{variant.arch}'")
        if arch.task == "classification" and variant.view not in arch.views:
            raise bad(f"{where}.view", f"'{variant.view}' not supported by {variant.arch}, "
                                       f"expected one of {', '.join(arch.views)}")
        signature = inspect.signature(arch.cls).parameters.values()
        accepted = {p.name: p for p in signature if p.name not in arch.supplied}
        for key, value in variant.model.items():
            if key not in accepted:
                raise bad(f"{where}.model.{key}", f"unknown option, expected one of {', '.join(accepted)}")
            default = accepted[key].default
            typed = default not in (inspect.Parameter.empty, None)
            int_for_float = isinstance(default, float) and isinstance(value, int)
            if typed and type(value) is not type(default) and not int_for_float:
                raise bad(f"{where}.model.{key}", f"expected {type(default).__name__}, got {value!r}")


def parse_params(raw: Any) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: the top level must be a mapping")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_one_line(exc)) from None
    check_arch_options(params)
    return params


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the project root)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}") from None
    return parse_params(raw)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: MLflow params, and metric keys as `dvc metrics` shows them."""
    if isinstance(tree, BaseModel):
        tree = tree.model_dump()
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
