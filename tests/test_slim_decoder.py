"""scripts/slim_decoder.py: a DeepLabV3+ decoder cut to fewer channels, keeping the ones that matter most."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from personseg.inference.api import load_model
from personseg.models import create_model, load_checkpoint, save_checkpoint
from personseg.training.config import TrainConfig
from test_models import run_script

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "slim_decoder.py")
ENCODER = {"encoder": "efficientnet_lite0", "encoder_weights": None}


def slim(*args: str):
    return run_script("slim_decoder.py", *args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A DeepLabV3+ whose decoder channels differ in use: a random one with some ASPP and fusion channels scaled
    up in their batch norms (as training leaves some channels doing the work and others next to nothing)."""
    root = tmp_path_factory.mktemp("slim")
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", **ENCODER)
    gen = torch.Generator().manual_seed(1)
    for module in model.net.decoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d) and module.num_features == 256:
            module.weight.data = torch.rand(256, generator=gen) ** 4 * 3
    save_checkpoint(model.eval(), root / "full.pt", meta={"input_size": [64, 64], "mean": [0.5] * 3, "std": [0.5] * 3})
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    import cv2

    for i in range(6):
        cv2.imwrite(str(photos / f"p{i}.png"), rng.integers(0, 256, (48, 80, 3), dtype=np.uint8))
    return root


def test_the_slim_decoder_keeps_the_channels_that_matter_and_says_its_width(trained):
    out = trained / "slim128.pt"
    done = slim(
        "--checkpoint",
        str(trained / "full.pt"),
        "--channels",
        "128",
        "--images",
        str(trained / "photos"),
        "--count",
        "6",
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    model, meta = load_checkpoint(out)
    assert model.config["decoder_channels"] == 128
    assert model.net.decoder.block2[1].num_features == 128 and model.net.segmentation_head[0].in_channels == 128
    assert meta["slimmed_from"]["decoder_channels"] == 256 and meta["input_size"] == [64, 64]
    full = load_checkpoint(trained / "full.pt")[0]
    # The encoder is copied unchanged.
    assert torch.equal(model.net.encoder.model.conv_stem.weight, full.net.encoder.model.conv_stem.weight)
    # Keeping the channels that carry the signal is far closer to the full model than keeping as many at random.
    photo = np.random.default_rng(5).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    want = load_model(trained / "full.pt", device="cpu").predict(photo, upsample="bilinear")
    kept = np.abs(load_model(out, device="cpu").predict(photo, upsample="bilinear") - want).mean()
    state = full.state_dict()
    rng = np.random.default_rng(2)
    sys.path.insert(0, os.path.dirname(SCRIPT))
    import slim_decoder

    chance = {
        key: torch.from_numpy(rng.random(256)).float()
        for key in slim_decoder.activations(full, torch.zeros(1, 3, 64, 64))
    }
    rebuilt = create_model("deeplabv3plus", **ENCODER, decoder_channels=128).eval()
    rebuilt.load_state_dict(slim_decoder.slim(state, chance, 128, 256))
    save_checkpoint(rebuilt, trained / "random128.pt", meta=meta)
    at_random = np.abs(
        load_model(trained / "random128.pt", device="cpu").predict(photo, upsample="bilinear") - want
    ).mean()
    assert kept < 0.5 * at_random


def test_the_slim_decoder_refuses_what_it_cannot_cut(trained, tmp_path):
    common = ["--images", str(trained / "photos"), "--output", str(tmp_path / "x.pt")]
    done = slim("--checkpoint", str(trained / "full.pt"), "--channels", "256", *common)
    assert done.returncode != 0 and "--channels 256: must be at least 8 and below the decoder's 256" in done.stderr
    save_checkpoint(create_model("unet", base_channels=4), tmp_path / "unet.pt")
    done = slim("--checkpoint", str(tmp_path / "unet.pt"), "--channels", "64", *common)
    assert done.returncode != 0 and "unet.pt: a unet model, not deeplabv3plus" in done.stderr
    assert not (tmp_path / "x.pt").exists()


def test_decoder_channels_is_a_training_option_and_only_for_deeplabv3plus():
    cfg = TrainConfig(arch="deeplabv3plus", encoder="efficientnet_lite0", decoder_channels=64)
    assert cfg.model_kwargs()["decoder_channels"] == 64
    assert TrainConfig.from_dict(cfg.to_dict()).decoder_channels == 64
    model = create_model("deeplabv3plus", **ENCODER, decoder_channels=64)
    assert model.net.segmentation_head[0].in_channels == 64 and model.config["decoder_channels"] == 64
    with pytest.raises(ValueError, match="--decoder-channels must be >= 8 and is for --arch deeplabv3plus"):
        TrainConfig(arch="fpn", encoder="efficientnet_lite0", decoder_channels=64)
    with pytest.raises(ValueError, match="decoder_channels=64: only for deeplabv3plus"):
        create_model("fpn", **ENCODER, decoder_channels=64)
