"""The web UI in a real headless Chromium (Playwright): `personseg serve` in a subprocess; upload, the result on
its own over a checkerboard, download.

Needs the system Chromium (Debian: apt-get install chromium; `sh scripts/ensure_chromium.sh` does it), not
Playwright's own browser download. Skipped, with the reason, only when no Chromium binary exists.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Headless in a container, offline: no sandbox, no GPU, none of Chromium's own background requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "ui-test-key"
ASSETS = Path(__file__).resolve().parent.parent / "src" / "personseg" / "assets"


def find_chromium() -> str | None:
    """$CHROMIUM, else the first Chromium-family browser on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).is_file():
        return explicit
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`personseg serve` with the UI and an API key, on a free 127.0.0.1 port."""
    pytest.importorskip("gradio")
    pytest.importorskip("uvicorn")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [sys.executable, "-m", "personseg", "serve", "--port", str(port), "--model", "personseg-fast"]
    cmd += ["--threads", "1", "--api-key", API_KEY]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"personseg serve did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or run sh scripts/ensure_chromium.sh)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_ui_runs_on_upload_over_a_checkerboard_and_downloads_the_png(browser, server, tmp_path):
    # A 200 x 160 upload made here from the bundled public-domain photo (a real person, so a real mask).
    upload = tmp_path / "upload.png"
    Image.open(ASSETS / "astronaut.png").convert("RGB").resize((200, 160), Image.BILINEAR).save(upload)
    # The UI is behind the API key too: the browser sends it as HTTP Basic (the key is the password).
    context = browser.new_context(
        accept_downloads=True,
        http_credentials={"username": "me", "password": API_KEY},
        viewport={"width": 1280, "height": 900},
    )
    page = context.new_page()
    try:
        page.goto(f"{server}/ui/", wait_until="domcontentloaded")
        page.wait_for_selector("#run-button", timeout=60_000)
        # The background options start folded in one labelled panel.
        panel = page.locator("#background")
        assert panel.get_by_text("Background: transparent, colour, image or blur").is_visible()
        assert not panel.get_by_text("New background").is_visible()
        page.locator("#input-image input[type=file]").set_input_files(str(upload))
        # No click: the result comes on its own.
        result = page.locator("#result-image img")
        result.wait_for(timeout=120_000)
        assert "conic-gradient" in result.evaluate("e => getComputedStyle(e).backgroundImage")
        download_button = page.locator("#download-png")
        sync_api.expect(download_button).to_be_enabled(timeout=30_000)
        result.screenshot(path=str(tmp_path / "result-shown.png"))
        page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)
        with page.expect_download(timeout=30_000) as download:
            download_button.click()
        saved = tmp_path / "result.png"
        download.value.save_as(saved)
        panel.get_by_text("Background: transparent, colour, image or blur").click()
        sync_api.expect(panel.get_by_text("New background")).to_be_visible(timeout=10_000)
    finally:
        context.close()
    result = Image.open(saved)
    assert result.format == "PNG" and result.mode == "RGBA"
    assert result.size == (200, 160)
    alpha = np.asarray(result)[..., 3]
    assert (alpha == 0).mean() > 0.2 and (alpha == 255).mean() > 0.02  # background gone, astronaut kept
    # On screen the transparent part shows the checkerboard's grey and white squares.
    shown = np.asarray(Image.open(tmp_path / "result-shown.png").convert("RGB")).astype(int)
    grey = (np.abs(shown - 200) <= 3).all(axis=2).mean()
    white = (shown >= 252).all(axis=2).mean()
    assert grey > 0.05 and white > 0.05, (grey, white)
    assert (tmp_path / "ui.png").stat().st_size > 10_000


def test_ui_refuses_a_browser_without_the_key(browser, server):
    context = browser.new_context()
    try:
        # page.goto would fail with net::ERR_INVALID_AUTH_CREDENTIALS in headless mode; the context's own
        # request API shows the response the browser got.
        response = context.request.get(f"{server}/ui/")
        assert response.status == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert context.request.get(f"{server}/health").status == 200
    finally:
        context.close()


# --- issue 16: /docs and /redoc render from the installed assets, with no request leaving 127.0.0.1 ------------


def offline_context(browser, outside: list[str]):
    """A context with the key that lets only 127.0.0.1 through: any other request is aborted and noted."""
    context = browser.new_context(
        http_credentials={"username": "me", "password": API_KEY}, viewport={"width": 1280, "height": 900}
    )

    def gate(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", gate)
    return context


def shown_text(locator) -> str:
    """The rendered text, without the zero-width breaks Swagger UI and ReDoc put into long paths."""
    return " ".join(locator.all_inner_texts()).replace("\u200b", "")


@contextlib.contextmanager
def offline_page(browser, url: str):
    """A page loaded from ``url`` with every request off 127.0.0.1 blocked; on exit, asserts that none was
    attempted and that the page raised no JavaScript error."""
    outside: list[str] = []
    errors: list[str] = []
    context = offline_context(browser, outside)
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, wait_until="domcontentloaded")
        yield page
    finally:
        context.close()
    assert outside == [], outside
    assert errors == [], errors


def test_swagger_ui_renders_the_routes_offline(browser, server):
    with offline_page(browser, f"{server}/docs") as page:
        # Operation blocks exist only when swagger-ui-bundle.js ran and rendered /openapi.json (the plain
        # page without the assets lists the routes too, but has no .swagger-ui element).
        page.wait_for_selector(".swagger-ui .opblock .opblock-summary-path", timeout=30_000)
        blocks = page.locator(".swagger-ui .opblock")
        paths = shown_text(page.locator(".swagger-ui .opblock .opblock-summary-path"))
        assert "/v1/remove" in paths and "/v1/mask" in paths, paths
        remove = page.locator(".swagger-ui .opblock.opblock-post", has=page.locator("[data-path='/v1/remove']"))
        assert remove.count() == 1 and remove.first.is_visible()
        assert blocks.count() >= 4  # /v1/remove, /v1/mask, /v1/models, /health ...
        # The stylesheet came too: the POST block is styled (Swagger UI's green), not bare HTML.
        colour = remove.first.locator(".opblock-summary-method").evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(73, 204, 144)", colour


def test_redoc_renders_the_routes_offline(browser, server):
    with offline_page(browser, f"{server}/redoc") as page:
        # ReDoc's operation sections exist only when redoc.standalone.js ran and rendered /openapi.json.
        page.wait_for_selector("redoc [data-section-id*='operation/']", timeout=30_000)
        sections = page.locator("redoc [data-section-id*='operation/']")
        assert sections.count() >= 4
        text = shown_text(sections)
        assert "/v1/remove" in text and "/v1/mask" in text, text[:2000]
        # The side menu lists the operations too, with their HTTP methods.
        menu = shown_text(page.locator("redoc .menu-content"))
        assert "post" in menu.lower(), menu
