"""The HTTP API (personseg.serve.app) through FastAPI's TestClient: every route and option, auth, limits, bad input.

All on CPU with the shipped "personseg-fast" model and the bundled astronaut photo shrunk to 96 x 128.
"""

import io
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from personseg.inference import registry  # noqa: E402
from personseg.inference.api import Segmenter, load_model  # noqa: E402
from personseg.serve.app import API_KEY_ENV, create_app, parse_color  # noqa: E402
from synthetic import two_people  # noqa: E402

H, W = 128, 96


def encoded(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming width x height, with almost no pixel data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    assets = Path(__file__).resolve().parent.parent / "src" / "personseg" / "assets"
    return np.asarray(Image.open(assets / "astronaut.png").convert("RGB").resize((W, H), Image.BILINEAR))


@pytest.fixture(scope="module")
def png(photo) -> bytes:
    return encoded(photo)


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app("personseg-fast", threads=1, max_upload_bytes=300_000)
    with TestClient(app) as c:
        yield c


def post(client: TestClient, png: bytes, route: str = "/v1/remove", **params) -> np.ndarray:
    r = client.post(route, params=params, files={"file": ("photo.png", png, "image/png")})
    assert r.status_code == 200, r.text
    return np.asarray(decode(r.content))


def assert_error(r, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert isinstance(message, str) and message
    for word in words:
        assert word.lower() in message.lower(), message


# --- the good paths --------------------------------------------------------------------------------------------


def test_health_and_models(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["in_flight"] == 0 and health["capacity"] == 2 + 16
    models = client.get("/v1/models").json()
    assert models["default"] == "personseg-fast"
    names = {m["name"]: m for m in models["models"]}
    assert set(names) == {"personseg-fast", "personseg-default"}
    assert names["personseg-fast"]["default"] and names["personseg-fast"]["loaded"]
    assert names["personseg-fast"]["input_size"] == list(registry.SHIPPED_MODELS["personseg-fast"].input_size)


def test_remove_multipart_gives_transparent_png_whose_alpha_is_the_mask(client, png):
    r = client.post("/v1/remove", files={"file": ("photo.png", png, "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert int(r.headers["x-processing-ms"]) >= 0
    cut = decode(r.content)
    assert cut.mode == "RGBA" and cut.size == (W, H)
    mask = decode(client.post("/v1/mask", files={"file": ("p.png", png, "image/png")}).content)
    assert mask.mode == "L" and mask.size == (W, H)
    alpha, m = np.asarray(cut)[..., 3], np.asarray(mask)
    np.testing.assert_array_equal(alpha, m)
    # The astronaut is found: part opaque, much of the background transparent.
    assert (m == 255).mean() > 0.02 and (m == 0).mean() > 0.3


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", None])
def test_remove_raw_body(client, png, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/v1/remove", content=png, headers=headers)
    assert r.status_code == 200, r.text
    assert decode(r.content).mode == "RGBA"


def test_jpeg_input(client, photo):
    out = post(client, encoded(photo, "JPEG"))
    assert out.shape == (H, W, 4)


def test_mask_only_equals_mask_route(client, png):
    np.testing.assert_array_equal(post(client, png, mask_only=True), post(client, png, "/v1/mask"))


def test_bgcolor_fills_the_background(client, png):
    mask = post(client, png, "/v1/mask")
    out = post(client, png, bgcolor="255,0,0")
    assert out.shape == (H, W, 3)
    assert np.abs(out[mask == 0].astype(int) - [255, 0, 0]).max() <= 2
    named = post(client, png, bgcolor="red")
    np.testing.assert_array_equal(named, out)
    see_through = post(client, png, bgcolor="#00ff0080")
    assert see_through.shape == (H, W, 4)
    # Alpha below 0.5/255 rounds to 0 in the mask but still tints the colour by a unit or so.
    assert np.abs(see_through[mask == 0].astype(int) - [0, 255, 0, 128]).max() <= 2


def test_formats(client, png):
    mask = post(client, png, "/v1/mask")
    r = client.post("/v1/remove", params={"format": "jpg"}, content=png)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    jpg = np.asarray(decode(r.content))
    assert jpg.shape == (H, W, 3)
    assert jpg[mask == 0].mean() > 240  # JPEG has no alpha: white background by default
    blue = np.asarray(
        decode(client.post("/v1/remove", params={"format": "jpg", "bgcolor": "blue"}, content=png).content)
    )
    assert blue[mask == 0][:, 2].mean() > 200 and blue[mask == 0][:, 0].mean() < 40
    r = client.post("/v1/remove", params={"format": "webp"}, content=png)
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp" and r.content[8:12] == b"WEBP"
    webp = decode(r.content)
    assert webp.mode == "RGBA" and webp.size == (W, H)
    assert np.abs(np.asarray(webp)[..., 3].astype(int) - mask).max() <= 8
    r = client.post("/v1/remove", params={"format": "png", "mask_only": True}, content=png)
    np.testing.assert_array_equal(np.asarray(decode(r.content)), mask)


def test_jpg_refuses_a_see_through_colour(client, png):
    r = client.post("/v1/remove", params={"format": "jpg", "bgcolor": "0,0,0,0"}, content=png)
    assert_error(r, 400, "jpg")


def test_hard_mask_and_threshold(client, png):
    hard = {t: post(client, png, "/v1/mask", soft=False, threshold=t) for t in (0.05, 0.5, 0.95)}
    for m in hard.values():
        assert set(np.unique(m)) <= {0, 255}
    counts = [(hard[t] == 255).sum() for t in (0.05, 0.5, 0.95)]
    assert counts[0] > counts[1] > counts[2]  # a lower cut keeps more pixels
    soft = post(client, png, "/v1/mask")
    assert ((soft > 0) & (soft < 255)).any()


def test_crop_shrinks_to_the_person(client, png):
    full = post(client, png)
    cropped = post(client, png, crop=True)
    assert cropped.shape[0] <= full.shape[0] and cropped.shape[1] < full.shape[1]
    wider = post(client, png, crop=True, crop_margin=0.3)
    assert cropped.shape[1] < wider.shape[1] <= full.shape[1]


def test_feather_softens_a_hard_mask(client, png):
    hard = post(client, png, "/v1/mask", soft=False)
    feathered = post(client, png, "/v1/mask", soft=False, feather=3)
    assert len(np.unique(hard)) <= 2 < len(np.unique(feathered))


@pytest.fixture(scope="module")
def tiny_client(tiny_model) -> TestClient:
    """The server on the tiny model (conftest.py), whose bright synthetic "people" make each option's effect plain."""
    with TestClient(create_app(str(tiny_model.onnx), threads=1)) as c:
        yield c


def test_each_other_option_changes_the_output(tiny_client):
    """Each option against the same request without it: an option the server ignored would fail here."""
    rgb, big, small = two_people()  # a big person at (44, 50) and a small one at the top edge
    png = encoded(rgb)
    base = post(tiny_client, png, "/v1/mask")
    assert base[big].mean() > 200 and base[small].mean() > 200
    assert post(tiny_client, png, "/v1/mask", keep_largest=1)[small].max() == 0

    def partly(mask: np.ndarray) -> int:
        return int(((mask > 0) & (mask < 255)).sum())

    assert partly(post(tiny_client, png, "/v1/mask", edge_cutoff=0.0)) > partly(base)
    holed = rgb.copy()
    holed[38:50, 44:56] = rgb[79, 99]  # a 12 x 12 hole of background colour (1.8% of the image) in the big one
    assert post(tiny_client, encoded(holed), "/v1/mask", soft=False)[44, 50] == 0
    assert post(tiny_client, encoded(holed), "/v1/mask", soft=False, fill_holes=0.05)[44, 50] == 255

    cutout = post(tiny_client, png)
    plain = post(tiny_client, png, foreground="none")  # the photo's own colours wherever anything shows
    visible, edge = plain[..., 3] > 0, (cutout[..., 3] > 0) & (cutout[..., 3] < 255)
    np.testing.assert_array_equal(plain[..., :3][visible], rgb[visible])
    assert edge.any() and not np.array_equal(cutout[..., :3][edge], plain[..., :3][edge])
    far = (slice(70, 80), slice(80, 100))  # background, away from both people
    blurred = post(tiny_client, png, bg_blur=5)
    assert (blurred[..., :3][far].std(axis=(0, 1)) < rgb[far].std(axis=(0, 1)) / 3).all()  # the noise smoothed
    assert not np.array_equal(post(tiny_client, png, model="personseg-fast"), cutout)


def test_background_image_upload(client, png):
    mask = post(client, png, "/v1/mask")
    green = encoded(np.full((40, 30, 3), (0, 200, 0), np.uint8))
    r = client.post(
        "/v1/remove", files={"file": ("p.png", png, "image/png"), "background": ("bg.png", green, "image/png")}
    )
    assert r.status_code == 200, r.text
    out = np.asarray(decode(r.content))
    assert out.shape == (H, W, 3)
    assert np.abs(out[mask == 0].astype(int) - [0, 200, 0]).max() <= 2
    r = client.post(
        "/v1/remove",
        params={"bgcolor": "red"},
        files={"file": ("p.png", png, "image/png"), "background": ("bg.png", green, "image/png")},
    )
    assert_error(r, 400, "one background")


def test_other_shipped_model_is_loaded_once_on_request(client, png):
    out = post(client, png, model="personseg-default")
    assert out.shape == (H, W, 4)
    loaded = {m["name"]: m["loaded"] for m in client.get("/v1/models").json()["models"]}
    assert loaded["personseg-default"]
    assert client.app.state.models.get("personseg-default") is client.app.state.models.get("personseg-default")


def test_clients_cannot_name_model_files(client, png):
    for name in ("nope", "/etc/passwd", "../weights/personseg-fast.onnx"):
        assert_error(client.post("/v1/remove", params={"model": name}, content=png), 400, "unknown model")


# --- bad requests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, word",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "abc"}, "threshold"),
        ({"bgcolor": "notacolour"}, "bgcolor"),
        ({"bgcolor": "300,0,0"}, "bgcolor"),
        ({"format": "gif"}, "format"),
        ({"keep_largest": -1}, "keep_largest"),
        ({"colour": "red"}, "colour"),  # misspelt options are refused, not ignored
        ({"subject": "largest"}, "subject"),
    ],
)
def test_bad_options_are_400(client, png, params, word):
    assert_error(client.post("/v1/remove", params=params, content=png), 400, word)


def test_empty_body_is_400(client):
    assert_error(client.post("/v1/remove", content=b""), 400, "empty")
    assert_error(client.post("/v1/mask", files={"file": ("e.png", b"", "image/png")}), 400, "empty")


def test_truncated_images_are_400(client, png, photo):
    assert_error(client.post("/v1/remove", content=png[: len(png) // 2]), 400, "truncated")
    jpeg = encoded(photo, "JPEG")
    assert_error(client.post("/v1/remove", content=jpeg[:100]), 400)
    assert_error(client.post("/v1/remove", content=png[:20]), 400)  # header cut inside IHDR


def test_not_an_image_is_415(client):
    assert_error(client.post("/v1/remove", content=b"hello, not an image"), 415, "not an image")
    r = client.post("/v1/remove", files={"file": ("notes.txt", b"just text", "text/plain")})
    assert_error(r, 415, "not an image")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, png, content_type):
    assert_error(client.post("/v1/remove", content=png, headers={"content-type": content_type}), 415, content_type)


def test_unsupported_format_is_415(client, photo):
    # Pillow reads ICO, but the server accepts only common photo formats (EPS would even run Ghostscript).
    assert_error(client.post("/v1/remove", content=encoded(photo[:64, :64], "ICO")), 415, "supported format")


def test_multipart_without_file_field_is_400(client, png):
    assert_error(client.post("/v1/remove", files={"image": ("p.png", png, "image/png")}), 400, "'file'")
    assert_error(client.post("/v1/remove", data={"file": "not a file"}, files={"x": ("x", b"x")}), 400, "file")


def test_upload_over_the_limit_is_413_by_content_length(client):
    r = client.post("/v1/remove", content=b"\0" * 300_001, headers={"content-type": "image/png"})
    assert_error(r, 413, "limit")


def test_upload_over_the_limit_is_413_when_streamed_without_length(client):
    sent = []

    def chunks():
        for _ in range(40):
            sent.append(1)
            yield b"\0" * 10_000

    r = client.post("/v1/remove", content=chunks(), headers={"content-type": "image/png"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "limit")


def test_decompression_bomb_is_refused_before_decoding(client, monkeypatch):
    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    r = client.post("/v1/remove", content=png_header(40000, 40000))
    assert_error(r, 413, "too large")
    assert decoded == []  # refused from the header: not one pixel decoded


def test_pixel_limit_is_the_servers(photo):
    with TestClient(create_app("personseg-fast", threads=1, max_pixels=50 * 50)) as c:
        assert_error(c.post("/v1/remove", content=encoded(photo)), 413, "max-pixels")
        r = c.post("/v1/remove", content=encoded(photo[:40, :40]))
        assert r.status_code == 200


def test_root_redirects_to_the_docs(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/docs"


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.get("/v1/remove"), 405)


def test_keeps_serving_after_bad_requests(client, png):
    bad = [
        {"content": b""},
        {"content": png[:50]},
        {"content": b"\0" * 300_001},
        {"content": png_header(40000, 40000)},
        {"content": b"plain", "headers": {"content-type": "text/plain"}},
        {"content": png, "params": {"threshold": 7}},
    ]
    for _ in range(3):
        for kwargs in bad:
            assert 400 <= client.post("/v1/remove", **kwargs).status_code < 500
    assert post(client, png).shape == (H, W, 4)
    assert client.get("/health").json()["in_flight"] == 0


# --- queue ----------------------------------------------------------------------------------------------------


class GatedSegmenter(Segmenter):
    """The fast model, but each forward pass waits until the test opens the gate."""

    def __init__(self) -> None:
        self.inner = load_model("personseg-fast", threads=1)
        super().__init__(self.inner.meta, self.inner.source)
        self.gate = threading.Event()

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner._forward(batch)


def test_full_queue_is_503_and_recovers(png):
    model = GatedSegmenter()
    app = create_app(model, workers=1, queue_size=1)
    results = []
    with TestClient(app) as c:
        threads = [threading.Thread(target=lambda: results.append(c.post("/v1/remove", content=png))) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while app.state.pool.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.state.pool.in_flight == 2  # one running, one waiting
        busy = c.post("/v1/remove", content=png)
        assert_error(busy, 503, "busy")
        assert busy.headers["retry-after"] == "1"
        health = c.get("/health")  # health never queues, and says the server is saturated
        assert health.status_code == 200 and health.json()["status"] == "busy"
        assert c.get("/ready").status_code == 503  # for load balancers: send traffic elsewhere
        model.gate.set()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200]
        assert c.post("/v1/remove", content=png).status_code == 200
        assert app.state.pool.in_flight == 0
        assert c.get("/health").json()["status"] == "ok" and c.get("/ready").status_code == 200


def test_request_deadline_is_503_and_frees_the_slot_when_the_job_ends(png):
    model = GatedSegmenter()
    app = create_app(model, workers=1, queue_size=2, request_timeout=0.5)
    with TestClient(app) as c:
        late = c.post("/v1/remove", content=png)
        assert_error(late, 503, "--request-timeout")
        assert app.state.pool.in_flight == 1  # the worker thread is still on it: the slot stays taken
        model.gate.set()
        deadline = time.monotonic() + 20
        while app.state.pool.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.state.pool.in_flight == 0
        assert c.post("/v1/remove", content=png).status_code == 200


# --- API key --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked() -> TestClient:
    with TestClient(create_app("personseg-fast", api_key="s3cret", threads=1)) as c:
        yield c


def test_api_key_is_needed_everywhere_but_health(locked, png):
    assert locked.get("/health").status_code == 200
    for method, path in (("get", "/v1/models"), ("post", "/v1/remove"), ("post", "/v1/mask"), ("get", "/docs")):
        r = getattr(locked, method)(path)
        assert_error(r, 401, "api key")
        assert "www-authenticate" in r.headers
    assert locked.get("/openapi.json").status_code == 401
    assert locked.get("/docs").headers["www-authenticate"].startswith("Basic")  # browsers prompt for it
    assert locked.post("/v1/remove").headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers, ok",
    [
        ({"X-API-Key": "s3cret"}, True),
        ({"Authorization": "Bearer s3cret"}, True),
        ({"Authorization": "Basic dXNlcjpzM2NyZXQ="}, True),  # user:s3cret
        ({"X-API-Key": "wrong"}, False),
        ({"Authorization": "Bearer s3cre"}, False),
        ({"Authorization": "Basic !!!"}, False),
        ({"X-API-Key": ""}, False),
    ],
)
def test_api_key_forms(locked, png, headers, ok):
    assert (locked.get("/v1/models", headers=headers).status_code == 200) is ok
    r = locked.post("/v1/remove", content=png, headers=headers)
    assert r.status_code == (200 if ok else 401)


def test_api_key_from_environment(monkeypatch, png):
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    with TestClient(create_app("personseg-fast", threads=1)) as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "from-env"}).status_code == 200
    monkeypatch.setenv(API_KEY_ENV, "")
    with TestClient(create_app("personseg-fast", threads=1)) as c:
        assert c.get("/v1/models").status_code == 200


# --- docs, helpers, CLI ---------------------------------------------------------------------------------------


def test_openapi_documents_routes_and_options(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/remove", "/v1/mask", "/v1/models", "/health"} <= set(spec["paths"])
    remove = spec["paths"]["/v1/remove"]["post"]
    assert "multipart/form-data" in remove["requestBody"]["content"]
    params = {p["name"] for p in remove["parameters"]}
    assert {"mask_only", "bgcolor", "soft", "threshold", "crop", "format", "model"} <= params


def test_parse_color():
    assert parse_color("1, 2, 3") == (1, 2, 3)
    assert parse_color("#ff000080") == (255, 0, 0, 128)
    assert parse_color("white") == (255, 255, 255)
    with pytest.raises(ValueError, match="colour"):
        parse_color("1,2,300")


def test_serve_cli_defaults_to_localhost():
    from personseg.cli import build_parser
    from personseg.cli.serve import _is_loopback

    args = build_parser(["serve"]).parse_args(["serve"])
    assert (args.host, args.port, args.workers, args.queue_size, args.max_upload_mb) == ("127.0.0.1", 8000, 2, 16, 25)
    assert not args.no_ui and args.api_key is None
    args = build_parser(["ui"]).parse_args(["ui", "--port", "9000", "-m", "personseg-fast"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 9000, "personseg-fast")
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0")


def test_ui_runner_without_a_browser(client, photo):
    pytest.importorskip("gradio")
    from personseg.serve.ui import UiRunner, build_ui

    run = UiRunner(client.app.state.models, max_pixels=None)
    original, mask, result, path = run(photo, "personseg-fast")
    assert original.shape == (H, W, 3) and mask.shape == (H, W) and result.shape == (H, W, 4)
    saved = decode(open(path, "rb").read())
    assert saved.mode == "RGBA" and saved.size == (W, H)
    # Gradio's colour picker writes rgba() with a fractional alpha: opaque blue, not nearly transparent.
    _, mask, result, _ = run(photo, "personseg-fast", "color", color="rgba(0, 0, 255, 1)")
    assert result.shape == (H, W, 4) and np.abs(result[mask == 0].astype(int) - [0, 0, 255, 255]).max() <= 2
    _, hard, _, _ = run(photo, "personseg-fast", "blur", blur=5, soft=False)
    assert set(np.unique(hard)) <= {0, 255}
    assert build_ui(models=client.app.state.models) is not None


def test_ui_is_mounted_with_the_api(png):
    pytest.importorskip("gradio")
    with TestClient(create_app("personseg-fast", threads=1, with_ui=True)) as c:
        r = c.get("/ui/")
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert c.get("/", follow_redirects=False).headers["location"] == "/ui/"
        assert c.post("/v1/remove", content=png).status_code == 200  # the API still answers beside it


# --- issue 15: memory budget, hostile options, offline docs -------------------------------------------------------


def test_an_image_too_large_to_decode_in_the_budget_is_413_from_its_header():
    app = create_app("personseg-fast", threads=1, max_pixels=None, max_memory=64 * 2**20)
    with TestClient(app) as c:
        r = c.post("/v1/remove", content=png_header(13000, 13000), headers={"Content-Type": "image/png"})
    assert_error(r, 413, "13000x13000", "memory budget")


def test_a_large_image_is_processed_reduced_within_the_budget(photo, caplog):
    big = encoded(np.asarray(Image.fromarray(photo).resize((W * 8, H * 8))))  # 0.8 MP
    app = create_app("personseg-fast", threads=1, max_memory=200_000 * 28)
    with TestClient(app) as c:
        r = c.post("/v1/remove", content=big, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    w, h = decode(r.content).size
    assert w * h <= 200_000 and abs(w / h - W / H) < 0.05
    assert "is processed at" in caplog.text


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_400_saying_so(client, png, value):
    r = client.post("/v1/remove", params={"threshold": value}, content=png)
    assert_error(r, 400, "threshold", "finite")
    assert_error(client.post("/v1/remove", params={"feather": value}, content=png), 400, "feather")


def test_an_empty_api_key_warns_that_the_api_is_open(caplog, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "")
    with caplog.at_level("WARNING"):
        app = create_app("personseg-fast", threads=1)
    assert "API key is empty" in caplog.text
    with TestClient(app) as c:
        assert c.get("/v1/models").status_code == 200


def test_serve_refuses_an_empty_api_key_flag(capsys, monkeypatch):
    import uvicorn

    from personseg.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started with an empty key"))
    assert main(["serve", "--no-ui", "--api-key", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--api-key is empty" in err[0]


def test_a_failing_model_is_a_one_line_json_500(png, tmp_path, caplog):
    pytest.importorskip("onnx")
    from test_inference_hostile_models import tiny_onnx

    app = create_app(str(tiny_onnx(tmp_path / "greedy.onnx", huge=True)), threads=1)
    with TestClient(app) as c:
        r = c.post("/v1/mask", content=png)
    assert_error(r, 500, "ONNX Runtime failed", "greedy.onnx")
    assert "Traceback" not in caplog.text and "greedy.onnx" in caplog.text


def test_docs_and_redoc_are_served_offline(client):
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        r = client.get(page)
        assert r.status_code == 200 and f"/docs-assets/{script}" in r.text, page
        assert "cdn." not in r.text and "fonts.googleapis" not in r.text, page
        asset = client.get(f"/docs-assets/{script}")
        assert asset.status_code == 200 and len(asset.content) > 100_000


def test_docs_without_the_asset_package_are_a_plain_page(monkeypatch):
    from personseg.serve import docs

    monkeypatch.setattr(docs, "_assets_dir", lambda: None)
    with TestClient(create_app("personseg-fast", threads=1)) as c:
        r = c.get("/docs")
        assert r.status_code == 200 and "POST /v1/remove" in r.text and "<script" not in r.text
        assert "/openapi.json" in r.text and c.get("/redoc").status_code == 200


def test_subject_main_on_both_routes(tiny_model):
    rgb, big, small = two_people()  # a big central person and a small one at the top edge
    with TestClient(create_app(str(tiny_model.onnx), threads=1)) as c:
        for route in ("/v1/mask", "/v1/remove"):
            every = post(c, encoded(rgb), route)
            main = post(c, encoded(rgb), route, subject="main")
            every, main = (x[..., 3] if x.ndim == 3 else x for x in (every, main))
            assert every[small].mean() > 200 and every[big].mean() > 200, route
            assert main[small].max() == 0 and main[big].mean() > 200, route
        r = c.post("/v1/mask", params={"subject": "largest"}, content=encoded(rgb))
    assert_error(r, 400, "subject", "'all' or 'main'")


def test_openapi_lists_the_subject_values(client):
    schema = client.get("/openapi.json").json()
    params = {p["name"]: p for p in schema["paths"]["/v1/mask"]["post"]["parameters"]}
    assert params["subject"]["schema"]["enum"] == ["all", "main"]


def test_bg_color_is_the_canonical_name_and_bgcolor_still_works(client, png):
    canonical = post(client, png, bg_color="red")
    legacy = post(client, png, bgcolor="red")
    assert np.array_equal(canonical, legacy)
    both = client.post("/v1/remove", params={"bg_color": "red", "bgcolor": "blue"}, content=png)
    assert both.status_code == 400 and "not both" in both.text


def test_format_jpeg_is_accepted_as_jpg(client, png):
    out = client.post("/v1/remove", params={"format": "jpeg"}, content=png)
    assert out.status_code == 200 and out.headers["content-type"] == "image/jpeg"


def test_each_job_hands_freed_memory_back(monkeypatch):
    import asyncio

    from personseg.serve import pool as pool_module

    calls = []
    monkeypatch.setattr(pool_module, "release_memory", lambda: calls.append(True))
    pool = pool_module.InferencePool(workers=1, queue_size=0)

    async def go():
        pool.reserve()
        ok = await pool.run(lambda x: x + 1, 1)
        pool.reserve()
        try:
            await pool.run(lambda: 1 / 0)
        except ZeroDivisionError:
            pass
        return ok

    assert asyncio.run(go()) == 2
    assert calls == [True, True]  # after a success and after a failure
    assert pool_module._load_trim() is not None  # glibc here: the real malloc_trim is found
