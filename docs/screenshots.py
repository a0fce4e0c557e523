"""The README's screenshots of the page at /ui: one PNG per tab in docs/.

    python docs/screenshots.py MODELS_DIR     # e.g. models/ after `dvc repro`

Starts `bentoml serve` from MODELS_DIR on 127.0.0.1 and drives Debian's Chromium through Playwright
with the page's bundled sample images.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.launch import bentoml_server  # noqa: E402


def main(models: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("error: no Chromium (apt-get install chromium)")
    with bentoml_server(models.resolve(), CNNPIPE_THREADS="1") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 640})
        page.goto(f"{base}/ui/")
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        page.click('.picker[data-for="classify"] .samples button >> nth=0')
        page.wait_for_selector("#classify .cam:not([hidden]) #cam[data-target]", timeout=120_000)
        page.eval_on_selector("#cam", "img => img.decode()")
        page.screenshot(path=ROOT / "docs/ui-classify.png")

        page.click("[data-tab=superres]")
        page.click('.picker[data-for="superres"] .samples button >> nth=2')
        page.select_option("#scale", page.eval_on_selector("#scale", "s => s.options[s.options.length - 1].value"))
        page.click("#upscale")
        page.wait_for_selector("#superres[data-ms]", timeout=120_000)
        page.screenshot(path=ROOT / "docs/ui-superres.png")

        page.click("[data-tab=dream]")
        page.click('.picker[data-for="dream"] .samples button >> nth=0')
        page.fill("#octaves", "3")
        page.fill("#steps", "20")
        page.click("#dream-start")
        page.wait_for_function("document.querySelector('#dream-state').textContent === 'done'", timeout=300_000)
        page.screenshot(path=ROOT / "docs/ui-deepdream.png")

        page.click("[data-tab=models]")
        page.screenshot(path=ROOT / "docs/ui-models.png")
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models")
