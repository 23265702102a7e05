"""benchmark-sr reproduces the published bicubic tables (needs the local mirror of Set5/Set14)."""

import json

import pytest

PUBLISHED = {  # PSNR / SSIM, Y channel, border = scale, MATLAB bicubic
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}

@pytest.mark.parametrize("dataset,scale", sorted(PUBLISHED))
def test_bicubic_matches_published_table(tmp_path, dataset, scale, cli, root, mirror):
    out = tmp_path / "result.json"
    proc = cli(["benchmark-sr", "--model", "bicubic", "--hr-dir", str(mirror / dataset), "--scale",
                    str(scale), "--json", str(out)], cwd=root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    psnr, ssim = PUBLISHED[(dataset, scale)]
    assert result["model"] == "bicubic" and result["scale"] == scale
    assert result["images"] == len(result["per_image"]) == (5 if dataset == "Set5" else 14)
    assert abs(result["psnr"] - psnr) <= 0.03, result["psnr"]
    assert abs(result["ssim"] - ssim) <= 0.0015, result["ssim"]
    assert "mean" in proc.stdout


def test_bad_arguments_exit_2_with_one_line(tmp_path, cli, root):
    proc = cli(["benchmark-sr", "--model", "bicubic", "--hr-dir", str(tmp_path / "nope"), "--scale", "2"],
                   cwd=root)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a folder" in proc.stderr
    proc = cli(["benchmark-sr", "--model", "nosuchmodel", "--hr-dir", str(tmp_path), "--scale", "2"], cwd=root)
    assert proc.returncode == 2 and "nosuchmodel" in proc.stderr
