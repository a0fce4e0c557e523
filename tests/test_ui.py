"""The page at /ui, driven in a real headless Chromium (Debian's, through Playwright) against the real
BentoML service on 127.0.0.1. A screenshot of a failing test's page lands in its pytest temp dir."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnpipe.serve.core import InferenceCore
from serving.launch import bentoml_server

from .images import decoded, encode, photo

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
CHROMIUM = os.environ.get("CNNPIPE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium: `apt-get install chromium` (or set CNNPIPE_CHROMIUM)", allow_module_level=True)

SLOW = 60_000  # ms: generous deadlines, the machine may be loaded


@pytest.fixture(scope="module")
def base(served_models: Path) -> Iterator[str]:
    with bentoml_server(served_models, CNNPIPE_THREADS="1") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The page, loaded; every URL it requests is kept in ``page.requested``."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda r: page.requested.append(r.url))
    page.goto(f"{base}/ui/")
    page.wait_for_selector("body[data-ready=true]", timeout=SLOW)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
    context.close()


def _upload(page, panel: str, name: str, data: bytes, mime: str = "image/png") -> None:
    page.set_input_files(
        f'.picker[data-for="{panel}"] input[type=file]', files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


def test_classify_shows_five_bars_and_the_gradcam_of_a_class_one_picks(page) -> None:
    _upload(page, "classify", "photo.png", encode(Image.fromarray(photo(64, 80))))
    page.wait_for_selector("#classify .bar >> nth=4", timeout=SLOW)
    bars = page.query_selector_all("#classify .bar")
    assert len(bars) == 5
    percents = [float(b.query_selector(".pct").inner_text().removesuffix(" %")) for b in bars]
    assert percents == sorted(percents, reverse=True) and 0 < sum(percents) <= 100.05

    page.wait_for_selector("#classify .cam:not([hidden]) #cam[data-target]", timeout=SLOW)
    top = bars[0].get_attribute("data-label")
    assert page.eval_on_selector("#cam-class", "s => s.selectedOptions[0].text") == top  # the top class first
    other = next(i for i in range(10) if page.eval_on_selector("#cam-class", f"s => s.options[{i}].text") != top)
    page.select_option("#cam-class", str(other))
    page.wait_for_selector(f'#cam[data-target="{other}"]', timeout=SLOW)
    size = page.eval_on_selector(
        "#cam", "img => new Promise(r => img.decode().then(() => r([img.naturalWidth, img.naturalHeight])))"
    )
    assert size == [256, 256]


DROP_OR_PASTE = """([kind, bytes]) => {
    const file = new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"});
    const data = new DataTransfer();
    data.items.add(file);
    if (kind === "drop") {
        const zone = document.querySelector('.picker[data-for="classify"] .drop');
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    } else {
        document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
    }
}"""


@pytest.mark.parametrize("kind", ["drop", "paste"])
def test_an_image_dropped_or_pasted_classifies(page, kind: str) -> None:
    data = list(encode(Image.fromarray(photo(40, 40))))
    page.evaluate(DROP_OR_PASTE, [kind, data])
    page.wait_for_selector("#classify .bar >> nth=4", timeout=SLOW)
    assert page.get_attribute("#classify .preview", "src").startswith("blob:")


def test_a_bundled_sample_classifies_too(page) -> None:
    page.click('.picker[data-for="classify"] .samples button >> nth=0')
    page.wait_for_selector("#classify .bar >> nth=4", timeout=SLOW)


def test_super_resolve_gives_an_image_of_the_right_size(page) -> None:
    page.click("[data-tab=superres]")
    _upload(page, "superres", "small.png", encode(Image.fromarray(photo(30, 40))))
    page.select_option("#scale", "3")
    page.click("#upscale")
    page.wait_for_selector("#superres .compare:not([hidden])", timeout=SLOW)
    size = page.eval_on_selector("#superres .compare .after", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [120, 90]
    assert page.inner_text("#superres .facts").startswith("40×30 → 120×90 (×3) in ")
    assert page.get_attribute("#download", "download") == "small_x3.png"


def test_super_resolve_with_the_self_ensemble_box_ticked(page, served_models: Path) -> None:
    """The PNG the page shows is the core's self-ensemble, not its single pass (Chromium does not
    expose a multipart body with a file to Playwright: the answer shows what the page asked for)."""
    upload = encode(Image.fromarray(photo(30, 40)))
    page.click("[data-tab=superres]")
    _upload(page, "superres", "small.png", upload)
    page.select_option("#scale", "2")
    page.check("#self-ensemble")
    page.click("#upscale")
    done = "document.querySelector('#superres .facts').textContent.includes('self-ensemble')"
    page.wait_for_function(done, timeout=SLOW)
    assert page.inner_text("#superres .facts").startswith("40×30 → 80×60 (×2, self-ensemble) in ")
    shown = page.evaluate(SHOWN_PNG)
    core = InferenceCore(served_models, threads=1)
    served = decoded(base64.b64decode(shown))
    assert np.array_equal(served, decoded(core.super_resolve(upload, 2, True)[0]))
    assert not np.array_equal(served, decoded(core.super_resolve(upload, 2)[0]))


# The super-resolved PNG the page shows, as base64: its blob URL read back in the page.
SHOWN_PNG = """async () => {
  const src = document.querySelector("#superres .compare .after").src;
  const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}"""


def test_deepdream_progress_rises_and_cancel_stops_it_on_the_server(page) -> None:
    page.click("[data-tab=dream]")
    assert page.eval_on_selector_all("#layers option", "os => os.length") > 1
    _upload(page, "dream", "big.png", encode(Image.fromarray(photo(512, 512))))
    page.fill("#octaves", "4")
    page.fill("#steps", "100")  # 400 steps at 512×512: long enough to watch and cancel
    page.click("#dream-start")
    seen = []
    deadline = time.monotonic() + SLOW / 1000
    while len({v for v in seen if 0 < v < 1}) < 3:
        seen.append(page.eval_on_selector("#dream-progress", "p => p.value"))
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    assert seen == sorted(seen), seen  # it rises
    page.click("#dream-cancel")
    page.wait_for_function("document.querySelector('#dream-state').textContent.startsWith('cancelled')", timeout=SLOW)
    stopped_at = page.eval_on_selector("#dream-progress", "p => p.value")
    assert stopped_at < 1
    assert "cancelled at octave" in page.inner_text("#dream-state")
    time.sleep(1.0)
    assert page.eval_on_selector("#dream-progress", "p => p.value") == stopped_at  # no further progress

    _upload(page, "dream", "small.png", encode(Image.fromarray(photo(48, 48))))  # the slot is free again
    page.fill("#octaves", "2")
    page.fill("#steps", "3")
    page.click("#dream-start")
    page.wait_for_function("document.querySelector('#dream-state').textContent === 'done'", timeout=SLOW)
    size = page.eval_on_selector("#dream-result", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [48, 48] and page.eval_on_selector("#dream-progress", "p => p.value") == 1


def test_style_transfer_needs_both_images_and_shows_the_result(page) -> None:
    page.click("[data-tab=style]")
    _upload(page, "style-content", "content.png", encode(Image.fromarray(photo(40, 56, seed=1))))
    assert page.is_disabled("#style-start")  # no style image yet
    _upload(page, "style-style", "style.png", encode(Image.fromarray(photo(32, 32, seed=2))))
    page.fill("#style-steps", "5")
    page.click("#style-start")
    page.wait_for_function("document.querySelector('#style-state').textContent === 'done'", timeout=SLOW)
    size = page.eval_on_selector("#style-result", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [56, 40] and page.eval_on_selector("#style-progress", "p => p.value") == 1

    page.fill("#style-steps", "100000")  # over the server's limit: its message, on the page
    page.click("#style-start")
    page.wait_for_selector("#style .error:not([hidden])", timeout=SLOW)
    assert page.inner_text("#style .error") == "steps must be in 1..500, got 100000"


def test_a_text_file_gets_the_apis_message(page) -> None:
    _upload(page, "classify", "notes.txt", b"not an image at all", mime="text/plain")
    page.wait_for_selector("#classify .error:not([hidden])", timeout=SLOW)
    message = page.inner_text("#classify .error")
    assert message == "the upload is not an image (PNG, JPEG, GIF, BMP, WebP or TIFF)"
    assert "Traceback" not in page.content()


def test_models_tab_shows_versions_and_provenance(page, served_models: Path) -> None:
    page.click("[data-tab=models]")
    rows = page.query_selector_all("#model-table tbody tr")
    cells = [[c.inner_text() for c in row.query_selector_all("td")] for row in rows]
    assert [row[0] for row in cells] == ["classifier", "sr_x2", "sr_x3"]
    assert cells[0][5].startswith("test accuracy ") and "dB (bicubic" in cells[1][5]
    assert all(len(row[3]) >= 10 for row in cells)  # the commit each was exported from


def test_the_page_requests_nothing_outside_this_server(page, base: str) -> None:
    _upload(page, "classify", "photo.png", encode(Image.fromarray(photo(32, 32))))
    page.wait_for_selector("#classify .bar >> nth=4", timeout=SLOW)
    for tab in ("superres", "dream", "style", "models"):
        page.click(f"[data-tab={tab}]")
    outside = [u for u in page.requested if not (u.startswith(f"{base}/") or u.startswith("blob:" + base))]
    assert not outside and f"{base}/ui/app.js" in page.requested
