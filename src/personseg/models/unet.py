"""The classic U-Net (Ronneberger et al. 2015), as in the seed project.

Four encoder blocks, a bottleneck and four decoder blocks; every block is two 3x3 conv + BatchNorm + ReLU,
downsampling by max-pooling and upsampling by transposed convolution, with skip connections joining encoder
and decoder at each scale. ``base_channels=64`` gives about 31M parameters; the width doubles at every level.
"""

from __future__ import annotations

import torch
from torch import nn

from personseg.models._base import SegmentationModel


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) twice: the unit every U-Net block is made of."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, then a DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(SegmentationModel):
    """Hand-written U-Net; any input size works (padded to a multiple of 16 and cropped back)."""

    stride = 16

    def __init__(self, in_channels: int = 3, classes: int = 1, base_channels: int = 64) -> None:
        super().__init__(in_channels=in_channels, classes=classes, base_channels=base_channels)
        c = base_channels
        self.inc = DoubleConv(in_channels, c)
        self.downs = nn.ModuleList(
            [nn.Sequential(nn.MaxPool2d(2), DoubleConv(c * 2**i, c * 2 ** (i + 1))) for i in range(4)]
        )
        self.ups = nn.ModuleList([Up(c * 2 ** (i + 1), c * 2**i) for i in reversed(range(4))])
        self.head = nn.Conv2d(c, classes, kernel_size=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)
