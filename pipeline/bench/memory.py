"""Peak memory of SR evaluation, each measured in a fresh process that imports only the evaluation."""

from __future__ import annotations

import multiprocessing
import resource

import torch

from pipeline.tasks.sr.evaluate import bicubic, evaluate_images


def _peak_rss_of_evaluation(images: int, side: tuple[int, int], scale: int, queue) -> None:
    """Child process: stream ``images`` synthetic HR pages through the bicubic evaluation, report peak RSS."""
    def pages():
        gen = torch.Generator().manual_seed(0)
        for i in range(images):
            yield f"page{i}", torch.randint(0, 256, (3, *side), generator=gen).double() / 255
    evaluate_images(bicubic, pages(), scale)
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB -> MiB on Linux


def evaluation_memory(images: int = 20, side: tuple[int, int] = (1170, 1654), scale: int = 4) -> dict:
    """Peak resident memory of evaluating a large set against a 2-image set of the same pages
    (Manga109's page size by default): about 1 when evaluation streams."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited in the figure
    peaks = {}
    for count in (2, images):
        queue = context.Queue()
        child = context.Process(target=_peak_rss_of_evaluation, args=(count, side, scale, queue))
        child.start()
        peaks[count] = queue.get()
        child.join()
    return {"images": images, "side": list(side), "scale": scale, "peak_mib_2_images": peaks[2],
            "peak_mib": peaks[images], "over_2_images": peaks[images] / peaks[2]}
