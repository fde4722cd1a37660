"""ResNeSt: ResNet-D with split-attention bottlenecks (Zhang et al., 2020)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import default_config
from .layers import BOTTLENECK_BLOCK, RESIDUAL_CONNECTION, make_divisible
from .resnet import RESNET_D, register_resnet


class SplitAttention(nn.Module):
    """A grouped 3x3 convolution producing `radix` splits per group, fused by channel attention.

    The splits are summed, globally pooled, passed through a two-layer bottleneck, and the
    result (a softmax across the splits, or a sigmoid when radix is 1) weights each split.
    """

    architecture_tags = {"Split Attention": "a grouped convolution whose output splits are weighted by an "
                                            "attention computed from their pooled sum, then added up"}

    def __init__(self, channels, stride=1, groups=1, radix=2, reduction=0.25):
        super().__init__()
        self.radix = radix
        self.groups = groups
        split_chs = channels * radix
        attn_chs = make_divisible(channels * radix * reduction, min_value=32)
        self.conv = nn.Conv2d(channels, split_chs, 3, stride, padding=1, groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(split_chs)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, attn_chs, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(attn_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn_chs, split_chs, 1, groups=groups)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv(x)))
        batch, split_chs, height, width = x.shape
        if self.radix > 1:
            splits = x.reshape(batch, self.radix, split_chs // self.radix, height, width)
            pooled = splits.sum(dim=1)
        else:
            pooled = x
        pooled = pooled.mean((2, 3), keepdim=True)
        attn = self.fc2(self.act1(self.bn1(self.fc1(pooled))))
        if self.radix > 1:
            # logits are laid out (group, radix, channel); softmax runs across the radix splits
            attn = attn.view(batch, self.groups, self.radix, -1).transpose(1, 2)
            attn = F.softmax(attn, dim=1).reshape(batch, self.radix, split_chs // self.radix, 1, 1)
            return (splits * attn).sum(dim=1).contiguous()
        return (x * torch.sigmoid(attn)).contiguous()


class SplitAttentionBottleneck(nn.Module):
    """Bottleneck whose 3x3 convolution is a split-attention unit; a strided block downsamples with a
    3x3 average pool (before or after the attention, `avd_first`) instead of a strided convolution."""

    expansion = 4
    depth = 3
    architecture_tags = {**RESIDUAL_CONNECTION, **BOTTLENECK_BLOCK}

    def __init__(self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=64, aa_layer=None,
                 radix=2, avd=True, avd_first=False):
        super().__init__()
        if aa_layer is not None:
            raise ValueError("ResNeSt blocks do not take an anti-aliasing layer")
        width = int(planes * (base_width / 64)) * cardinality
        avd_stride = stride if avd and stride > 1 else 0
        if avd_stride:
            stride = 1
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        pool = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride else None
        self.avd_first = pool if avd_first else None
        self.conv2 = SplitAttention(width, stride=stride, groups=cardinality, radix=radix)
        self.avd_last = None if avd_first else pool
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        if self.avd_first is not None:
            x = self.avd_first(x)
        x = self.conv2(x)
        if self.avd_last is not None:
            x = self.avd_last(x)
        x = self.bn3(self.conv3(x))
        return self.act3(x + shortcut)


_RESNEST = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-resnest"
_WEIGHTS = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights"
_WIDE_STEM = dict(RESNET_D, stem_width=64)  # the 'e' models: ResNet-D with a stem 64 channels wide

# The licence of each checkpoint, as its publisher states it (facts only; docs/architecture.md).
RESNEST_LICENSE = dict(  # the ResNeSt authors' weights (timm hosts them and records Apache-2.0 too)
    license="apache-2.0", license_url="https://github.com/zhanghang1989/ResNeSt/blob/master/LICENSE",
    license_note="the ResNeSt authors' repository, which publishes these weights, is under Apache-2.0")
GLUON_LICENSE = dict(  # weights ported from GluonCV, published by timm
    license="apache-2.0",
    license_url="https://github.com/huggingface/pytorch-image-models/blob/v1.0.31/timm/models/resnest.py",
    license_note="stated in the pretrained config of the weights in timm 1.0.31 ('license': 'apache-2.0')")

register_resnet("resnest14d", "resnest", default_config(f"{_WEIGHTS}/gluon_resnest14-9c8fe254.pth", **GLUON_LICENSE),
                block=SplitAttentionBottleneck, layers=(1, 1, 1, 1), **RESNET_D)
register_resnet("resnest26d", "resnest", default_config(f"{_WEIGHTS}/gluon_resnest26-50eb607c.pth", **GLUON_LICENSE),
                block=SplitAttentionBottleneck, layers=(2, 2, 2, 2), **RESNET_D)
register_resnet("resnest50d", "resnest", default_config(f"{_RESNEST}/resnest50-528c19ca.pth", **RESNEST_LICENSE),
                block=SplitAttentionBottleneck, layers=(3, 4, 6, 3), **RESNET_D)
register_resnet("resnest101e", "resnest", default_config(f"{_RESNEST}/resnest101-22405ba7.pth", image_size=256, **RESNEST_LICENSE),
                block=SplitAttentionBottleneck, layers=(3, 4, 23, 3), **_WIDE_STEM)
register_resnet("resnest200e", "resnest", default_config(f"{_RESNEST}/resnest200-75117900.pth", image_size=320,
                                                         crop_pct=0.909, interpolation="bicubic", **RESNEST_LICENSE),
                block=SplitAttentionBottleneck, layers=(3, 24, 36, 3), **_WIDE_STEM)
register_resnet("resnest269e", "resnest", default_config(f"{_RESNEST}/resnest269-0cc87c48.pth", image_size=416,
                                                         crop_pct=0.928, interpolation="bicubic", **RESNEST_LICENSE),
                block=SplitAttentionBottleneck, layers=(3, 30, 48, 8), **_WIDE_STEM)
register_resnet("resnest50d_4s2x40d", "resnest", default_config(f"{_RESNEST}/resnest50_fast_4s2x40d-41d14ed0.pth",
                                                                interpolation="bicubic", **RESNEST_LICENSE),
                block=SplitAttentionBottleneck, layers=(3, 4, 6, 3), base_width=40, cardinality=2,
                block_args=dict(radix=4, avd_first=True), **RESNET_D)
register_resnet("resnest50d_1s4x24d", "resnest", default_config(f"{_RESNEST}/resnest50_fast_1s4x24d-d4a4f76f.pth",
                                                                interpolation="bicubic", **RESNEST_LICENSE),
                block=SplitAttentionBottleneck, layers=(3, 4, 6, 3), base_width=24, cardinality=4,
                block_args=dict(radix=1, avd_first=True), **RESNET_D)
