"""Res2Net: bottlenecks whose 3x3 stage is a ladder of narrow convolutions (Gao et al., 2019)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..config import LICENSE_NOT_STATED, default_config
from .layers import BOTTLENECK_BLOCK, RESIDUAL_CONNECTION
from .resnet import register_resnet


class Res2NetBottleneck(nn.Module):
    """The 1x1 output is cut into `scale` slices of `width` channels. Slice i (after the first) is
    added to the previous slice's output and convolved, so later slices see larger receptive fields;
    the last slice passes through (average-pooled in a downsampling block). A block that changes
    shape convolves every slice on its own, since there is no earlier output of the same size."""

    expansion = 4
    depth = 3
    architecture_tags = {**RESIDUAL_CONNECTION, **BOTTLENECK_BLOCK,
                         "Res2Net Block": "a bottleneck residual block whose 3x3 stage is a ladder of narrow "
                                          "convolutions over slices of the channels, each fed the previous "
                                          "one's output"}

    def __init__(self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=26, aa_layer=None,
                 scale=4):
        super().__init__()
        if aa_layer is not None:
            raise ValueError("Res2Net blocks do not take an anti-aliasing layer")
        self.width = int(math.floor(planes * (base_width / 64))) * cardinality
        self.is_first = stride > 1 or downsample is not None
        num_convs = max(1, scale - 1)
        self.conv1 = nn.Conv2d(inplanes, self.width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, stride, padding=1, groups=cardinality, bias=False)
            for _ in range(num_convs)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.width) for _ in range(num_convs))
        self.pool = nn.AvgPool2d(3, stride, padding=1) if self.is_first and scale > 1 else None
        self.conv3 = nn.Conv2d(self.width * scale, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.scale = scale

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        slices = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, 1)
        outputs = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=False)):
            sp = slices[i] if i == 0 or self.is_first else outputs[-1] + slices[i]
            outputs.append(self.relu(bn(conv(sp))))
        if self.scale > 1:
            outputs.append(self.pool(slices[-1]) if self.pool is not None else slices[-1])
        x = self.bn3(self.conv3(torch.cat(outputs, 1)))
        return self.relu(x + shortcut)


_RES2NET = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-res2net"

# The Res2Net authors state no licence for these weights (docs/architecture.md: facts only, never a guess).
RES2NET_LICENSE = dict(
    license=LICENSE_NOT_STATED, license_url="https://github.com/Res2Net/Res2Net-PretrainedModels",
    license_note="the authors' repository of the pretrained models releases its code under CC BY-NC-SA 4.0 "
                 "(non-commercial use only) and states no licence for the weights; timm 1.0.31, which hosts "
                 "these files, records their licence as 'unknown'")

register_resnet("res2net50_26w_4s", "res2net", default_config(f"{_RES2NET}/res2net50_26w_4s-06e79181.pth", **RES2NET_LICENSE),
                block=Res2NetBottleneck, layers=(3, 4, 6, 3), base_width=26, block_args=dict(scale=4))
register_resnet("res2net50_48w_2s", "res2net", default_config(f"{_RES2NET}/res2net50_48w_2s-afed724a.pth", **RES2NET_LICENSE),
                block=Res2NetBottleneck, layers=(3, 4, 6, 3), base_width=48, block_args=dict(scale=2))
register_resnet("res2net50_14w_8s", "res2net", default_config(f"{_RES2NET}/res2net50_14w_8s-6527dddc.pth", **RES2NET_LICENSE),
                block=Res2NetBottleneck, layers=(3, 4, 6, 3), base_width=14, block_args=dict(scale=8))
register_resnet("res2net50_26w_6s", "res2net", default_config(f"{_RES2NET}/res2net50_26w_6s-19041792.pth", **RES2NET_LICENSE),
                block=Res2NetBottleneck, layers=(3, 4, 6, 3), base_width=26, block_args=dict(scale=6))
register_resnet("res2net50_26w_8s", "res2net", default_config(f"{_RES2NET}/res2net50_26w_8s-2c7c9f12.pth", **RES2NET_LICENSE),
                block=Res2NetBottleneck, layers=(3, 4, 6, 3), base_width=26, block_args=dict(scale=8))
register_resnet("res2net101_26w_4s", "res2net", default_config(f"{_RES2NET}/res2net101_26w_4s-02a759a1.pth", **RES2NET_LICENSE),
                block=Res2NetBottleneck, layers=(3, 4, 23, 3), base_width=26, block_args=dict(scale=4))
