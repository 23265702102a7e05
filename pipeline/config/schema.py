"""params.yaml schema: the single source of knobs, validated before any stage touches an output.

params.yaml is also the single source of defaults: every knob is required here,
except those whose absence means "off" (``limit``, ``max_patches``, ``grad_clip``,
...). Model options default in pipeline.config.architectures, next to their bounds.

Validation is one phase: the schema itself checks each variant against its
architecture (task, view, options), so a Params object is valid in full. A bad
value raises :class:`ParamsError` whose message is one line naming the key path
and what was expected; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.config.architectures import ARCHITECTURES, BASELINES
from pipeline.core.errors import ParamsError

# Variant names become folder and file names (models/TASK/NAME, metrics/NAME.json) and DVC stage keys.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_SEED = 2**31 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tracking(Strict):
    uri: str
    artifacts: str
    # What to do when the tracking server does not answer: stop, or log to the local store.
    on_unreachable: Literal["fail", "local"]
    timeout_s: float = Field(gt=0)


class UrlSource(Strict):
    url: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    subdir: str = ""  # folder inside the archive that holds the images


class ClassificationData(Strict):
    source: str
    val_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)
    limit: int | None = Field(None, ge=100)  # cap on training samples, for small profiles


class SRData(Strict):
    train: list[str] = Field(min_length=1)
    test: str
    benchmarks: list[str]
    scales: list[int] = Field(min_length=1)
    patch_size: int = Field(ge=8, le=512)  # HR side
    stride: int = Field(ge=1)
    augment: bool  # the 8 flips/rotations of each patch
    val_fraction: float = Field(gt=0, lt=0.5)
    max_patches: int | None = Field(None, gt=0)

    # What shapes the patches a model trains on (the patches and train stages' params); the evaluation
    # sets do not, so adding a benchmark re-trains nothing.
    PATCH_FIELDS: ClassVar[tuple[str, ...]] = ("train", "scales", "patch_size", "stride", "augment", "val_fraction",
                                               "max_patches")

    def patch_settings(self) -> dict[str, Any]:
        return self.model_dump(include=set(self.PATCH_FIELDS))

    @field_validator("scales")
    @classmethod
    def _known_scales(cls, scales: list[int]) -> list[int]:
        for s in scales:
            if s not in (2, 3, 4):
                raise ValueError(f"{s} is not one of 2, 3, 4")
        if len(set(scales)) != len(scales):
            raise ValueError("a scale is listed twice")
        return scales

    @field_validator("patch_size")
    @classmethod
    def _patch_fits_scales(cls, size: int, info: ValidationInfo) -> int:
        for s in info.data.get("scales", []):
            if size % s:
                raise ValueError(f"{size} is not a multiple of scale {s}")
        return size


class Data(Strict):
    mirror: str | None  # LSTMVISION_MIRROR overrides
    sources: dict[str, UrlSource]  # extra or overriding URL sources by dataset name
    classification: ClassificationData
    sr: SRData


class Trainer(Strict):
    """Lightning's settings; what Lightning itself refuses still fails as a params error (pipeline.training.loop)."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: Literal["auto"] | Annotated[int, Field(ge=1)] | Annotated[list[Annotated[int, Field(ge=0)]],
                                                                         Field(min_length=1)]
    num_nodes: int = Field(ge=1)
    strategy: str
    # auto: 16-mixed on a GPU, 32-true elsewhere
    precision: Literal["auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"]
    num_workers: int = Field(ge=0)
    deterministic: bool
    # CPU threads of each training. A float sum's rounding depends on how many threads share it, so a fixed
    # number gives the same bits on any machine; auto: an equal share of the cores among the trainings that run
    # at once (a train stage's `parallel`, a fanout's jobs), so one per training with parallel auto.
    threads: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    # Trainings a train stage runs at once on a CPU, each in a process of its own (one process that trains
    # does not keep two cores busy: 1.3-1.65x the throughput here). auto: as many as the cores take at
    # `threads` each. On a GPU, or under DDP, one at a time.
    parallel: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"


class Optim(Strict):
    epochs: int = Field(ge=1)
    # Adam's step size and decay: past 1 a step moves weights by more than their scale (a finite but huge lr
    # overflows float32 inside the optimiser, or trains to chance).
    lr: float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(None, gt=0)  # gradient-norm clipping (vanilla RNNs need it)
    # SR: epochs for these scales instead of ``epochs`` (a step's cost falls with the scale, so a time budget
    # buys more steps at x3/x4). Resolved per training (at_scale), so never part of what a training records.
    epochs_at_scale: dict[Annotated[int, Field(ge=2)], Annotated[int, Field(ge=1)]] = Field({}, exclude=True)

    def at_scale(self, scale: int | None) -> Optim:
        """This optimiser as one training at ``scale`` runs it: its epochs there, no per-scale table."""
        return self.model_copy(update={"epochs": self.epochs_at_scale.get(scale, self.epochs), "epochs_at_scale": {}})


class Variant(Strict):
    arch: str  # a key of pipeline.config.architectures.ARCHITECTURES, which also fixes the task
    view: Literal["rows", "pixels", "permuted", "image"] = "image"
    model: dict[str, Any] = {}  # as written in params; options() completes it with the defaults
    optim: Optim

    @property
    def task(self) -> str:
        return ARCHITECTURES[self.arch].task

    def at_scale(self, scale: int | None) -> Variant:
        return self.model_copy(update={"optim": self.optim.at_scale(scale)})

    def options(self) -> dict[str, Any]:
        """Every model option, the ones params leaves out at their defaults."""
        return ARCHITECTURES[self.arch].options.model_validate(self.model).model_dump()


