"""Temporal models (--temporal): a fourth input channel with the previous frame's probability.

The synthetic prior, a 3-channel checkpoint started as a 4-channel model that ignores the prior, a tiny model that
learns to follow the prior where the image says nothing, and the whole path: train, export, load, video.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from personseg.models import create_model  # noqa: E402
from personseg.training.prior import (  # noqa: E402
    EMPTY_SHARE,
    adapt_input_channels,
    synthetic_prior,
    with_prior,
)


def blobs(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """n x 1 x size x size masks, each an axis-aligned box at a random place."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        h, w = (int(torch.randint(size // 4, size // 2, (1,), generator=g)) for _ in range(2))
        y, x = int(torch.randint(0, size - h, (1,), generator=g)), int(torch.randint(0, size - w, (1,), generator=g))
        masks[i, 0, y : y + h, x : x + w] = 1.0
    return masks


def iou(prob: torch.Tensor, mask: torch.Tensor) -> float:
    pred, truth = prob > 0.5, mask > 0.5
    return float((pred & truth).sum() / (pred | truth).sum().clamp(min=1))


def test_the_synthetic_prior_is_the_label_one_frame_off():
    torch.manual_seed(0)
    masks = blobs(400)
    masks[0, 0, :4, :4] = -1  # unknown pixels count as background
    prior = synthetic_prior(masks)
    assert prior.shape == masks.shape and prior.min() >= 0 and prior.max() <= 1
    empty = (prior.flatten(1).amax(1) == 0).float().mean()
    assert abs(empty - EMPTY_SHARE) < 0.06  # first frames / photos: no prior at all
    given = prior.flatten(1).amax(1) > 0
    overlap = [iou(p, m) for p, m, g in zip(prior, masks, given, strict=True) if g]
    assert 0.4 < float(np.median(overlap)) < 0.95  # close to the label, never a copy of it


def test_a_three_channel_checkpoint_starts_a_temporal_model_that_ignores_the_prior():
    torch.manual_seed(0)
    plain = create_model("unet", base_channels=4).eval()
    temporal = create_model("unet", base_channels=4, in_channels=4).eval()
    temporal.load_state_dict(adapt_input_channels(plain.state_dict(), temporal))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = plain(x)
        for prior in (None, torch.rand(2, 1, 32, 32)):
            torch.testing.assert_close(temporal(with_prior(x, prior)), want)


def test_a_temporal_model_learns_to_follow_the_prior_where_the_image_says_nothing():
    torch.manual_seed(0)
    model = create_model("unet", base_channels=4, in_channels=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for step in range(200):
        masks = blobs(8, seed=step)
        images = torch.randn(8, 3, 32, 32)  # noise: only the prior says where the box is
        logits = model(with_prior(images, synthetic_prior(masks)))
        loss = loss_fn(logits, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    masks = blobs(16, seed=10_000)
    near = torch.roll(masks, shifts=1, dims=3)  # last frame's mask, one pixel off
    with torch.no_grad():
        followed = torch.sigmoid(model(with_prior(torch.randn(16, 3, 32, 32), near)))
        alone = torch.sigmoid(model(with_prior(torch.randn(16, 3, 32, 32), None)))
    assert iou(followed, masks) > 0.7
    assert iou(alone, masks) < 0.3  # without the prior the noise carries nothing


def test_train_export_load_and_video_with_a_temporal_model(tmp_path):
    from PIL import Image

    from personseg.export import export_onnx
    from personseg.inference.api import load_model
    from personseg.training import trainer
    from personseg.training.config import TrainConfig
    from personseg.video import VideoOptions
    from personseg.video.pipeline import FrameProcessor
    from synthetic import person

    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(6):
        img, mask = person(48, 48, seed=i)
        Image.fromarray(img).save(data / "images" / f"p{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(data / "masks" / f"p{i}.png")
    plain_cfg = dict(data=[str(data)], val_data=[str(data)], arch="unet", base_channels=4, input_size=32)
    plain_cfg |= dict(batch_size=2, samples_per_epoch=4, epochs=1, workers=0, threads=1, vis_every=0)
    trainer.main(TrainConfig(**plain_cfg, output=str(tmp_path / "plain")))
    cfg = TrainConfig(
        **plain_cfg, output=str(tmp_path / "temporal"), temporal=True, init_from=str(tmp_path / "plain" / "best.pt")
    )
    trainer.main(cfg)
    checkpoint = tmp_path / "temporal" / "best.pt"
    onnx = export_onnx(checkpoint, tmp_path / "temporal.onnx")
    frame = person(48, 64, seed=9)[0]
    for path, where in ((checkpoint, {"device": "cpu"}), (onnx, {"providers": "cpu"})):
        model = load_model(path, threads=1, **where)
        assert model.temporal and model.in_channels == 4
        alone = model.predict_lowres([frame])[0]
        np.testing.assert_array_equal(alone, model.predict_lowres([frame], [None])[0])
        shifted = model.predict_lowres([frame], [np.ones_like(alone)])[0]
        assert shifted.shape == alone.shape and not np.allclose(shifted, alone)  # the prior reaches the network
    assert not load_model(tmp_path / "plain" / "best.pt").temporal

    seen = []
    model = load_model(onnx, providers="cpu", threads=1)
    real = model.predict_lowres

    def spy(images, priors=None):
        seen.append(None if priors is None else priors[0])
        return real(images, priors)

    model.predict_lowres = spy
    processor = FrameProcessor(model, VideoOptions(smooth=False), "mask")
    outputs = [processor(frame) for _ in range(3)]
    assert seen[0] is None and all(p is not None for p in seen[1:])  # each frame gets the last one's probability
    assert all(o.shape == frame.shape[:2] for o in outputs)
