"""`dvc plots show` draws without a network: the project's HTML template (.dvc/config plots.html_template)
carries the Vega scripts DVC's own page fetches from a CDN."""

import re
import shutil
import subprocess
import sys

import pytest


def test_dvc_plots_show_writes_a_page_with_no_external_script(project, root):
    shutil.copytree(root / "plots", project / "plots")  # the committed default run's curves
    out = project / "page"
    proc = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(out)], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (out / "index.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched: every script is in the page
    assert "vega-embed 6.18.2" in page and "vega-lite 5.2.0" in page and "vega 5.20.2" in page
    assert "vegaEmbed('#plots_compare_classification_csv'" in page and "vegaEmbed('#plots_compare_sr_csv'" in page


def test_the_page_draws_its_charts_in_a_browser_offline(project, root, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("no chromium (Debian's chromium package) to draw the page; .ci/run does not install it")
    shutil.copytree(root / "plots", project / "plots")
    out = project / "page"
    assert subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(out)], cwd=project,
                          capture_output=True, timeout=300).returncode == 0
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count('<canvas width="') >= 2, dom[-2000:]  # vega-embed drew both charts
