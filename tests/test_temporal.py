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


@pytest.mark.parametrize("prior", ["synthetic", "self"])
def test_train_export_load_and_video_with_a_temporal_model(tmp_path, prior):
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
        **plain_cfg,
        output=str(tmp_path / "temporal"),
        temporal=True,
        temporal_prior=prior,
        init_from=str(tmp_path / "plain" / "best.pt"),
    )
    trainer.main(cfg)
    history = (tmp_path / "temporal" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "nan" not in history[1]
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


def test_the_previous_frame_is_the_batch_moved_a_little_with_its_labels():
    from personseg.training.prior import previous_frame

    torch.manual_seed(0)
    masks = blobs(64, size=64)
    masks[:, :, :8, :8] = -1  # unknown pixels stay unknown where they move to
    x = (masks.clamp(min=0) * 2 - 1).repeat(1, 3, 1, 1).contiguous(memory_format=torch.channels_last)
    earlier, earlier_masks = previous_frame(x, masks)
    assert earlier.shape == x.shape and earlier.is_contiguous(memory_format=torch.channels_last)
    assert earlier_masks.shape == masks.shape and bool((earlier_masks[:, :, :4, :4] == -1).all())
    known = earlier_masks >= 0
    assert float(earlier_masks[known].min()) >= 0 and float(earlier_masks.max()) <= 1
    moved = [iou(a, b) for a, b in zip(earlier_masks.clamp(min=0), masks.clamp(min=0), strict=True)]
    assert 0.6 < float(np.median(moved)) < 0.99 and min(moved) > 0.3  # moved, by one frame's motion at most
    # the image moved with its labels: the bright pixels are where the moved mask is
    agree = ((earlier[:, :1] > 0) == (earlier_masks > 0.5))[known].float().mean()
    assert float(agree) > 0.97


def test_the_temporal_loss_is_the_change_the_labels_do_not_make():
    from personseg.training.prior import temporal_loss

    prob = torch.tensor([[[[0.9, 0.2], [0.5, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    prior = torch.tensor([[[[0.7, 0.2], [0.1, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    masks = torch.tensor([[[[1.0, 0.0], [1.0, -1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    earlier = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    own = torch.tensor([1.0, 0.0])  # the second sample's prior is not its own previous frame: left out
    # first sample, known pixels: |0.2 - 0| + |0 - 0| + |0.4 - 1| = 0.8 over 3 pixels
    assert float(temporal_loss(prob, prior, masks, earlier, own)) == pytest.approx(0.8 / 3)
    assert float(temporal_loss(prob, prior, masks, earlier, torch.zeros(2))) == 0.0


def test_the_self_prior_is_the_models_own_prediction_one_frame_back():
    import contextlib

    from personseg.training.prior import CUT_SHARE, self_prior

    class Brightness(torch.nn.Module):  # probability = sigmoid of the first channel; counts its eval calls
        def __init__(self) -> None:
            super().__init__()
            self.evals = 0

        def forward(self, x):
            self.evals += not self.training
            assert bool((x[:, 3] == 0).all())  # the previous frame itself is seen with an empty prior
            return x[:, :1] * 4

    torch.manual_seed(0)
    masks = blobs(400)
    x = (masks * 2 - 1).repeat(1, 3, 1, 1)
    model = Brightness().train()
    prior, earlier_masks, own = self_prior(model, x, masks, contextlib.nullcontext)
    assert model.training and model.evals == 1  # run in eval mode, then put back
    assert abs(float(own.mean()) - (1 - EMPTY_SHARE - CUT_SHARE)) < 0.06
    empty = prior.flatten(1).amax(1) == 0
    assert bool(empty[own == 1].logical_not().all())
    mine = own == 1
    agree = ((prior[mine] > 0.5) == (earlier_masks[mine] > 0.5)).float().mean()
    assert float(agree) > 0.97  # the prediction on the moved frame, not on the frame itself
    assert float(((prior[mine] > 0.5) == (masks[mine] > 0.5)).float().mean()) < float(agree)


def test_the_self_prior_puts_every_module_back_in_its_own_mode():
    """With --train-only, frozen batch norms stay in eval mode inside a training model; the self prior's eval pass
    must not turn them back to training (they would then drift on every batch)."""
    import contextlib

    from personseg.training.freeze import keep_frozen_statistics
    from personseg.training.prior import self_prior

    model = create_model("unet", base_channels=4, in_channels=4).train()
    keep_frozen_statistics(model, ["ups"])  # the decoder trains, the encoder is frozen
    before = {name: m.training for name, m in model.named_modules()}
    assert not all(before.values()) and any(before.values())
    masks = blobs(4)
    self_prior(model, masks.repeat(1, 3, 1, 1), masks, contextlib.nullcontext)
    assert {name: m.training for name, m in model.named_modules()} == before


def test_a_temporal_model_trained_on_its_own_prior_holds_still_where_the_frame_is_noise():
    """Frames whose box is faint under fresh noise each frame: a per-frame model flickers with the noise; the same
    network trained as a temporal model on its own prior with the temporal loss keeps what it saw (flicker
    0.028 -> 0.018 when written, IoU 0.86 -> 0.88)."""
    import contextlib

    from personseg.training.prior import self_prior, temporal_loss

    def frames(masks, seed):
        g = torch.Generator().manual_seed(seed)
        return masks.repeat(1, 3, 1, 1) * 0.6 + torch.randn(masks.shape[0], 3, 32, 32, generator=g)

    def train(temporal: bool):
        torch.manual_seed(0)
        model = create_model("unet", base_channels=4, in_channels=4 if temporal else 3)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        for step in range(150):
            masks = blobs(8, seed=step)
            x = frames(masks, seed=step)
            if temporal:
                prior, earlier, own = self_prior(model, x, masks, contextlib.nullcontext)
                logits = model(with_prior(x, prior))
                change = temporal_loss(torch.sigmoid(logits), prior, masks, earlier, own)
                loss = loss_fn(logits, masks) + 0.3 * change  # --temporal-weight's default
            else:
                loss = loss_fn(model(x), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.eval()

    masks = blobs(8, seed=50_000)
    scores = {}
    for temporal in (False, True):
        model = train(temporal)
        prior, probs = None, []
        with torch.no_grad():
            for t in range(12):  # the same still boxes, new noise each frame
                x = frames(masks, seed=60_000 + t)
                prob = torch.sigmoid(model(with_prior(x, prior) if temporal else x))
                prior = prob
                probs.append(prob)
        flicker = torch.stack([(a - b).abs().mean() for a, b in zip(probs[1:], probs[:-1], strict=True)]).mean()
        scores[temporal] = (float(flicker), iou(probs[-1], masks))
    assert scores[True][0] < 0.75 * scores[False][0]
    assert scores[True][1] >= scores[False][1] - 0.05


def test_the_self_prior_and_its_weight_are_checked():
    from personseg.training.config import TrainConfig

    with pytest.raises(ValueError, match="--temporal-prior self is for a --temporal model"):
        TrainConfig(temporal_prior="self")
    with pytest.raises(ValueError, match="--temporal-weight must be >= 0"):
        TrainConfig(temporal=True, temporal_prior="self", temporal_weight=-1)
    assert TrainConfig.from_dict(TrainConfig(temporal=True, temporal_prior="self").to_dict()).temporal_prior == "self"


def test_the_video_benchmark_scores_a_temporal_model_per_frame_with_empty_priors():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from video_bench import EmptyPrior, video_path_masks

    class Spy:  # a temporal model whose output is its prior (0.25 when none), recording what it was given
        temporal, threshold, guided_radius, zoom, input_scale = True, 0.5, None, None, 1.0

        def __init__(self) -> None:
            self.seen = []

        def predict_lowres(self, images, priors=None):
            self.seen.append(None if priors is None else priors[0])
            prior = None if priors is None else priors[0]
            return [np.full(images[0].shape[:2], 0.25 if prior is None else 0.75, np.float32)]

    frames = [np.zeros((24, 32, 3), np.uint8)] * 3
    model = Spy()
    fed = video_path_masks(model, frames, None, 0.7)
    assert model.seen[0] is None and all(p is not None for p in model.seen[1:])
    model.seen.clear()
    alone = video_path_masks(EmptyPrior(model), frames, None, 0.7)
    assert model.seen == [None, None, None]
    assert all(float(a.max()) < float(f.max()) for a, f in zip(alone[1:], fed[1:], strict=True))
