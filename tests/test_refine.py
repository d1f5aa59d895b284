"""The stride-2 refinement branch (--refine-channels) and training a part of a network (--train-only)."""

from __future__ import annotations

import pytest
import torch

from personseg.models import create_model, read_checkpoint, save_checkpoint
from personseg.models.checkpoint import average_checkpoints
from personseg.training import trainer
from personseg.training.config import TrainConfig
from personseg.training.freeze import freeze_all_but, keep_frozen_statistics
from rebuild import assert_rebuilds
from test_training import make_folder, tiny_config

NET = {"encoder": "efficientnet_lite0", "decoder_channels": 16, "output_stride": 32}


def _pair(seed: int = 0):
    torch.manual_seed(seed)
    plain = create_model("deeplabv3plus", **NET).eval()
    refined = create_model("deeplabv3plus", refine_channels=8, **NET).eval()
    return plain, refined


def test_a_new_branch_changes_nothing_until_trained_and_then_draws_at_stride_two(tmp_path):
    plain, refined = _pair()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(key.startswith("refine.") for key in missing)
    x = torch.randn(1, 3, 70, 90)  # padded to the stride inside, cropped back
    with torch.no_grad():
        before = refined(x)
        assert before.shape == (1, 1, 70, 90)
        assert torch.equal(before, plain(x))  # its last convolution starts at zero
        torch.nn.init.normal_(refined.refine.body[-1].weight, std=0.5)
        after = refined(x)
    change = (after - before)[0, 0]
    assert change.abs().mean() > 1e-3
    # the correction is drawn at stride 2 and doubled: no 4x4 block of the plain head's grid holds a single value
    blocks = change[:64, :64].reshape(16, 4, 16, 4).permute(0, 2, 1, 3).reshape(256, 16)
    assert (blocks.std(dim=1) > 1e-4).float().mean() > 0.5
    assert_rebuilds(refined, tmp_path / "refined.pt", x, after, refine_channels=8)


def test_refine_channels_is_a_deeplabv3plus_option():
    cfg = TrainConfig(arch="deeplabv3plus", encoder="efficientnet_lite0", refine_channels=16)
    assert cfg.model_kwargs()["refine_channels"] == 16
    assert TrainConfig.from_dict(cfg.to_dict()).refine_channels == 16
    with pytest.raises(ValueError, match="--refine-channels must be >= 4 and is for --arch deeplabv3plus"):
        TrainConfig(arch="unet", refine_channels=16)
    with pytest.raises(ValueError, match="--refine-channels must be >= 4"):
        TrainConfig(arch="deeplabv3plus", encoder="efficientnet_lite0", refine_channels=2)
    with pytest.raises(ValueError, match="refine_channels"):
        create_model("fpn", encoder="efficientnet_lite0", refine_channels=16)


def test_freezing_keeps_everything_outside_the_prefixes_and_names_a_wrong_one():
    _, refined = _pair()
    trained = freeze_all_but(refined, ["refine"])
    assert trained == sum(p.numel() for p in refined.refine.parameters())
    assert all(p.requires_grad == name.startswith("refine.") for name, p in refined.named_parameters())
    refined.train()
    keep_frozen_statistics(refined, ["refine"])
    norms = [(name, m.training) for name, m in refined.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {training for name, training in norms if name.startswith("refine.")} == {True}
    assert {training for name, training in norms if not name.startswith("refine.")} == {False}
    assert freeze_all_but(refined, []) == refined.get_num_params()  # nothing named: everything trains
    with pytest.raises(ValueError, match=r"--train-only \['refin'\]: no parameter of this model is under it"):
        freeze_all_but(refined, ["refin"])  # a prefix is a whole name part, not any start of one


def test_a_run_with_train_only_moves_the_branch_alone(tmp_path):
    data = make_folder(tmp_path / "data", 4, size=(64, 64))
    plain, _ = _pair()
    save_checkpoint(plain, tmp_path / "plain.pt")
    cfg = tiny_config(
        data,
        data,
        tmp_path / "run",
        arch="deeplabv3plus",
        refine_channels=8,
        train_only=["refine"],
        init_from=str(tmp_path / "plain.pt"),
        init_partial=True,
        input_size=64,
        epochs=1,
        lr=0.01,
        base_channels=None,
        **NET,
    )
    trainer.main(cfg)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    state = last["state_dict"]
    before = plain.state_dict()
    for key, value in state.items():
        if key.startswith("refine."):
            continue
        assert torch.equal(value, before[key]), f"{key} moved"  # weights and batch-norm statistics alike
    assert not torch.equal(state["refine.body.6.weight"], torch.zeros_like(state["refine.body.6.weight"]))
    assert last["meta"]["train_config"]["train_only"] == ["refine"]


def test_a_model_without_the_branch_averages_with_checkpoints_from_before_the_option(tmp_path):
    """A checkpoint saved before ``refine_channels`` existed has no such key; a new plain model must match it."""
    plain, _ = _pair()
    assert "refine_channels" not in plain.config
    save_checkpoint(plain, tmp_path / "new.pt")
    old = torch.load(tmp_path / "new.pt", map_location="cpu", weights_only=False)
    old["model"]["config"].pop("refine_channels", None)  # what a file from before the option holds
    torch.save(old, tmp_path / "old.pt")
    soup = average_checkpoints([tmp_path / "old.pt", tmp_path / "new.pt"])
    assert soup["state_dict"].keys() == plain.state_dict().keys()
