"""Each kind of report opened from disk in headless Chromium (Debian's ``chromium``), in a
1280 px window: no errors or broken images, the first figure near the top, no figure
shrunk below 60% of its width, no sideways scrolling, and a page under 1 MB.

CI installs Chromium and sets ``NEURALTRADER_BROWSER_TESTS=1``, which turns a missing
browser into a failure; elsewhere these tests are skipped without one. Screenshots go
to ``$NEURALTRADER_SCREENSHOTS`` when it is set, else under pytest's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pytest

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
if BROWSER is None and os.environ.get("NEURALTRADER_BROWSER_TESTS") == "1":
    raise RuntimeError("NEURALTRADER_BROWSER_TESTS=1 but no chromium on PATH")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
]

# Injected into a copy of the page: counts errors and broken images once it has loaded,
# and measures the layout (every image's place and scale, the page's width).
CHECKER = """<script>
const ntErrors = [];
window.addEventListener("error", (event) => ntErrors.push(String(event.message ||
  (event.target && event.target.src) || "error")), true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const marker = document.createElement("pre");
  marker.id = "nt-check";
  marker.textContent = JSON.stringify({images: images.length, errors: ntErrors,
    broken: images.filter((image) => !image.complete || image.naturalWidth === 0).length,
    placed: images.map((image) => {
      const box = image.getBoundingClientRect();
      return {top: box.top + window.scrollY, width: box.width, natural: image.naturalWidth,
              alt: image.alt};
    }),
    windowWidth: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth});
  document.body.appendChild(marker);
});
</script>"""


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )


WIDTH = 1280  # a laptop window, in CSS pixels


@pytest.mark.parametrize("kind", ["study", "sweep", "backtest", "demo"])
def test_report_opens_from_disk_and_reads_at_1280_px(finished_runs, tmp_path, kind):
    report = finished_runs[kind] / "report.html"
    assert report.stat().st_size < 1_000_000
    shots = Path(os.environ.get("NEURALTRADER_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / f"report-{kind}.png"

    shown = _chromium(report, tmp_path / "profile-shot", f"--screenshot={screenshot}",
                      f"--window-size={WIDTH},1600")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert not re.findall(r":CONSOLE[^\n]*", shown.stderr), "console messages from the page"
    assert matplotlib.image.imread(screenshot).shape[:2] == (1600, WIDTH)

    check = _load_check(report.read_text(encoding="utf-8"), tmp_path)
    assert check["images"] >= 1
    assert check["broken"] == 0 and check["errors"] == []
    assert check["windowWidth"] == WIDTH
    assert check["pageWidth"] <= WIDTH, "the page scrolls sideways"  # tables scroll in a box
    first = min(image["top"] for image in check["placed"])
    assert first < 1500, f"the first figure starts {first:.0f} px down"
    for image in check["placed"]:
        scale = image["width"] / image["natural"]
        assert scale >= 0.6, f"{image['alt']!r} shown at {scale:.0%} of its width"


def _load_check(page: str, tmp_path: Path) -> dict:
    """Open a copy of ``page`` with :data:`CHECKER` injected in a :data:`WIDTH` px
    window; return what it counted and measured."""
    checked_copy = tmp_path / "checked.html"
    checked_copy.write_text(page.replace("<head>", "<head>" + CHECKER, 1), encoding="utf-8")
    dumped = _chromium(checked_copy, tmp_path / "profile-check", "--dump-dom",
                       f"--window-size={WIDTH},1600")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'<pre id="nt-check">(.*?)</pre>', dumped.stdout, re.S)
    assert found, "the page never finished loading"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_the_check_sees_a_broken_image(tmp_path):
    page = '<html><head></head><body><img src="data:image/png;base64,AAAA"></body></html>'
    assert _load_check(page, tmp_path)["broken"] == 1
