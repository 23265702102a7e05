import inspect

import pytest
import torch
from torch import nn

from pipeline import tasks
from pipeline.config.architectures import ARCHITECTURES
from pipeline.imaging.resize import imresize
from pipeline.tasks.classification.lstm_gates import GateLSTM
from pipeline.tasks.models import build, count_parameters, load_model, save_model
from pipeline.tasks.sr.networks import bicubic_upscale

CLS_INPUTS = {"rows": (4, 28, 28), "pixels": (4, 49, 1), "permuted": (4, 49, 1), "image": (4, 1, 28, 28)}


@pytest.mark.parametrize("arch", [a for a, s in ARCHITECTURES.items() if s.task == "classification"])
def test_classifiers_produce_logits(arch):
    spec = ARCHITECTURES[arch]
    for view in spec.views:
        shape = CLS_INPUTS[view]
        net = build(arch, {"input_size": shape[-1], "num_classes": 10, "image_size": 28}, {})
        assert net(torch.rand(shape)).shape == (4, 10)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_option_is_a_constructor_argument_with_the_same_default(arch):
    """The options schema (what params may say) and the network (what it accepts) agree."""
    spec = ARCHITECTURES[arch]
    assert set(tasks.networks(spec.task)) == {a for a, s in ARCHITECTURES.items() if s.task == spec.task}
    accepted = inspect.signature(tasks.networks(spec.task)[arch]).parameters
    for name, field in ARCHITECTURES[arch].options.model_fields.items():
        assert name in accepted, f"{arch}: option {name} is not a constructor argument"
        assert accepted[name].default == field.default, f"{arch}.{name}: defaults differ"


def test_ablated_body_leaves_the_decoder_nothing_to_read():
    torch.manual_seed(0)
    net = build("lsrcnn", {"scale": 2, "channels": 1}, {"features": 8, "hidden": 8, "ablate_body": True})
    x = torch.rand(1, 1, 6, 6)
    out = net(x)
    # The residual over bicubic is the decoder's response to zeros: the same for any input.
    residual_a = out - bicubic_upscale(x, 2)
    y = torch.rand(1, 1, 6, 6)
    residual_b = net(y) - bicubic_upscale(y, 2)
    assert torch.allclose(residual_a, residual_b, atol=1e-6)


