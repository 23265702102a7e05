"""Speed figures, each a ratio against a reference timed in the same run (machine speed cancels out)."""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from pipeline.config.schema import Optim
from pipeline.data.batches import batch_loader
from pipeline.data.patches import extract_pairs
from pipeline.imaging.resize import imresize
from pipeline.tasks.classification.lstm_gates import GateLSTM
from pipeline.tasks.classification.train import ClassifierModule
from pipeline.tasks.models import build
from pipeline.tasks.sr.train import SRDataModule, SRModule
from pipeline.training.hardware import lean_determinism
from pipeline.training.loop import quiet_lightning


def _sync(device: str) -> Callable[[], None]:
    """What waits for queued GPU work, so a timing covers the work itself."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


@contextlib.contextmanager
def _stage_determinism():
    """Both sides of a loop comparison in the train stage's mode: deterministic kernels without the NaN fill
    (Lightning's Trainer turns the mode on for good, so a bare loop timed after it would run in it anyway)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    lean_determinism()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median seconds of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def lstm_kernels(device: str, batch: int = 64, steps: int = 100, features: int = 64, hidden: int = 512,
                 repeats: int = 5) -> dict:
    """Forward+backward of the gate-equation LSTM against nn.LSTM (cuDNN on a GPU), same weights."""
    torch.manual_seed(0)
    sync = _sync(device)
    ref = nn.LSTM(features, hidden, batch_first=True).to(device)
    ours = GateLSTM(features, hidden).to(device)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(batch, steps, features, device=device)

    def step(module):
        return lambda: module(x)[0].sum().backward()

    t_ref, t_ours = _timed(step(ref), repeats, sync), _timed(step(ours), repeats, sync)
    return {"device": device, "shape": [batch, steps, features, hidden], "nn_lstm_ms": 1000 * t_ref,
            "gate_lstm_ms": 1000 * t_ours, "gate_over_nn_lstm": t_ours / t_ref}


def resize_vs_pillow(device: str, side: int = 512, repeats: int = 5) -> dict:
    """MATLAB-bicubic x1/2 then x2 of an 8-bit RGB image, against Pillow's bicubic doing the same
    to the same image (the practical limit: C on uint8, not MATLAB-exact)."""
    sync = _sync(device)
    pixels = torch.randint(0, 256, (3, side, side), generator=torch.Generator().manual_seed(0))
    img = (pixels.double() / 255).to(device)
    t = _timed(lambda: imresize(imresize(img, 0.5, quantize=True), 2, quantize=True), repeats, sync)
    pil = Image.fromarray(pixels.permute(1, 2, 0).to(torch.uint8).numpy())
    half = (side // 2, side // 2)
    t_pil = _timed(lambda: pil.resize(half, Image.BICUBIC).resize((side, side), Image.BICUBIC), repeats,
                   lambda: None)
    return {"device": device, "side": side, "ms": 1000 * t, "pillow_ms": 1000 * t_pil,
            "hr_megapixels_per_s": side * side / 1e6 / t, "over_pillow": t / t_pil}


def lightning_vs_bare_loop(samples: int = 2048, epochs: int = 2, hidden: int = 128, repeats: int = 2) -> dict:
    """lstm_row's fit through Lightning against a bare PyTorch loop of the same network, data, batches,
    optimiser, schedule and per-epoch validation (what Lightning's machinery costs)."""
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(samples, 28, 28, generator=gen), torch.randint(0, 10, (samples,), generator=gen))
    val = TensorDataset(torch.rand(samples // 4, 28, 28, generator=gen), torch.randint(0, 10, (samples // 4,),
                                                                                       generator=gen))
    optim = Optim(epochs=epochs, lr=1e-3, batch_size=64)
    net = build("recurrent", {"input_size": 28, "num_classes": 10}, {"cell": "lstm", "hidden": hidden})

    quiet_lightning()

    def lightning_fit():
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", deterministic=True, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0)
        trainer.fit(ClassifierModule(copy.deepcopy(net), optim, 10), batch_loader(data, 64, seed=1),
                    batch_loader(val, 64))

    def bare_fit():
        module = ClassifierModule(copy.deepcopy(net), optim, 10)  # the same steps and metrics, no Trainer
        train, check = batch_loader(data, 64, seed=1), batch_loader(val, 64)
        opt, sched = module.optimizer(epochs * len(train))
        for epoch in range(epochs):
            train.sampler.set_epoch(epoch)
            module.train()
            for i, batch in enumerate(train):
                opt.zero_grad()
                module.training_step(batch, i).backward()
                opt.step()
                sched.step()
            module.eval()
            with torch.no_grad():
                for i, batch in enumerate(check):
                    module.validation_step(batch, i)
            for metric in module.figures().values():
                metric.compute()
                metric.reset()

    with _stage_determinism():
        t_bare, t_lightning = _timed(bare_fit, repeats, lambda: None), _timed(lightning_fit, repeats, lambda: None)
    return {"samples": samples, "epochs": epochs, "bare_s": t_bare, "lightning_s": t_lightning,
            "lightning_over_bare": t_lightning / t_bare}