class RunLists(Strict):
    """Which variants `dvc repro` trains, per task (dvc.yaml iterates over these lists); one may be empty
    (the paper profile is SR only)."""

    classification: list[str]
    sr: list[str]

    @model_validator(mode="after")
    def _something_to_run(self):
        if not self.classification and not self.sr:
            raise ValueError("run.classification and run.sr are both empty: nothing to train")
        return self


class Check(Strict):
    """The regression gate: current metrics against a committed baseline (pipeline.report.gate)."""

    baseline: str
    alpha: float = Field(gt=0, lt=0.5)  # false-alarm rate of a whole check run (all metrics; one-sided)
    power: float = Field(0.8, ge=0.5, lt=1)  # at which the detectable drop of each metric is stated
    # Judge a run of 3+ seeds by its mean without its lowest seed (for recipes with a rare seed far below the
    # rest; ~6% less power), else by its mean: chosen per profile by `check --calibrate`.
    drop_lowest: bool = True
    floor: dict[str, float]  # smallest margin per metric name, whatever the recorded spread
    # The largest detectable drop per metric name that `check --update` promises (None: no promise).
    detect: dict[str, float | None] = {}


class Bench(Strict):
    """`lstmvision bench` in the pipeline: short (full shapes, fewer repeats) for the report, full for figures
    to quote, quick for test profiles."""

    size: Literal["full", "short", "quick"] = "short"


class SlurmJobs(Strict):
    """What each training asks SLURM for under `lstmvision fanout --executor slurm` (sbatch options)."""

    partition: str | None = None  # None: the cluster's default partition
    cpus_per_task: int = Field(2, ge=1)  # also the training's torch/OpenMP threads
    gpus: int = Field(0, ge=0)  # --gres=gpu:N
    mem: str | None = "4G"  # --mem; None: the partition's default
    time: str = "01:00:00"  # --time; a training past it is stopped and resumed by the next fanout
    extra: list[str] = []  # further sbatch flags as written on its command line, e.g. ["--account=ml"]


class Fanout(Strict):
    slurm: SlurmJobs = SlurmJobs()


class Report(Strict):
    crop_size: int = Field(ge=16)
    alpha: float = Field(gt=0, lt=0.5)  # significance level of the tie/difference calls


class Params(Strict):
    seed: int = Field(ge=0, le=MAX_SEED)  # data: splits, patch subsets
    seeds: list[int] = Field(min_length=1, max_length=32)  # training: one run per seed and variant
    tracking: Tracking
    data: Data
    trainer: Trainer
    run: RunLists
    variants: dict[str, Variant]
    report: Report
    check: Check
    bench: Bench = Bench()
    fanout: Fanout = Fanout()

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 or s > MAX_SEED for s in seeds):
            raise ValueError(f"seeds must be between 0 and {MAX_SEED}")
        if len(set(seeds)) != len(seeds):
            raise ValueError("a seed is listed twice")
        return seeds

    @model_validator(mode="after")
    def _run_names_known(self):
        for name in self.variants:
            if not NAME.match(name) or name in BASELINES or name in RunLists.model_fields:
                raise ValueError(f"variants: '{name}' must be lower-case letters, digits and _ "
                                 "(it names folders), and neither 'bicubic' (the untrained baseline) nor a task "
                                 "(`lstmvision train TASK` trains a task's variants)")
        for task in RunLists.model_fields:
            names = getattr(self.run, task)
            for name in names:
                if name not in self.variants:
                    raise ValueError(f"run.{task}: '{name}' is not a key of variants")
            if len(set(names)) != len(names):
                raise ValueError(f"run.{task}: a variant is listed twice")
        return self

    @model_validator(mode="after")
    def _variants_fit_their_architectures(self):
        """Each variant's architecture, task, view and model options (the architecture's own schema)."""
        for name, variant in self.variants.items():
            where = f"variants.{name}"
            spec = ARCHITECTURES.get(variant.arch)
            if spec is None:
                raise ValueError(f"{where}.arch: unknown '{variant.arch}', expected one of "
                                 f"{', '.join(sorted(ARCHITECTURES))}")
            for task in ("classification", "sr"):
                if name in getattr(self.run, task) and spec.task != task:
                    raise ValueError(f"run.{task}: '{name}' has {spec.task} architecture '{variant.arch}'")
            if variant.optim.epochs_at_scale and spec.task != "sr":
                raise ValueError(f"{where}.optim.epochs_at_scale: only SR trainings have a scale")
            if spec.views and variant.view not in spec.views:
                raise ValueError(f"{where}.view: '{variant.view}' not supported by {variant.arch}, "
                                 f"expected one of {', '.join(spec.views)}")
            try:
                spec.options.model_validate(variant.model)
            except ValidationError as exc:
                raise ValueError(_one_line(exc, f"{where}.model").removeprefix("params.yaml: ")) from None
        return self

    def enabled(self, task: str) -> dict[str, Variant]:
        return {n: self.variants[n] for n in getattr(self.run, task)}


def _one_line(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors()[0]
    path = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]])
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"params.yaml: {path + ': ' if path else ''}{msg}{more}"


def parse_params(raw: Any) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: the top level must be a mapping")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_one_line(exc)) from None
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
