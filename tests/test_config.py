import copy
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.config.schema import flatten, load_params, parse_params
from pipeline.core.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def _with(path: str, value):
    raw = copy.deepcopy(BASE)
    node = raw
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    return raw


def test_committed_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert p.run.classification and p.run.sr


def test_variant_names_are_safe_folder_names():
    for bad in (".", "../data", "Upper", "bicubic", "sr", "classification"):  # tasks: `train TASK`
        raw = copy.deepcopy(BASE)
        raw["variants"][bad] = raw["variants"]["lstm_row"]
        with pytest.raises(ParamsError, match="must be lower-case letters"):
            parse_params(raw)


@pytest.mark.parametrize("path,value,needle", [
    ("seed", "abc", "seed: Input should be a valid integer"),
    ("data.sr.scales", [5], "data.sr.scales: 5 is not one of 2, 3, 4"),
    ("data.sr.patch_size", 33, "not a multiple of scale 2"),
    ("data.classification.val_fraction", 0.9, "data.classification.val_fraction: Input should be less than 0.5"),
    ("data.sr.bogus", 1, "data.sr.bogus: Extra inputs are not permitted"),
    ("run.sr", ["nosuch"], "run.sr: 'nosuch' is not a key of variants"),
    ("run", {"classification": [], "sr": []}, "run: run.classification and run.sr are both empty"),
    ("run.sr", ["lstm_row"], "run.sr: 'lstm_row' has classification architecture"),
    ("variants.lstm_row.model.hiden", 3, "variants.lstm_row.model.hiden: Extra inputs are not permitted"),
    ("variants.lstm_row.model.hidden", "big", "variants.lstm_row.model.hidden: Input should be a valid integer"),
    ("variants.lstm_row.model.hidden", 0, "variants.lstm_row.model.hidden: Input should be greater than or equal to 1"),
    ("variants.lstm_row.model.hidden", 1000000, "variants.lstm_row.model.hidden: Input should be less than or equal"),
    ("variants.lstm_row.model.cell", "lstmm", "variants.lstm_row.model.cell: Input should be 'rnn', 'gru', 'lstm'"),
    ("variants.lstm_gates.model", {"cell": "gates", "bidirectional": True}, "cell 'gates' is single-direction"),
    ("variants.lsrcnn.model.attention", "chanel", "variants.lsrcnn.model.attention: Input should be 'none', 'channel'"),
    ("variants.lsrcnn.model.ablate_body", "yes", "variants.lsrcnn.model.ablate_body: Input should be a valid boolean"),
    ("variants.lstm_row.view", "columns", "variants.lstm_row.view: Input should be 'rows'"),
    ("variants.cnn_lstm.view", "rows", "variants.cnn_lstm.view: 'rows' not supported by cnn_lstm"),
    ("seeds", [1, 1], "seeds: a seed is listed twice"),
    ("seeds", [], "seeds: List should have at least 1 item"),
    ("seed", -1, "seed: Input should be greater than or equal to 0"),
    ("seed", 2**70, "seed: Input should be less than or equal to 2147483647"),
    ("data.sr.scales", [2, 2], "data.sr.scales: a scale is listed twice"),
    ("check.alpha", 0, "check.alpha: Input should be greater than 0"),
    ("data.classification.limit", 5, "data.classification.limit: Input should be greater than or equal to 100"),
    ("trainer.precision", "banana", "trainer.precision: Input should be 'auto', '32-true'"),
    ("trainer.accelerator", "tpu", "trainer.accelerator: Input should be 'auto', 'cpu'"),
    ("trainer.devices", 0, "trainer.devices"),
    ("trainer.parallel", 0, "trainer.parallel"),
    ("trainer.parallel", "many", "trainer.parallel"),
    ("variants.lstm_row.arch", "transformer", "variants.lstm_row.arch: unknown 'transformer'"),
    ("variants.lstm_row.optim.lr", -1, "variants.lstm_row.optim.lr: Input should be greater than 0"),
    ("variants.lstm_row.optim.lr", 0, "variants.lstm_row.optim.lr: Input should be greater than 0"),
    ("variants.lstm_row.optim.lr", 1.0e38, "variants.lstm_row.optim.lr: Input should be less than or equal to 1"),
    ("variants.lsrcnn.optim.lr", 1.0e9, "variants.lsrcnn.optim.lr: Input should be less than or equal to 1"),
    ("variants.lstm_row.optim.weight_decay", 1.0e38, "optim.weight_decay: Input should be less than or equal to 1"),
    ("tracking.on_unreachable", "ignore", "tracking.on_unreachable"),
    ("variants.lstm_row.optim.epochs_at_scale", {3: 5}, "epochs_at_scale: only SR trainings have a scale"),
    ("variants.lsrcnn.optim.epochs_at_scale", {3: 0}, "epochs_at_scale.3: Input should be greater than or equal to 1"),
    ("variants.lsrcnn.optim.epochs_at_scale", {1: 5}, "epochs_at_scale.1.[key]: Input should be greater than or equal"),
])
def test_bad_values_name_the_key(path, value, needle):
    with pytest.raises(ParamsError) as err:
        parse_params(_with(path, value))
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_cli_exits_2_before_touching_outputs(project, cli):
    (project / "data" / "raw").mkdir(parents=True)
    marker = project / "data" / "raw" / "keep.txt"
    marker.write_text("precious")
    (project / "params.yaml").write_text(yaml.safe_dump(_with("data.sr.scales", [7])))
    proc = cli(["download"], cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: params.yaml: data.sr.scales: 7 is not one of 2, 3, 4"
    assert marker.read_text() == "precious"


def test_broken_yaml_is_one_line(project, cli):
    (project / "params.yaml").write_text("seed: [1,\n")
    proc = cli(["split"], cwd=project)
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr and proc.stderr.count("\n") == 1


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_every_profile_applies_and_the_gpu_profile_keeps_the_paper_protocol(tmp_path, root):
    from pipeline.config.profiles import apply_profile

    shutil.copytree(root / "profiles", tmp_path / "profiles")
    applied = {}
    for profile in sorted(p.stem for p in (root / "profiles").glob("*.yaml")):
        shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
        apply_profile(tmp_path, profile)
        applied[profile] = load_params(tmp_path / "params.yaml")
    paper, gpu = applied["paper"], applied["gpu"]
    assert not paper.run.classification and paper.data.sr.train == ["t91", "bsd200"]
    assert gpu.data.sr == paper.data.sr and gpu.run.sr == paper.run.sr and gpu.run.classification


def test_epochs_at_scale_sizes_each_scale_as_if_epochs_were_written_there():
    """A training at a listed scale runs, keys and records the scale's epochs, exactly as a variant written with
    those epochs would; other scales and every variant without the table keep their keys (nothing retrains)."""
    from pipeline.training.identity import run_key, run_params
    from pipeline.training.runs import variant_trainings

    def at_scales(**optim):
        raw = _with("data.sr.scales", [2, 4])
        raw["seeds"] = [1]
        raw["variants"]["lsrcnn"]["optim"].update(optim)
        return {t.scale: t for t in variant_trainings("lsrcnn", parse_params(raw))}

    epochs = BASE["variants"]["lsrcnn"]["optim"]["epochs"]
    plain, sized, written = at_scales(), at_scales(epochs_at_scale={4: epochs + 7}), at_scales(epochs=epochs + 7)
    assert sized[4].variant.optim.epochs == epochs + 7 and sized[2].variant.optim.epochs == epochs
    assert run_key(sized[4]) == run_key(written[4]) != run_key(plain[4])
    assert run_key(sized[2]) == run_key(plain[2])
    assert run_params(sized[4]) == run_params(written[4])