class _StepClock(L.Callback):
    """Seconds from the start of batch ``first`` to the end of the last: steps alone, not the fit's set-up."""

    def __init__(self, first: int):
        self.first, self.start, self.end = first, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.first:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def sr_step_overhead(steps: int = 110, batch: int = 16, patch: int = 48, scale: int = 2, features: int = 32,
                     repeats: int = 7) -> dict:
    """An SR training step as the train stage takes it (patches read from prepared uint8 arrays through the
    task's data module, the Lightning loop, the task's metrics) against a bare PyTorch loop of the same
    network, batches and optimiser over float tensors already in memory: what everything around the
    forward, backward and optimiser step costs. Both are timed over the same steps after the first ten,
    in turn, and the ratio is the median of the pairs'; validation (once per epoch) is left out of both.
    One pair's ratio strays by up to +-10% on a 2-core machine (0.97-1.16 around a median of 1.03 in
    one run), as much as the overhead itself: hence seven pairs, and their range in the result."""
    warm = 10
    rng = np.random.default_rng(0)
    n = batch * steps * 2
    optim = Optim(epochs=1, lr=1e-3, batch_size=batch)
    net = build("lsrcnn", {"scale": scale, "channels": 1}, {"features": features, "hidden": features})
    quiet_lightning()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / f"x{scale}"
        folder.mkdir()
        np.save(folder / "lr.npy", rng.integers(0, 256, (n, 1, patch // scale, patch // scale), dtype=np.uint8))
        np.save(folder / "hr.npy", rng.integers(0, 256, (n, 1, patch, patch), dtype=np.uint8))
        data = SRDataModule(Path(tmp), scale, batch, val_fraction=0.01, data_seed=0, seed=1)
        data.setup()
        in_memory = [data.train_set[i] for i in batch_loader(data.train_set, batch, seed=1).sampler][:steps]

        def lightning_steps() -> float:
            clock = _StepClock(warm)
            trainer = L.Trainer(max_steps=steps, limit_val_batches=0, accelerator="cpu", deterministic=True,
                                logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, num_sanity_val_steps=0, callbacks=[clock])
            trainer.fit(SRModule(copy.deepcopy(net), optim), datamodule=data)
            return clock.end - clock.start

        def bare_steps() -> float:
            model = copy.deepcopy(net)
            opt = torch.optim.Adam(model.parameters(), lr=optim.lr)
            for i, (lr, hr) in enumerate(in_memory):
                if i == warm:
                    start = time.perf_counter()
                opt.zero_grad()
                F.mse_loss(model(lr), hr).backward()
                opt.step()
            return time.perf_counter() - start

        with _stage_determinism():
            pairs = [(bare_steps(), lightning_steps()) for _ in range(repeats)]  # in turn: drift hits both alike
    timed = steps - warm
    t_bare, t_lightning = (sorted(times)[repeats // 2] for times in zip(*pairs, strict=True))
    ratios = sorted(ours / bare for bare, ours in pairs)
    return {"steps": timed, "batch": batch, "patch": patch, "scale": scale, "features": features,
            "bare_ms_per_step": 1000 * t_bare / timed, "lightning_ms_per_step": 1000 * t_lightning / timed,
            "lightning_over_bare": ratios[repeats // 2], "pair_ratios": ratios}


def patch_throughput(side: int = 512, repeats: int = 3) -> dict:
    """SR patch extraction (x2, 48/24, with the 8 flips/rotations): HR megapixels per second."""
    img = torch.rand(3, side, side, dtype=torch.float64)
    t = _timed(lambda: extract_pairs(img, 2, 48, 24, augment=True), repeats, lambda: None)
    return {"side": side, "hr_megapixels_per_s": side * side / 1e6 / t}


def summary_rows(result: dict) -> list[dict]:
    """Each figure beside its same-run reference, as table rows: (figure, ours, reference, ratio)."""
    rows = [{"figure": f"gate-equation LSTM fwd+bwd, {d['device']}, batch {d['shape'][0]} x {d['shape'][1]} steps, "
                       f"hidden {d['shape'][3]}",
             "ours": f"{d['gate_lstm_ms']:.1f} ms", "reference": f"nn.LSTM {d['nn_lstm_ms']:.1f} ms",
             "ratio": d["gate_over_nn_lstm"]} for d in result["lstm"]]
    fit = result["lightning"]
    rows.append({"figure": f"lstm_row fit, {fit['epochs']} epochs of {fit['samples']} images",
                 "ours": f"Lightning {fit['lightning_s']:.2f} s", "reference": f"bare loop {fit['bare_s']:.2f} s",
                 "ratio": fit["lightning_over_bare"]})
    sr = result["sr_step"]
    rows.append({"figure": f"lsrcnn training step, batch {sr['batch']} of {sr['patch']} px x{sr['scale']} patches, "
                           f"{sr['features']} features",
                 "ours": f"stage's loop {sr['lightning_ms_per_step']:.1f} ms; {len(sr['pair_ratios'])} pairs' "
                         f"ratios {sr['pair_ratios'][0]:.2f}-{sr['pair_ratios'][-1]:.2f}",
                 "reference": f"bare loop {sr['bare_ms_per_step']:.1f} ms", "ratio": sr["lightning_over_bare"]})
    rows += [{"figure": f"MATLAB bicubic x1/2 then x2, {d['side']} px RGB, {d['device']}",
              "ours": f"{d['ms']:.1f} ms", "reference": f"Pillow {d['pillow_ms']:.1f} ms", "ratio": d["over_pillow"]}
             for d in result["resize"]]
    mem = result["evaluation_memory"]
    rows.append({"figure": f"peak memory evaluating {mem['images']} pages of {mem['side'][0]}x{mem['side'][1]} "
                           f"at x{mem['scale']}",
                 "ours": f"{mem['peak_mib']:.0f} MiB", "reference": f"2 pages {mem['peak_mib_2_images']:.0f} MiB",
                 "ratio": mem["over_2_images"]})
    return rows
