"""`dvc plots show` draws without a network: the project's HTML template (.dvc/config plots.html_template)
carries the Vega scripts DVC's own page fetches from a CDN."""

import re
import shutil
import subprocess

import pytest
from dvc_render.vega import VegaRenderer


@pytest.fixture
def page(project, root, dvc):
    """The page a plain `dvc plots show` writes (the project's config, no --html-template) for the committed
    default run's curves."""
    shutil.copytree(root / "plots", project / "plots")
    proc = dvc(project, "plots", "show", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return project / "dvc_plots" / "index.html"


def test_dvc_plots_show_writes_a_page_with_no_external_script(page):
    html = page.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html)  # nothing fetched: every script is in the page
    # the scripts written in are the versions the installed renderer would fetch (a DVC upgrade that moves
    # them fails here: refresh the template with `npm pack` as its header says)
    wanted = re.findall(r"/npm/([a-z-]+)@([\d.]+)", VegaRenderer.SCRIPTS)
    assert {name for name, _ in wanted} == {"vega", "vega-lite", "vega-embed"}, VegaRenderer.SCRIPTS
    for name, version in wanted:
        assert f"<script>/* {name} {version} (BSD-3-Clause" in html
    assert "vegaEmbed('#plots_compare_classification_csv'" in html and "vegaEmbed('#plots_compare_sr_csv'" in html


def test_the_page_draws_its_charts_in_a_browser_offline(page, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("no chromium (Debian's chromium package) to draw the page; .ci/run does not install it")
    # every host name fails to resolve, so the check holds on a machine with a network too (DVC's own page
    # draws nothing here: "vegaEmbed is not defined")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('<canvas width="') >= 2, dom[-2000:]  # vega-embed drew both charts
