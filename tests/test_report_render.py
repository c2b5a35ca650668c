"""A Snakemake HTML report renders in headless Chromium: a non-blank screenshot and no console errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def render_report(html: Path, screenshot: Path) -> list[dict]:
    """Open ``html`` in headless Chromium, save a screenshot; return the browser console's SEVERE entries."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(html.resolve().as_uri())
        driver.implicitly_wait(2)
        driver.find_element("tag name", "body")
        driver.save_screenshot(str(screenshot))
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    return [e for e in logs if e.get("level") == "SEVERE"]


def assert_renders(html: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    errors = render_report(html, shot)
    assert errors == [], errors
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 5.0, "the screenshot is blank"


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium "
    "chromium-driver)",
)


@needs_chromium
def test_snakemake_report_renders_in_chromium(tmp_path: Path) -> None:
    (tmp_path / "caption.rst").write_text("A test figure. **Synthetic data, small models.**\n")
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "fig.png"\n\n'
        "rule fig:\n"
        '    output: report("fig.png", caption="caption.rst", category="Figures")\n'
        "    run:\n"
        "        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
        "        plt.plot([0, 1], [0, 1]); plt.savefig(output[0])\n"
    )
    run = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "1",
        "-d",
        str(tmp_path),
        "-s",
        str(tmp_path / "Snakefile"),
    ]
    subprocess.run(run, check=True, capture_output=True)
    subprocess.run([*run, "--report", str(tmp_path / "report.html")], check=True, capture_output=True)
    assert_renders(tmp_path / "report.html", tmp_path)
