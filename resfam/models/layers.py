"""Small pieces shared by the model families."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Architecture tags that blocks of several families show: one definition each (what a card's
# Architecture list may name is explained in resfam/cards/architecture.py).
RESIDUAL_CONNECTION = {"Residual Connection": "the block's input, or its projection by the shortcut, is added to "
                                              "the block's output"}
BOTTLENECK_BLOCK = {"Bottleneck Residual Block": "a residual block that narrows the channels with a 1x1 "
                                                 "convolution, works at the narrow width, and widens them again "
                                                 "with a 1x1 convolution"}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping below 90 % of `value`."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling: a fixed [1, 2, 1] binomial blur per channel, then a stride.

    The filter is a non-persistent buffer, so checkpoints carry no extra keys.
    """

    architecture_tags = {"Blur Pooling": "a fixed low-pass filter applied before subsampling (anti-aliased "
                                         "downsampling)"}

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.channels = channels
        self.stride = stride
        taps = torch.tensor([0.25, 0.5, 0.25])
        kernel = (taps[:, None] * taps[None, :])[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer("filt", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)


def init_weights(model: nn.Module) -> None:
    """He init for convolutions, unit scale for norms: the usual start for training from scratch."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
