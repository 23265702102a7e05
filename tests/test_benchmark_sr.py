"""benchmark-sr reproduces the published bicubic rows (the mirror's Set5/Set14) and streams its images."""

import gc
import json
import weakref

import pytest
import torch

from pipeline.data.sources import MIRROR_SETS
from pipeline.report.published import published_classification, published_sr
from pipeline.tasks.sr.evaluate import bicubic, evaluate_images

BICUBIC = published_sr().query("method == 'bicubic'")
# A faithful evaluator lands within a few hundredths of the published figures (sources of the
# same images differ slightly): the mirror's README.
PSNR_TOLERANCE, SSIM_TOLERANCE = 0.03, 0.0015


@pytest.mark.parametrize("dataset,scale", sorted(zip(BICUBIC.set, BICUBIC.scale, strict=True)))
def test_bicubic_matches_published_row(tmp_path, dataset, scale, cli, root, mirror):
    folder = mirror / MIRROR_SETS[dataset].folder
    if not folder.is_dir():
        pytest.skip(f"no {folder} in the mirror")
    out = tmp_path / "result.json"
    proc = cli(["benchmark-sr", "--model", "bicubic", "--hr-dir", str(folder), "--scale", str(scale),
                "--json", str(out)], cwd=root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    row = BICUBIC[(BICUBIC.set == dataset) & (BICUBIC.scale == scale)].iloc[0]
    assert result["model"] == "bicubic" and result["scale"] == scale
    assert result["images"] == len(result["per_image"]) == len(MIRROR_SETS[dataset].checksums)
    assert abs(result["psnr"] - row.psnr) <= PSNR_TOLERANCE, result["psnr"]
    assert abs(result["ssim"] - row.ssim) <= SSIM_TOLERANCE, result["ssim"]
    assert "mean" in proc.stdout


def test_published_table_names_a_source_for_every_row():
    table = published_sr()
    assert table.source.str.len().min() > 10 and not table.isna().any().any()
    # Every method has every (set, scale) of the table, so the report's anchors are complete.
    assert (table.groupby("method").size() == 6).all()
    assert set(table.set) <= set(MIRROR_SETS)


def test_published_mnist_rows_name_a_source_and_only_the_views_asked():
    table = published_classification({"pixels", "permuted"})
    assert table.source.str.len().min() > 10 and not table.isna().any().any()
    assert set(table.view) == {"pixels", "permuted"} and table.accuracy.between(0.5, 1).all()
    assert published_classification({"rows"}).empty  # no canonical row-by-row figure: none invented


def test_bad_arguments_exit_2_with_one_line(tmp_path, cli, root):
    proc = cli(["benchmark-sr", "--model", "bicubic", "--hr-dir", str(tmp_path / "nope"), "--scale", "2"],
                   cwd=root)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a folder" in proc.stderr
    proc = cli(["benchmark-sr", "--model", "nosuchmodel", "--hr-dir", str(tmp_path), "--scale", "2"], cwd=root)
    assert proc.returncode == 2 and "nosuchmodel" in proc.stderr


def test_evaluation_streams_one_image_at_a_time():
    """Memory does not grow with the set: when image i is read, none before i - 1 is still alive."""
    alive = []

    def pages():
        for i in range(6):
            gc.collect()
            assert sum(ref() is not None for ref in alive[:-1]) == 0, f"image {i}: earlier images still held"
            image = torch.rand(3, 40, 36, dtype=torch.float64)
            alive.append(weakref.ref(image))
            yield f"p{i}", image

    scores, first = evaluate_images(bicubic, pages(), 2)
    assert len(scores) == 6 and first.shape == (3, 40, 36)
