"""Training through the library on small synthetic data: the long-sequence variants' CPU smoke test."""

import json

import mlflow
import numpy as np
import pytest
import torch
import yaml

from pipeline.config.schema import Trainer, parse_params
from pipeline.tasks.classification.data import pixel_permutation, sequence_view
from pipeline.tasks.models import build, load_model
from pipeline.tracking.store import resolve_store
from pipeline.training.hardware import deterministic_for, precision_for
from pipeline.training.loop import train, work_folder
from pipeline.training.parallel import cores, side_by_side
from pipeline.training.spec import Places, Training


def _synthetic_classification(folder, n=96, side=28, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        y = np.arange(n) % 10
        x = rng.integers(0, 255, (n, side, side), dtype=np.uint8)
        np.savez(folder / f"{split}.npz", x=x, y=y)


def _synthetic_training(tmp_path, root, name: str, seed: int, hidden: int, **optim):
    """(the training of variant ``name`` narrowed to ``hidden`` with ``optim`` overridden, on synthetic data
    under tmp_path; out -> its Places, exports under tmp_path / out, one local MLflow store)."""
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["variants"][name]["optim"].update(optim)
    raw["variants"][name]["model"]["hidden"] = hidden
    params = parse_params(raw)
    _synthetic_classification(tmp_path / "prepared" / "classification")
    store = resolve_store(params.tracking, tmp_path)
    return (Training(name, params.variants[name], params, seed=seed),
            lambda out: Places(tmp_path, tmp_path / "prepared", tmp_path / "work", store, tmp_path / out))


@pytest.mark.parametrize("name", ["lstm_pixel", "lstm_permuted"])
def test_long_sequence_variants_train_a_few_steps_on_cpu(tmp_path, name, root):
    t, places = _synthetic_training(tmp_path, root, name, 7, 16, epochs=1, batch_size=16, max_steps_per_epoch=2)
    result = train(t, places("out"))
    net, spec = load_model(tmp_path / "out" / "s7")
    assert spec["view"] in ("pixels", "permuted") and spec["data_args"]["input_size"] == 1
    assert net(torch.rand(2, 784, 1)).shape == (2, 10)
    assert len(result.history) == 1
    run = mlflow.MlflowClient(places("out").store.uri).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["variant"] == name


def test_permuted_view_is_one_fixed_permutation():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    perm = pixel_permutation(16, seed=3)
    assert torch.equal(perm, pixel_permutation(16, seed=3)) and not torch.equal(perm, torch.arange(16))
    view = sequence_view(x, "permuted", perm)
    assert view.shape == (2, 16, 1)
    assert torch.equal(view[:, :, 0], sequence_view(x, "pixels")[:, perm, 0])
    assert sequence_view(x, "rows").shape == (2, 4, 4) and sequence_view(x, "image").shape == (2, 1, 4, 4)


def test_a_finished_seed_is_reused_not_retrained(tmp_path, root):
    t, places = _synthetic_training(tmp_path, root, "lstm_row", 3, 8, epochs=1, batch_size=32)
    first, again = train(t, places("a")), train(t, places("b"))
    assert again == first  # same run, same figures: read back, not trained again
    assert (tmp_path / "b/s3/model.pt").read_bytes() == (tmp_path / "a/s3/model.pt").read_bytes()
    client = mlflow.MlflowClient(places("a").store.uri)
    runs = client.search_runs([client.get_experiment_by_name("classification").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["seed"] == "3" and runs[0].data.params["hidden"] == "8"


def test_the_export_and_the_resume_checkpoint_are_the_last_epoch(tmp_path, root):
    """A killed training resumes from last.ckpt, and the export is that epoch's weights, whatever validation
    said of the earlier epochs; no other checkpoint is kept."""
    t, places = _synthetic_training(tmp_path, root, "lstm_row", 3, 8, epochs=3, batch_size=32)
    result = train(t, places("out"))
    folder = work_folder(t, places("out")) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    last = torch.load(folder / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2 and result.val == result.history[-1]["val_acc"]
    exported = torch.load(tmp_path / "out" / "s3" / "model.pt", weights_only=True)
    assert exported.keys() == {k.removeprefix("net.") for k in last["state_dict"]}
    assert all(torch.equal(v, last["state_dict"][f"net.{k}"]) for k, v in exported.items())


def test_precision_and_determinism_map_to_what_the_device_runs():
    assert precision_for("auto", cuda=True) == "16-mixed" and precision_for("auto", cuda=False) == "32-true"
    assert precision_for("16-mixed", cuda=False) == precision_for("16-true", cuda=False) == "32-true"
    assert precision_for("bf16-mixed", cuda=False) == "bf16-mixed" == precision_for("bf16-mixed", cuda=True)
    assert deterministic_for(True, cuda=True) == "warn" and deterministic_for(True, cuda=False) is True
    assert deterministic_for(False, cuda=True) is False


def test_bench_reports_ratios(cli, root):
    """Every figure a ratio against its same-run reference; with `--json -` stdout is the JSON alone and the
    human lines go to stderr."""
    proc = cli(["bench", "--size", "quick", "--json", "-"], cwd=root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["lstm"][0]["gate_over_nn_lstm"] > 0
    assert result["resize"][0]["hr_megapixels_per_s"] > 0 and result["patches"]["hr_megapixels_per_s"] > 0
    # every figure is printed as a ratio against its same-run reference, and lands in the JSON for the report
    figures = [r["figure"] for r in result["summary"]]
    assert [f.split()[0] for f in figures] == ["gate-equation", "lstm_row", "lsrcnn", "MATLAB", "peak"]
    assert all(r["ratio"] > 0 for r in result["summary"])
    assert all(f"{f}: " in proc.stderr for f in figures) and result["machine"] in proc.stderr


def test_bench_sizes_match_params():
    """Every size params.yaml accepts for the bench stage is one the command knows, in every sized figure."""
    from typing import get_args

    from pipeline.config.schema import Bench
    from stages.bench import EVALUATION_MEMORY, SR_STEP

    assert set(get_args(Bench.model_fields["size"].annotation)) == set(SR_STEP) == set(EVALUATION_MEMORY)


@pytest.mark.parametrize("arch, data_args, options", [
    ("lsrcnn", {"scale": 2, "channels": 1}, {"features": 8, "hidden": 8, "attention": "mixed"}),
    ("recurrent", {"input_size": 28, "num_classes": 10}, {"cell": "gates", "hidden": 16}),
    ("crnn", {"input_size": 28, "image_size": 28, "num_classes": 10}, {"channels": 8, "hidden": 16}),
])
def test_the_nan_fill_the_stage_turns_off_changes_no_bit(arch, data_args, options):
    """Deterministic mode's NaN fill of new tensors (off in training: pipeline.training.hardware.lean_determinism)
    would show a kernel reading memory it never wrote: the same steps with and without it give the same weights."""
    import torch.utils.deterministic

    def weights(fill: bool) -> dict:
        torch.manual_seed(0)
        net = build(arch, data_args, options)
        x = torch.rand(4, 1, 8, 8) if arch == "lsrcnn" else torch.rand(4, 28, 28) if arch == "recurrent" else \
            torch.rand(4, 1, 28, 28)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        try:
            for _ in range(3):
                opt.zero_grad()
                net(x).square().mean().backward()
                opt.step()
        finally:
            torch.use_deterministic_algorithms(False)
            torch.utils.deterministic.fill_uninitialized_memory = True
        return net.state_dict()

    filled, lean = weights(True), weights(False)
    assert all(torch.equal(filled[k], lean[k]) for k in filled)


@pytest.mark.parametrize("threads,parallel,expected", [
    ("auto", "auto", lambda cores: (cores, 1)),  # one training per core, one thread each
    (2, "auto", lambda cores: (max(1, cores // 2), 2)),
    ("auto", 1, lambda cores: (1, cores)),  # one at a time on every core
    (1, 3, lambda cores: (3, 1)),
])
def test_side_by_side_splits_the_cores(threads, parallel, expected):
    cfg = Trainer(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", precision="auto", num_workers=0,
                  deterministic=True, threads=threads, parallel=parallel)
    assert side_by_side(cfg) == expected(cores())
    assert side_by_side(cfg.model_copy(update={"devices": 2})) is None  # DDP: one training at a time
