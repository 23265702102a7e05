"""bench: cost figures, each a ratio against a reference measured in the same run, as JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.core.atomic import unwritable, write_json
from pipeline.core.host import machine
from stages.common import UsageError, command, human_echo

# The two figures that take most of a full bench (~65 s and ~20 s of its ~95 s on 2 cores). `short` keeps
# full's shapes with fewer repeats: 5 pairs of 50 timed steps put the SR step's median within ~+-4% of
# full's (3 runs: 1.03-1.10x against full's 1.00-1.05x), and 8 pages show streaming as 20 do.
SR_STEP = {"full": {}, "short": {"steps": 60, "repeats": 5},
           "quick": {"steps": 20, "patch": 16, "features": 8, "repeats": 1}}
EVALUATION_MEMORY = {"full": {}, "short": {"images": 8}, "quick": {"images": 3, "side": (64, 48)}}


@command
def main(
    json_out: Path = typer.Option(None, "--json", help="also write the figures here ('-': stdout)"),
    size: str = typer.Option("full", help="'full' for figures to quote, 'short' (full shapes, fewer repeats: "
                                          "the pipeline's), 'quick' (small shapes) for a smoke test"),
) -> None:
    """Gate LSTM vs nn.LSTM, Lightning vs bare loops (classifier fit, SR step), resize vs Pillow, evaluation
    memory; prints JSON."""
    if size not in SR_STEP:
        raise UsageError(f"--size must be one of {', '.join(SR_STEP)}, got {size!r}")
    if json_out and (why := unwritable(json_out)):  # check_json_out's check; stages.tools is no dep of this stage
        raise UsageError(f"--json {json_out}: {why}")
    # Only now the measuring code: torch and Lightning take seconds to import, a refusal should not wait on them.
    import torch

    from pipeline.bench.memory import evaluation_memory
    from pipeline.bench.speed import (
        lightning_vs_bare_loop,
        lstm_kernels,
        patch_throughput,
        resize_vs_pillow,
        sr_step_overhead,
        summary_rows,
    )

    say = human_echo(json_out)
    quick = size == "quick"
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    # PyTorch's fastrnns shape (hidden 512, 100 steps) and lstm_gates' own (28 rows of 28 pixels, hidden 128)
    shapes = ([{"batch": 8, "steps": 10, "features": 8, "hidden": 16, "repeats": 2}] if quick else
              [{"batch": 64, "steps": 100, "features": 64, "hidden": 512},
               {"batch": 64, "steps": 28, "features": 28, "hidden": 128}])
    result = {
        "lstm": [lstm_kernels(d, **shape) for d in devices for shape in shapes],
        "lightning": lightning_vs_bare_loop(samples=128, epochs=1, hidden=16, repeats=1) if quick else
        lightning_vs_bare_loop(),
        "sr_step": sr_step_overhead(**SR_STEP[size]),
        "resize": [resize_vs_pillow(d, side=64 if quick else 512) for d in devices],
        "patches": patch_throughput(side=96 if quick else 512),
        "evaluation_memory": evaluation_memory(**EVALUATION_MEMORY[size]),
    }
    result.update(summary=summary_rows(result), machine=machine(), size=size)
    for row in result["summary"]:
        say(f"{row['figure']}: {row['ratio']:.2f}x ({row['ours']} vs {row['reference']})")
    say(f"SR patch extraction: {result['patches']['hr_megapixels_per_s']:.1f} HR megapixels/s; "
        f"machine: {result['machine']}")
    if json_out:
        write_json(json_out, result)
