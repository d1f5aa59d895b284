"""Training against rounded weights (--round-weights): the grid, the in-place swap, and a run that saves floats."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from personseg.models import read_checkpoint
from personseg.training import trainer
from personseg.training.config import TrainConfig
from personseg.training.rounding import WeightRounding, round_per_channel
from test_training import make_folder, tiny_config


def on_grid(weight: torch.Tensor, levels: int) -> bool:
    flat = weight.reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1, keepdim=True) / levels
    steps = flat / scale.clamp_min(1e-30)
    return bool(torch.allclose(steps, steps.round(), atol=1e-4))


def test_round_per_channel_matches_onnx_runtimes_seven_bit_grid_by_hand():
    w = torch.tensor([[1.0, -0.5, 0.26], [0.0, 0.0, 0.0], [-2.0, 0.01, 0.03]]).reshape(3, 3, 1, 1)
    q = round_per_channel(w, 7)  # 7 bits: -64..64 times max|w| / 64 (reduce_range)
    assert q[0].flatten().tolist() == pytest.approx([1.0, -0.5, 17 / 64])  # 0.26 * 64 = 16.64 -> 17
    assert q[1].flatten().tolist() == [0.0, 0.0, 0.0]  # an all-zero channel stays zero, no NaN
    assert q[2].flatten().tolist() == pytest.approx([-2.0, 0.0, 1 / 32])  # step 1/32: 0.01 -> 0, 0.03 -> 1 step
    assert round_per_channel(torch.tensor([[0.5, 1.0]]), 8)[0].tolist() == pytest.approx([64 / 127, 1.0])


def test_weight_rounding_runs_the_step_at_the_rounded_weights_and_updates_the_float_ones():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 1, 1))
    floats = [m.weight.detach().clone() for m in model if isinstance(m, nn.Conv2d)]
    rounded = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 1, 1))
    rounded.load_state_dict(model.state_dict())
    with torch.no_grad():
        for m in rounded:
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(round_per_channel(m.weight, 3))
    x = torch.randn(2, 3, 8, 8)
    rounding = WeightRounding(model, 3)
    with rounding:
        assert all(on_grid(w, 4) for w in rounding.weights)
        out = model(x)
        out.mean().backward()
    torch.testing.assert_close(out, rounded(x))
    rounded(x).mean().backward()
    # after the block: the float weights are back exactly, holding the gradient taken at the rounded point
    for m, mr, f in zip(
        [m for m in model if isinstance(m, nn.Conv2d)],
        [m for m in rounded if isinstance(m, nn.Conv2d)],
        floats,
        strict=True,
    ):
        assert torch.equal(m.weight.detach(), f)
        torch.testing.assert_close(m.weight.grad, mr.weight.grad)
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(model[0].weight.detach(), floats[0])
    with rounding:  # reusable
        assert on_grid(model[0].weight.detach(), 4)
    with pytest.raises(ValueError, match="2-8 bits"):
        WeightRounding(model, 1)
    with pytest.raises(ValueError, match="no convolutions"):
        WeightRounding(nn.Linear(2, 2), 7)


def test_round_weights_is_checked_and_a_run_with_it_saves_float_weights(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--round-weights must be 0 \\(off\\) or 2-8 bits, got 9"):
        TrainConfig(round_weights=9)
    entered = []

    class Counting(WeightRounding):
        def __enter__(self):
            entered.append(self.bits)
            return super().__enter__()

    monkeypatch.setattr(trainer, "WeightRounding", Counting)
    data = make_folder(tmp_path / "data", 2)
    cfg = tiny_config(data, data, tmp_path / "run", epochs=1, round_weights=3, lr=0.01, vis_every=1)
    trainer.main(cfg)
    # each of the 4 steps (8 samples, batch 2), the validation and the validation grid drawn after it
    assert entered == [3] * (8 // 2 + 2)
    assert (tmp_path / "run" / "val_predictions.png").is_file()
    state = read_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    convs = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 4 and v.shape[-1] > 1]
    assert convs and not all(on_grid(w, 4) for w in convs)  # the float (latent) weights, not the 3-bit grid
    assert read_checkpoint(tmp_path / "run" / "last.pt")["meta"]["train_config"]["round_weights"] == 3
