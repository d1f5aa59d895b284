"""load_model (paths, shipped names, checksums, caching, providers) and predict (sizes, batches, backends)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import personseg
from personseg.data.download import ChecksumError, file_digest
from personseg.inference import api, registry
from personseg.inference.registry import ModelNotInstalledError, ShippedModel
from synthetic import iou, person


@pytest.fixture()
def shipped(tiny_model, tmp_path, monkeypatch):
    """The registry pointed at a folder holding the tiny model as 'personseg-default' with its real sha256."""
    shutil.copy(tiny_model.onnx, tmp_path / "tiny.onnx")
    entry = ShippedModel("tiny.onnx", file_digest(tmp_path / "tiny.onnx"), "tiny test model", (64, 64))
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(registry, "SHIPPED_MODELS", {"personseg-default": entry, "personseg-fast": entry})
    monkeypatch.setattr(registry, "_verified", set())
    api.clear_cache()
    yield tmp_path / "tiny.onnx"
    api.clear_cache()


def test_tiny_model_finds_the_disc(onnx_model) -> None:
    img, mask = person(64, 64, seed=123, center=(30, 34), radius=14)
    assert iou(onnx_model.predict(img) >= 0.5, mask) > 0.9


def test_public_api_is_lazy_and_complete() -> None:
    assert personseg.load_model is api.load_model
    assert personseg.list_models() == ["personseg-default", "personseg-fast"]
    assert registry.DEFAULT_MODEL == "personseg-default"
    for entry in registry.SHIPPED_MODELS.values():
        assert entry.filename.endswith(".onnx") and len(entry.input_size) == 2


def test_load_by_name_and_default_verify_sha256(shipped) -> None:
    model = personseg.load_model("personseg-default", providers="cpu", threads=1)
    assert model.meta["input_size"] == [64, 64]
    assert personseg.load_model(None, providers="cpu", threads=1) is model


def test_sha256_mismatch_is_refused(shipped) -> None:
    with open(shipped, "ab") as f:
        f.write(b"\0")
    assert issubclass(ChecksumError, ValueError)  # what callers of load_model catch
    with pytest.raises(ChecksumError, match="personseg-default.*sha256.*reinstall"):
        personseg.load_model("personseg-default")


def test_missing_shipped_model_says_not_installed(shipped) -> None:
    shipped.unlink()
    with pytest.raises(ModelNotInstalledError, match="'personseg-default' is not installed"):
        personseg.load_model()


def test_unreleased_model_without_checksum_is_refused(shipped, monkeypatch) -> None:
    monkeypatch.setitem(registry.SHIPPED_MODELS, "personseg-fast", ShippedModel("tiny.onnx", "", "x", (64, 64)))
    with pytest.raises(ChecksumError, match="no sha256"):
        personseg.load_model("personseg-fast")


def test_unknown_name_and_missing_path(tmp_path) -> None:
    with pytest.raises(ValueError, match="personseg-default"):
        personseg.load_model("no-such-model")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        personseg.load_model(tmp_path / "nope.onnx")


def test_onnx_without_personseg_metadata_is_refused(tiny_model, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(tiny_model.onnx))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="bare.onnx.*no personseg metadata"):
        personseg.load_model(tmp_path / "bare.onnx")


def test_sessions_are_cached_per_file_and_settings(tiny_model) -> None:
    a = personseg.load_model(tiny_model.onnx, providers="cpu", threads=1)
    assert personseg.load_model(str(tiny_model.onnx), providers=["CPUExecutionProvider"], threads=1) is a
    assert a.session is personseg.load_model(tiny_model.onnx, providers="cpu", threads=1).session
    b = personseg.load_model(tiny_model.onnx, providers="cpu", threads=2)
    assert b is not a and b.session.get_session_options().intra_op_num_threads == 2


def test_providers_auto_alias_and_unavailable() -> None:
    auto = api.resolve_providers(None)
    assert auto[-1] == "CPUExecutionProvider"
    assert all(p in api.PREFERRED_PROVIDERS for p in auto)
    assert api.resolve_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="NoSuchExecutionProvider is not available"):
        api.resolve_providers(["NoSuchExecutionProvider"])
    with pytest.raises(ValueError, match="threads"):
        personseg.load_model("x.onnx", threads=0)


def test_chosen_provider_is_logged(tiny_model, caplog) -> None:
    api.clear_cache()
    with caplog.at_level("INFO", logger="personseg.inference.api"):
        model = personseg.load_model(tiny_model.onnx, providers="cpu", threads=1)
    assert model.providers[0] == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in caplog.text


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (33, 101), (64, 64), (200, 37)])
def test_predict_shape_dtype_range_at_odd_sizes(onnx_model, size) -> None:
    img, _ = person(*size, seed=1)
    alpha = onnx_model.predict(img)
    assert alpha.shape == size and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0


def test_predict_large_photo_gives_full_resolution_alpha(onnx_model) -> None:
    img, mask = person(3000, 4000, seed=2)
    alpha = onnx_model.predict(img)
    assert alpha.shape == (3000, 4000) and alpha.dtype == np.float32
    assert iou(alpha >= 0.5, mask) > 0.97


def test_predict_finds_the_disc_off_centre(onnx_model) -> None:
    img, mask = person(120, 300, center=(60, 220), radius=40, seed=3)
    assert iou(onnx_model.predict(img) >= 0.5, mask) > 0.9


def test_predict_batch_matches_predict(onnx_model) -> None:
    images = [person(50 + 10 * i, 70, seed=i)[0] for i in range(3)]
    batch = onnx_model.predict_batch(images, batch_size=2)
    assert [b.shape for b in batch] == [i.shape[:2] for i in images]
    for img, got in zip(images, batch, strict=True):
        np.testing.assert_allclose(got, onnx_model.predict(img), atol=1e-5)
    assert onnx_model.predict_batch([]) == []


def test_pt_checkpoint_backend_agrees_with_onnx(tiny_model, onnx_model) -> None:
    torch_model = personseg.load_model(tiny_model.checkpoint, device="cpu")
    assert type(torch_model).__name__ == "TorchSegmenter" and torch_model.device == "cpu"
    assert torch_model.meta["input_size"] == onnx_model.meta["input_size"]
    img, _ = person(90, 130, seed=4)
    np.testing.assert_allclose(torch_model.predict(img), onnx_model.predict(img), atol=1e-4)


def test_providers_still_pick_a_checkpoints_device_with_a_warning(tiny_model) -> None:
    with pytest.warns(DeprecationWarning, match="device="):
        legacy = personseg.load_model(tiny_model.checkpoint, providers="cpu")
    assert legacy.device == "cpu"


def test_preprocessing_follows_metadata(onnx_model) -> None:
    img = np.full((32, 64, 3), 255, np.uint8)
    x, (top, left, h, w) = onnx_model.preprocess(img)
    assert x.shape == (3, 64, 64) and (top, left, h, w) == (16, 0, 32, 64)
    np.testing.assert_allclose(x[:, 16:48], (1.0 - 0.5) / 0.25, atol=1e-5)  # mean/std from the metadata
    np.testing.assert_allclose(x[:, :16], (0.0 - 0.5) / 0.25, atol=1e-5)  # black letterbox padding
    stretch = api.Segmenter({**onnx_model.meta, "resize": "stretch"}, "test")
    assert stretch.preprocess(img)[1] == (0, 0, 64, 64)


def test_fit_shapes_the_input_to_the_photo_within_the_pixel_budget() -> None:
    budget = 320 * 320
    # Hand-worked: a 16:9 frame's best fit is 224 x 448 (scale 224 / 480 = 0.467; 256 x 384 only 0.450), its
    # 399 pixels of width trimmed to 416; a 2:3 portrait fills 384 x 256; a square photo the square.
    assert api.fit_shape(480, 854, budget) == (224, 416, 224 / 480)
    assert api.fit_shape(825, 550, budget)[:2] == (384, 256)
    assert api.fit_shape(1000, 1000, budget) == (320, 320, 0.32)
    # A tall crop around a standing person reaches the network larger than in a 384 x 384 letterbox.
    assert api.fit_shape(300, 150, budget)[2] > 384 / 300
    rng = np.random.default_rng(0)
    for h, w in rng.integers(1, 3000, (300, 2)):
        ih, iw, scale = api.fit_shape(int(h), int(w), budget)
        assert ih % 32 == 0 and iw % 32 == 0 and ih * iw <= budget
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        assert nh <= ih and nw <= iw and (ih - nh < 32 or iw - nw < 32)
        # The picture shrunk to that scale (what Segmenter.shrink gives) maps to the same input, unscaled.
        assert api.fit_shape(nh, nw, budget) == (ih, iw, 1.0), (h, w)


def test_bad_arrays_and_metadata_are_explained(onnx_model) -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        onnx_model.predict(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="upsample"):
        onnx_model.predict(np.zeros((10, 10, 3), np.uint8), upsample="nearest")
    with pytest.raises(ValueError, match="test.*lacks mean"):
        api.Segmenter({"input_size": [8, 8], "std": [1, 1, 1], "resize": "stretch", "threshold": 0.5}, "test")


@pytest.mark.parametrize("shape", [(300, 200), (97, 150), (720, 1280), (40, 30)])
def test_one_shared_downscale_gives_the_same_masks_as_three(onnx_model, shape) -> None:
    """``shrink`` is the downscale preprocess makes; given it instead of the image, the network input is the same,
    and as the guided filter's guide the mask is the same: sharing it changes no output, only saves time."""
    from personseg.inference.refine import guided_upsample

    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    small = onnx_model.shrink(img)
    low = onnx_model.predict_lowres([img])[0]
    assert small.shape[:2] == low.shape
    assert np.array_equal(onnx_model.predict_lowres([small])[0], low)
    if small.shape[0] < shape[0]:
        assert np.array_equal(guided_upsample(low, img, guide=small), guided_upsample(low, img))
    with pytest.raises(ValueError, match="guide is"):
        guided_upsample(low, np.zeros((400, 400, 3), np.uint8), guide=small[:-1])


def test_the_video_path_is_the_same_with_and_without_the_shared_downscale(onnx_model) -> None:
    from personseg.video.pipeline import FrameProcessor, VideoOptions

    class Unshared:  # the same model without shrink: the network, stabiliser and filter each downscale
        def __init__(self, model):
            self._model = model

        def __getattr__(self, name):
            if name == "shrink":
                raise AttributeError(name)
            return getattr(self._model, name)

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for _ in range(4)]
    frames[2] = frames[1]  # a still frame: the stabiliser keeps the past
    shared = FrameProcessor(onnx_model, VideoOptions(), "mask")
    plain = FrameProcessor(Unshared(onnx_model), VideoOptions(), "mask")
    for frame in frames:
        assert np.array_equal(shared(frame), plain(frame))
