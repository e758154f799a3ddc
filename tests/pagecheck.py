"""The report's self-test in a browser: report.html opened in the system's headless
Chromium (driven by Playwright, no browser download, no network) at 1400 px and at 390 px
wide, a full-page screenshot of each, and what a lab owner must see without a click; and the
certificate read back from its PDF (pdfinfo, pdftotext)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium")
WIDTHS = (1400, 390)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class PageView:
    width: int
    screenshot: Path
    visible: dict[str, bool]  # selector -> visible in the viewport's page without a click
    broken_images: list[str]  # alt texts of images that did not decode
    images: int
    overflow_px: int  # how far the page is wider than the window (0: no sideways scroll)
    blank: bool  # the screenshot is one colour


SELECTORS = ("#xenlab-verdict", "#xenlab-matrix", "#xenlab-distribution",
             "#xenlab-timelines img", "#xenlab-split")


def view(report: Path, out: Path) -> list[PageView]:
    from matplotlib.image import imread
    from playwright.sync_api import sync_playwright

    views = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(report.as_uri(), wait_until="load")
                visible = {s: page.locator(s).first.is_visible() for s in SELECTORS}
                # pytest-html's media viewer keeps an <img src=""> per row for extras
                # that a row may not have: only images with a source are judged
                images = "[...document.images].filter(i => i.getAttribute('src'))"
                broken = page.evaluate(
                    f"{images}.filter(i => !i.complete || i.naturalWidth === 0)"
                    ".map(i => i.alt || i.src.slice(0, 60))")
                count = page.evaluate(f"{images}.length")
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth")
                shot = out / f"report-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                pixels = imread(str(shot))
                views.append(PageView(width, shot, visible, broken, count, max(0, overflow),
                                      float(pixels.std()) < 0.01))
                page.close()
        finally:
            browser.close()
    return views


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    line = next(line for line in info.stdout.splitlines() if line.startswith("Pages:"))
    return int(line.split()[1])


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
