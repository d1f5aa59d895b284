"""The running average of the weights (--ema): the arithmetic, the swap, and a run that saves and resumes it."""

from __future__ import annotations

import pytest
import torch

from personseg.models import read_checkpoint
from personseg.training import builders, trainer
from personseg.training.averaging import WeightAverage
from personseg.training.config import TrainConfig
from test_training import make_folder, tiny_config


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_the_average_moves_by_one_minus_decay_a_step_and_lags_steady_weights_by_decay_over_one_minus_it():
    net = _net()
    average = WeightAverage(net, 0.9)
    start = net[0].weight.detach().clone()
    expected = start.clone()
    for _ in range(200):
        with torch.no_grad():
            net[0].weight.add_(1.0)
        average.update(net)
        expected = 0.9 * expected + 0.1 * net[0].weight.detach()
    torch.testing.assert_close(average.shadow["0.weight"], expected)
    expected_var = average.shadow["1.running_var"].clone()
    # steps of +1 leave the average decay / (1 - decay) = 9 steps behind
    lag = (net[0].weight - average.shadow["0.weight"]).mean().item()
    assert lag == pytest.approx(9.0, abs=0.05)
    net.train()
    for _ in range(3):
        net(torch.randn(4, 1, 3, 3))
    average.update(net)
    assert int(average.shadow["1.num_batches_tracked"]) == 3  # integer buffers are copied, not averaged
    running = 0.9 * expected_var + 0.1 * net[1].running_var.detach()
    torch.testing.assert_close(average.shadow["1.running_var"], running)  # float buffers are averaged


def test_applied_swaps_the_average_in_and_the_live_weights_back_even_on_error():
    net = _net()
    average = WeightAverage(net, 0.5)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    live = net[0].weight.detach().clone()
    with average.applied(net) as kept:
        assert torch.equal(net[0].weight, average.shadow["0.weight"])
        assert torch.equal(kept["0.weight"], live)
    assert torch.equal(net[0].weight, live)
    with pytest.raises(RuntimeError, match="boom"), average.applied(net):
        raise RuntimeError("boom")
    assert torch.equal(net[0].weight, live)


def test_ema_is_checked():
    with pytest.raises(ValueError, match=r"--ema must be 0 \(off\) or in \(0, 1\), got 1.0"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="--ema must be in"):
        WeightAverage(_net(), 0.0)
    assert TrainConfig.from_dict(TrainConfig(ema=0.99).to_dict()).ema == 0.99


def test_a_run_saves_the_average_and_resumes_both_weights(tmp_path):
    data = make_folder(tmp_path / "data", 4)
    cfg = tiny_config(data, data, tmp_path / "run", ema=0.9, epochs=1, lr=0.05, keep_epochs=True)
    trainer.main(cfg)
    first = read_checkpoint(tmp_path / "run" / "last.pt")
    ts = first["train_state"]
    live, saved = ts["live_weights"], first["state_dict"]
    assert ts["average"]["updates"] == 4 and ts["average"]["shadow"] is None  # 8 samples, batch 2
    moved = [k for k in saved if saved[k].is_floating_point() and not torch.equal(saved[k], live[k])]
    assert moved  # the saved weights are the average, not the last step's
    epoch_file = read_checkpoint(tmp_path / "run" / "epoch001.pt")["state_dict"]
    assert all(torch.equal(epoch_file[k], saved[k]) for k in saved)

    # one more epoch, resumed: the live weights and the average both go on exactly as in a run never stopped
    cfg2 = tiny_config(data, data, tmp_path / "run", ema=0.9, epochs=2, lr=0.05, resume=True)
    trainer.main(cfg2)
    trainer.main(tiny_config(data, data, tmp_path / "fresh", ema=0.9, epochs=2, lr=0.05))
    resumed = read_checkpoint(tmp_path / "run" / "last.pt")
    fresh = read_checkpoint(tmp_path / "fresh" / "last.pt")
    second = resumed["train_state"]
    assert second["average"]["updates"] == 8
    for key, tensor in fresh["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], tensor, rtol=0, atol=1e-6, msg=f"average {key}")
        live = fresh["train_state"]["live_weights"][key]
        torch.testing.assert_close(second["live_weights"][key], live, rtol=0, atol=1e-6, msg=f"live {key}")

    # resumed without --ema: training goes on from the live weights (restore puts them in the model), and the
    # next last.pt carries no average
    cfg3 = tiny_config(data, data, tmp_path / "run", epochs=3, resume=True)
    model = builders.build_model(cfg3)
    optimizer = builders.build_optimizer(cfg3, model)
    scheduler = builders.build_scheduler(cfg3, optimizer)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    *_, average = trainer.restore(tmp_path / "run" / "last.pt", model, optimizer, scheduler, scaler, cfg3)
    assert average is not None  # there was one; main() drops it without --ema
    for key, value in model.state_dict().items():
        assert torch.equal(value, second["live_weights"][key]), key
    trainer.main(cfg3)
    assert "average" not in read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]


def test_warmup_moves_most_of_the_way_at_first_and_grows_the_decay_to_its_cap():
    net = _net()
    average = WeightAverage(net, 0.995, warmup=True)
    assert average.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        net[0].weight.add_(5.0)
    average.update(net)
    # the first update keeps 0.1 of the init: 0.9 of the way to the live weights, where no warm-up moves 0.005
    moved = average.shadow["0.weight"] - (net[0].weight.detach() - 5.0)
    torch.testing.assert_close(moved, torch.full_like(moved, 4.5))
    average.updates = 99
    assert average.current_decay() == pytest.approx(100 / 109)
    average.updates = 5000
    assert average.current_decay() == 0.995  # capped at --ema
    plain = WeightAverage(net, 0.995)
    assert plain.current_decay() == 0.995


def test_ema_warmup_needs_ema():
    with pytest.raises(ValueError, match="--ema-warmup without --ema"):
        TrainConfig(ema_warmup=True)
    assert TrainConfig.from_dict(TrainConfig(ema=0.99, ema_warmup=True).to_dict()).ema_warmup


def test_a_warmed_up_average_resumes_where_it_stopped(tmp_path):
    # the warm-up's decay depends on the update count, so a resumed run must carry it: two epochs with a stop between
    # them end with the same average as two epochs in one go
    data = make_folder(tmp_path / "data", 4)
    common = {"ema": 0.9, "ema_warmup": True, "lr": 0.05}
    trainer.main(tiny_config(data, data, tmp_path / "run", epochs=1, **common))
    trainer.main(tiny_config(data, data, tmp_path / "run", epochs=2, resume=True, **common))
    trainer.main(tiny_config(data, data, tmp_path / "fresh", epochs=2, **common))
    trainer.main(tiny_config(data, data, tmp_path / "plain", epochs=2, ema=0.9, lr=0.05))
    resumed, fresh, plain = (read_checkpoint(tmp_path / d / "last.pt") for d in ("run", "fresh", "plain"))
    assert resumed["train_state"]["average"]["updates"] == 8
    for key, tensor in fresh["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], tensor, rtol=0, atol=1e-6, msg=key)
    # and the warm-up changed what was saved: the same run without it keeps more of the init
    assert any(
        not torch.allclose(plain["state_dict"][k], t) for k, t in fresh["state_dict"].items() if t.is_floating_point()
    )
