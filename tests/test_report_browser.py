"""The report opened in a real headless Chromium, from disk: every embedded figure and every
PNG beside the page decodes, and a screenshot of the page is taken."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from harness.cli.report import build_report
from harness.report.figures import DPI, WIDTH

FIXTURES = Path(__file__).parent / "fixtures" / "results"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((b for b in map(shutil.which, BROWSERS) if b), None)

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium on PATH (Debian: apt-get install chromium)"
)

# Appended to a copy of the page only (the report itself carries no script): once the page
# has loaded, record the decoded width of every <img> and of every linked PNG file.
PROBE = """<script>
window.addEventListener("load", async () => {
  const widths = (src) => new Promise((done) => {
    const img = new Image();
    img.onload = () => done(img.naturalWidth);
    img.onerror = () => done(0);
    img.src = src;
  });
  const embedded = [...document.images].map((i) => (i.complete ? i.naturalWidth : 0));
  const linked = await Promise.all(
    [...document.querySelectorAll('a[href$=".png"]')].map((a) => widths(a.href)));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({embedded, linked});
  document.body.appendChild(out);
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [
            str(BROWSER),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    return build_report([FIXTURES / "small_a", FIXTURES / "small_b"], out)


@pytest.mark.system
def test_every_image_loads_in_chromium(report: Path, tmp_path: Path) -> None:
    probe = report.parent / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    result = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not run: {result.stderr[-2000:]}"
    found = json.loads(match.group(1))
    pngs = sorted(report.parent.glob("*.png"))
    assert len(found["embedded"]) == len(pngs) == len(found["linked"]) == 10
    width = round(WIDTH * DPI)  # every figure is one column wide
    assert all(w == width for w in found["embedded"]), found
    assert all(w == width for w in found["linked"]), found


@pytest.mark.system
def test_screenshot(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "screenshot.png"
    result = chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1400,3000", "--hide-scrollbars",
        report.as_uri(),
    )  # fmt: skip
    assert shot.is_file(), result.stderr[-2000:]
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (3000, 1400)
    # A rendered page, not a blank one: text and figures make the pixels vary.
    assert float(np.std(image[..., :3])) > 0.05
