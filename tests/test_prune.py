"""Narrowing a trained network's encoder blocks (personseg.models.prune, scripts/prune_checkpoint.py)."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from personseg.models import create_model, load_checkpoint  # noqa: E402
from personseg.models.checkpoint import save_checkpoint  # noqa: E402
from personseg.models.prune import expanding_blocks, prune_hidden_channels  # noqa: E402
from personseg.models.smp_models import narrow_block, parse_hidden_widths  # noqa: E402
from personseg.training.config import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NET = dict(encoder="efficientnet_lite0", decoder_channels=32, output_stride=32)


def network(seed: int = 0, **extra):
    """A Lite0 DeepLabV3+ whose batch norms hold varied statistics, as a trained network's do."""
    torch.manual_seed(seed)
    model = create_model("deeplabv3plus", **NET, **extra).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.uniform_(-0.5, 1.0)
    return model


def photos(count: int = 6, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d
    return [smooth(torch.randn(1, 3, 64, 96, generator=g), 5, 1, 2) * 2 for _ in range(count)]


@pytest.fixture
def sample_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos" / "images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder.parent


def test_hidden_widths_narrow_the_named_blocks_and_a_checkpoint_rebuilds_them(tmp_path):
    model = network(hidden_widths="1.1:72,5.2:480")
    blocks = dict(expanding_blocks(model))
    assert blocks["1.1"].conv_pw.out_channels == blocks["1.1"].conv_dw.in_channels == 72
    assert blocks["1.1"].conv_pwl.in_channels == 72 and blocks["1.1"].bn2.num_features == 72
    assert blocks["5.2"].conv_pwl.weight.shape == (192, 480, 1, 1)
    assert blocks["5.1"].conv_pw.out_channels == 1152  # the blocks not named keep theirs
    assert parse_hidden_widths(model.config["hidden_widths"]) == {"1.1": 72, "5.2": 480}
    x = photos(1)[0]
    with torch.no_grad():
        out = model(x)
    save_checkpoint(model, tmp_path / "narrow.pt")
    again, _ = load_checkpoint(tmp_path / "narrow.pt")
    with torch.no_grad():
        assert torch.equal(again.eval()(x), out)
    # --init-from a narrowed checkpoint: the same widths load, a whole network is told which to give
    from personseg.training.builders import init_weights

    assert init_weights(network(hidden_widths="1.1:72,5.2:480"), str(tmp_path / "narrow.pt")) > 100
    with pytest.raises(ValueError, match="train with --hidden-widths '1.1:72,5.2:480'"):
        init_weights(network(), str(tmp_path / "narrow.pt"))
    save_checkpoint(network(), tmp_path / "whole.pt")
    with pytest.raises(ValueError, match="its encoder is whole; drop --hidden-widths"):
        init_weights(network(hidden_widths="1.1:72"), str(tmp_path / "whole.pt"))
    assert init_weights(network(hidden_widths="1.1:72"), str(tmp_path / "whole.pt"), partial=True) > 100
    cfg = TrainConfig(arch="deeplabv3plus", **NET, hidden_widths="1.1:72,5.2:480")
    assert cfg.model_kwargs()["hidden_widths"] == "1.1:72,5.2:480"
    assert "hidden_widths" not in TrainConfig(arch="deeplabv3plus", **NET).model_kwargs()
    with pytest.raises(ValueError, match="--hidden-widths"):
        TrainConfig(arch="unet", hidden_widths="1.1:72")
    for bad, why in (
        ("1.1=72", "not STAGE.BLOCK:CHANNELS"),
        ("9.1:8", "not STAGE.BLOCK"),
        ("0.0:8", "no expansion"),
        ("1.1:999", "has 144 hidden channels, asked for 999"),
    ):
        with pytest.raises(ValueError, match=why):
            create_model("deeplabv3plus", **NET, hidden_widths=bad)
    # TensorFlow-style padding (a stride-2 block of a tf_ encoder) is computed at run time by timm's Conv2dSame: a plain
    # copy would pad wrongly
    with pytest.raises(ValueError, match="Conv2dSame"):
        create_model("deeplabv3plus", **{**NET, "encoder": "tf_efficientnet_lite0"}, hidden_widths="2.0:96")


def test_dead_and_constant_hidden_channels_are_removed_without_changing_the_output():
    """A channel that ReLU6 always zeroes adds nothing, and one that is constant adds a constant the next batch norm
    takes: narrowing a block by exactly those leaves the network's output as it was."""
    model = network()
    block = dict(expanding_blocks(model))["1.1"]  # 144 hidden channels; keep 0.75 leaves 108
    dead, constant = torch.arange(0, 24), torch.arange(60, 72)
    block.bn2.bias.data[dead] = -100.0
    block.bn2.weight.data[constant] = 0.0
    block.bn2.bias.data[constant] = 3.0
    inputs = photos()
    with torch.no_grad():
        before = [model(x) for x in inputs]
    widths = prune_hidden_channels(model, inputs, {"1.1": 0.75}, multiple=4, ridge=0.0)
    assert widths == {"1.1": 108} and model.config["hidden_widths"] == "1.1:108"
    assert block.conv_pw.out_channels == 108
    with torch.no_grad():
        for x, y in zip(inputs, before, strict=True):
            assert torch.allclose(model(x), y, atol=1e-4)
    # a block narrowed by channels it does use answers differently
    prune_hidden_channels(model, inputs, {"1.1": 0.5}, multiple=4, ridge=0.0)
    with torch.no_grad():
        assert not torch.allclose(model(inputs[0]), before[0], atol=1e-3)


def test_the_refit_projection_answers_closer_to_the_whole_network_than_dropping_channels():
    model, inputs = network(), photos()
    naive = copy.deepcopy(model)
    errors = {}
    prune_hidden_channels(model, inputs, {4: 0.5}, progress=lambda name, k, of, err: errors.setdefault(name, err))
    assert set(errors) == {"4.0", "4.1", "4.2"} and all(0 <= e < 1 for e in errors.values())
    for name, block in expanding_blocks(naive):
        if name.startswith("4."):
            narrow_block(block, torch.arange(block.conv_pw.out_channels // 2))  # the first half, no refit
    whole = network()
    with torch.no_grad():
        ref = torch.cat([whole(x) for x in inputs])
        refit = (torch.cat([model(x) for x in inputs]) - ref).abs().mean()
        dropped = (torch.cat([naive(x) for x in inputs]) - ref).abs().mean()
    assert refit < 0.5 * dropped
    # Asked to make up what the narrowed blocks before it moved its input by, each residual block keeps the errors
    # from piling up along the stream; refit alone, each block answers only for itself.
    alone = network()
    prune_hidden_channels(alone, inputs, {4: 0.5}, mend_residual=False)
    with torch.no_grad():
        assert refit < (torch.cat([alone(x) for x in inputs]) - ref).abs().mean()
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        prune_hidden_channels(network(), inputs, 1.5)
    with pytest.raises(ValueError, match=r"no expanding block or stage \[9, '0.0'\]"):
        prune_hidden_channels(network(), inputs, {9: 0.5, "0.0": 0.5})  # block 0.0 widens nothing


def test_prune_checkpoint_script_writes_a_narrower_checkpoint(tmp_path, sample_folder):
    model = network()
    save_checkpoint(model, tmp_path / "whole.pt", meta={"input_size": [64, 64], "resize": "stretch"})
    out = tmp_path / "narrow.pt"
    cmd = [sys.executable, str(REPO / "scripts" / "prune_checkpoint.py"), str(tmp_path / "whole.pt")]
    done = subprocess.run(
        [*cmd, "--keep", "5:0.5", "--data", str(sample_folder), "--images", "4", "--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    narrow, meta = load_checkpoint(out)
    assert narrow.config["hidden_widths"] == "5.0:336,5.1:576,5.2:576,5.3:576"
    assert "hidden channels narrowed" in meta["note"]
    assert narrow.get_num_params() < model.get_num_params()
    bad = subprocess.run(
        [*cmd, "--keep", "five", "--data", str(sample_folder), "--output", str(out)], text=True, capture_output=True
    )
    assert bad.returncode == 2 and "--keep 'five'" in bad.stderr
    assert np.isfinite(narrow(photos(1)[0]).detach().numpy()).all()
