"""Prune a DeepLabV3+ checkpoint's decoder to fewer channels, as a starting point for a cheaper model.

smp's DeepLabV3+ decoder has 256 channels; on personseg-fast at 192 it is ~37% of the network time. This keeps,
at each of the decoder's channel-wide layers (the five ASPP branches, the ASPP projection, the separable conv after
it and the fusion block), the ``--channels`` channels that matter most to the next layer on real photos: the root
mean square of the channel's activation over ``--images`` photos times the norm of the weights that read it. The
encoder is copied unchanged. The result predicts worse than the original until it is trained (distilled from the
original: ``personseg train --init-from SLIM.pt --teacher ORIGINAL.pt``); its config says ``decoder_channels``.

    python scripts/slim_decoder.py --checkpoint checkpoints/personseg-fast.pt --channels 128 \\
        --images ../shared/data/ccp ../shared/data/coco_train --output runs/slim128.pt
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from personseg.export.quantize import calibration_images
from personseg.inference.api import Segmenter
from personseg.inference.io import read_image
from personseg.models import create_model, model_name, save_checkpoint
from personseg.models.checkpoint import model_from_checkpoint, read_checkpoint

log = logging.getLogger("slim_decoder")


def activations(model, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Root mean square, per channel, of the decoder's activations that get pruned."""
    dec = model.net.decoder
    points = {f"branch{i}": conv for i, conv in enumerate(dec.aspp[0].convs)}
    points["project"] = dec.aspp[0].project[2]
    points["aspp_out"] = dec.aspp[3]
    points["fused"] = dec.block2[2]
    found: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, key=key: found.__setitem__(key, out.float().pow(2).mean(dim=(0, 2, 3)).sqrt())
        )
        for key, module in points.items()
    ]
    with torch.no_grad():
        model(batch)
    for hook in hooks:
        hook.remove()
    return found


def keep(score: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.topk(score, k).indices).values


def slim(state: dict[str, torch.Tensor], rms: dict[str, torch.Tensor], k: int, width: int) -> dict[str, torch.Tensor]:
    """The decoder weights cut to ``k`` channels; ``state`` is the full model's state dict (encoder kept)."""
    p = "net.decoder."
    out = {name: v for name, v in state.items() if not name.startswith(p) and not name.startswith("net.segmentation")}

    def bn(prefix: str, idx: torch.Tensor) -> None:
        for part in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{part}"] = state[f"{prefix}.{part}"][idx]
        out[f"{prefix}.num_batches_tracked"] = state[f"{prefix}.num_batches_tracked"]

    project = state[p + "aspp.0.project.0.weight"][:, :, 0, 0]  # width x 5*width
    branches = []
    for i in range(5):
        reads = project[:, i * width : (i + 1) * width].norm(dim=0)
        idx = keep(rms[f"branch{i}"] * reads, k)
        branches.append(idx + i * width)
        if i == 0:
            out[p + "aspp.0.convs.0.0.weight"] = state[p + "aspp.0.convs.0.0.weight"][idx]
            bn(p + "aspp.0.convs.0.1", idx)
        elif i < 4:
            out[f"{p}aspp.0.convs.{i}.0.0.weight"] = state[f"{p}aspp.0.convs.{i}.0.0.weight"]  # depthwise on input
            out[f"{p}aspp.0.convs.{i}.0.1.weight"] = state[f"{p}aspp.0.convs.{i}.0.1.weight"][idx]
            bn(f"{p}aspp.0.convs.{i}.1", idx)
        else:
            out[p + "aspp.0.convs.4.1.weight"] = state[p + "aspp.0.convs.4.1.weight"][idx]
            bn(p + "aspp.0.convs.4.2", idx)
    cat = torch.cat(branches)

    dw, pw = state[p + "aspp.1.0.weight"], state[p + "aspp.1.1.weight"]  # separable conv after the projection
    reads = dw.flatten(1).norm(dim=1) * pw[:, :, 0, 0].norm(dim=0)
    proj_idx = keep(rms["project"] * reads, k)
    out[p + "aspp.0.project.0.weight"] = state[p + "aspp.0.project.0.weight"][proj_idx][:, cat]
    bn(p + "aspp.0.project.1", proj_idx)

    fuse_dw, fuse_pw = state[p + "block2.0.0.weight"], state[p + "block2.0.1.weight"]
    reads = (fuse_dw.flatten(1).norm(dim=1) * fuse_pw[:, :, 0, 0].norm(dim=0))[:width]
    aspp_idx = keep(rms["aspp_out"] * reads, k)
    out[p + "aspp.1.0.weight"] = dw[proj_idx]
    out[p + "aspp.1.1.weight"] = pw[aspp_idx][:, proj_idx]
    bn(p + "aspp.2", aspp_idx)

    out.update({k: v for k, v in state.items() if k.startswith(p + "block1.")})  # the high-resolution branch, whole
    fused_in = torch.cat([aspp_idx, torch.arange(width, fuse_dw.shape[0])])  # the 48 high-resolution ones stay
    head = state["net.segmentation_head.0.weight"]
    fused_idx = keep(rms["fused"] * head[0, :, 0, 0].abs(), k)
    out[p + "block2.0.0.weight"] = fuse_dw[fused_in]
    out[p + "block2.0.1.weight"] = fuse_pw[fused_idx][:, fused_in]
    bn(p + "block2.1", fused_idx)
    out["net.segmentation_head.0.weight"] = head[:, fused_idx]
    out["net.segmentation_head.0.bias"] = state["net.segmentation_head.0.bias"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a deeplabv3plus .pt checkpoint")
    parser.add_argument("--channels", type=int, required=True, help="decoder channels to keep (smp's default: 256)")
    parser.add_argument("--images", nargs="+", required=True, help="folders of photos to score the channels on")
    parser.add_argument("--count", type=int, default=64, help="photos used (spread over the folders)")
    parser.add_argument("--output", required=True, help="the .pt checkpoint to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    ckpt = read_checkpoint(args.checkpoint)
    config = dict(ckpt["model"]["config"])
    if ckpt["model"]["name"] != "deeplabv3plus":
        sys.exit(f"slim_decoder: {args.checkpoint}: a {ckpt['model']['name']} model, not deeplabv3plus")
    width = config.get("decoder_channels") or 256
    if not 8 <= args.channels < width:
        sys.exit(f"slim_decoder: --channels {args.channels}: must be at least 8 and below the decoder's {width}")
    model = model_from_checkpoint(ckpt).eval()
    photos = Segmenter(ckpt["meta"], args.checkpoint)  # the checkpoint's own preprocessing, no second load
    files = calibration_images(args.images, args.count, ckpt["meta"].get("val_fraction") or 0.1)
    batch = torch.from_numpy(np.stack([photos.preprocess(read_image(f).rgb)[0] for f in files]))
    rms = activations(model, batch)

    config["decoder_channels"] = args.channels
    small = create_model("deeplabv3plus", **{k: v for k, v in config.items() if k != "arch"})
    small.load_state_dict(slim(model.state_dict(), rms, args.channels, width))
    meta = dict(ckpt["meta"])
    meta["slimmed_from"] = {"checkpoint": str(args.checkpoint), "decoder_channels": width, "photos": len(files)}
    save_checkpoint(small, Path(args.output), meta=meta)
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in small.parameters())
    log.info(
        "wrote %s: %s, decoder %d -> %d channels, %d -> %d parameters",
        args.output,
        model_name(small),
        width,
        args.channels,
        before,
        after,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