def test_residual_scale_travels_with_the_weights(tmp_path):
    """The residual over bicubic is scaled by the option; an export from before the option (no buffer in its
    weights, trained unscaled) loads with scale 1, so it answers as it was trained."""
    torch.manual_seed(0)
    spec = {"task": "sr", "arch": "lsrcnn", "data_args": {"scale": 2, "channels": 1},
            "model": {"features": 8, "hidden": 8}}
    x = torch.rand(1, 1, 6, 6)
    unscaled = build("lsrcnn", spec["data_args"], spec["model"] | {"residual_scale": 1.0})
    scaled = build("lsrcnn", spec["data_args"], spec["model"])
    scaled.load_state_dict(unscaled.state_dict() | {"residual_scale": torch.tensor(0.1)})
    residual = unscaled(x) - bicubic_upscale(x, 2)
    assert torch.allclose(scaled(x) - bicubic_upscale(x, 2), 0.1 * residual, atol=1e-6)
    old_weights = {k: v for k, v in unscaled.state_dict().items() if k != "residual_scale"}
    save_model(unscaled, spec, tmp_path)
    torch.save(old_weights, tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path)
    assert torch.allclose(loaded(x), unscaled(x), atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm", "gates"])
def test_recurrent_cells(cell):
    net = build("recurrent", {"input_size": 28, "num_classes": 10}, {"cell": cell, "hidden": 16})
    assert net(torch.rand(2, 28, 28)).shape == (2, 10)


def test_bidirectional_uses_both_ends():
    net = build("recurrent", {"input_size": 8, "num_classes": 3}, {"bidirectional": True, "hidden": 5})
    assert net.head.in_features == 10 and net(torch.rand(2, 6, 8)).shape == (2, 3)


@pytest.mark.parametrize("arch,attention", [("lsrcnn", "none"), ("lsrcnn", "channel"), ("lsrcnn", "spatial"),
                                            ("lsrcnn", "mixed"), ("cnn_sr", "none")])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_nets_upscale(arch, attention, scale):
    net = build(arch, {"scale": scale, "channels": 1}, {"features": 8, "hidden": 8, "attention": attention})
    assert net(torch.rand(2, 1, 7, 9)).shape == (2, 1, 7 * scale, 9 * scale)


def test_untrained_decoder_at_zero_is_exactly_bicubic():
    net = build("lsrcnn", {"scale": 2, "channels": 1}, {"features": 8, "hidden": 8})
    for p in net.decoder.parameters():
        nn.init.zeros_(p)
    x = torch.rand(1, 1, 10, 12, dtype=torch.float64)
    assert torch.allclose(net.double()(x), imresize(x, 2))
    assert torch.allclose(bicubic_upscale(x, 3), imresize(x, 3))


def test_lstm_and_conv_ablation_have_comparable_size():
    lstm = count_parameters(build("lsrcnn", {"scale": 2, "channels": 1}, {"features": 32, "hidden": 32}))
    conv = count_parameters(build("cnn_sr", {"scale": 2, "channels": 1}, {"features": 32, "hidden": 32}))
    assert 0.5 < conv / lstm < 2


@pytest.mark.parametrize("layers", [1, 2])
def test_gate_lstm_equals_torch_lstm(layers):
    """Same weights -> same outputs, states and gradients (float64, 1e-5)."""
    torch.manual_seed(0)
    ref = nn.LSTM(7, 11, num_layers=layers, batch_first=True).double()
    ours = GateLSTM(7, 11, num_layers=layers).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 9, 7, dtype=torch.float64)
    h0 = torch.randn(layers, 3, 11, dtype=torch.float64)
    c0 = torch.randn(layers, 3, 11, dtype=torch.float64)
    leaves = [[t.clone().requires_grad_() for t in (x, h0, c0)] for _ in range(2)]
    out_r, (h_r, c_r) = ref(leaves[0][0], tuple(leaves[0][1:]))
    out_o, (h_o, c_o) = ours(leaves[1][0], tuple(leaves[1][1:]))
    for a, b in ((out_r, out_o), (h_r, h_o), (c_r, c_o)):
        assert torch.allclose(a, b, atol=1e-5)
    # A loss that reaches the outputs and both final states, so every path of the backward is used.
    weights = [torch.randn_like(t) for t in (out_r, h_r, c_r)]
    sum(((t * w).sum() for t, w in zip((out_r, h_r, c_r), weights, strict=True))).backward()
    sum(((t * w).sum() for t, w in zip((out_o, h_o, c_o), weights, strict=True))).backward()
    for mine, theirs in zip(leaves[1], leaves[0], strict=True):  # input and initial states
        assert torch.allclose(theirs.grad, mine.grad, atol=1e-5)
    for name, p in ref.named_parameters():
        assert torch.allclose(p.grad, dict(ours.named_parameters())[name].grad, atol=1e-5), name


def test_gate_lstm_float32_fast_path_matches_torch_lstm():
    """float32 on CPU takes the fast path (oneDNN products, tanh through sigmoid, the wide-hidden weight
    gradient): it must still be nn.LSTM up to float32 roundoff."""
    torch.manual_seed(0)
    ref = nn.LSTM(5, 256, num_layers=2, batch_first=True)
    ours = GateLSTM(5, 256, num_layers=2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 6, 5)
    outs = [model(x)[0] for model in (ref, ours)]
    assert (outs[0] - outs[1]).abs().max() < 1e-5
    weight = torch.randn_like(outs[0])
    for out in outs:
        (out * weight).sum().backward()
    for name, p in ref.named_parameters():
        mine = dict(ours.named_parameters())[name].grad
        assert (p.grad - mine).abs().max() <= 1e-5 * (1 + p.grad.abs().max()), name
