"""The networks: a plain stack of 3x3 convolutions, and the same stack with a channel gate in each block."""
from __future__ import annotations

import torch
from torch import nn


class ChannelGate(nn.Module):
    """Scales each channel by a weight in (0, 1) computed from the channel means of its input."""

    architecture_tags = {"Channel Gate": "each channel scaled by a sigmoid weight computed from the "
                                         "channel means of the block's input (tinyzoo's ChannelGate)"}

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.score(x.mean(dim=(2, 3))))
        return x * weights[:, :, None, None]


class Block(nn.Module):
    """3x3 convolution, batch normalization, ReLU; optionally a channel gate."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, gate: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels_out)
        self.act = nn.ReLU(inplace=True)
        self.gate = ChannelGate(channels_out) if gate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.act(self.bn(self.conv(x))))


class TinyNet(nn.Module):
    """`depth` - 1 blocks, the width doubling (and the image halving) every two blocks, then global
    average pooling and a linear classifier: `depth` weighted layers in all."""

    def __init__(self, depth: int, width: int = 16, gate: bool = False, num_classes: int = 10):
        super().__init__()
        self.depth = depth
        blocks, channels = [], 3
        for index in range(depth - 1):
            out = width * 2 ** (index // 2)
            blocks.append(Block(channels, out, 2 if index % 2 == 0 else 1, gate))
            channels = out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
