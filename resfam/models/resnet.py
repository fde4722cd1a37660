"""ResNet and its direct variants: ResNet, ResNet-D (deep stem, average-pool shortcut), ResNeXt
(grouped 3x3 convolutions) and ResNet-Blur (anti-aliased downsampling).

One `ResNet` class builds them all; a block type plugs in through a small constructor contract:
`Block(inplanes, planes, stride, downsample, cardinality, base_width, aa_layer, **block_args)` with a
class attribute `expansion` (output channels / planes) and `depth` (convolutions on the main path,
for the nominal layer count). ResNeSt and Res2Net reuse this class with blocks of their own.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn

from ..config import ModelConfig, default_config
from ..registry import register_model
from .layers import BOTTLENECK_BLOCK, RESIDUAL_CONNECTION, BlurPool2d, init_weights


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1
    depth = 2
    architecture_tags = {**RESIDUAL_CONNECTION, "Residual Block": "a residual block of two 3x3 convolutions"}

    def __init__(self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=64, aa_layer=None):
        super().__init__()
        if cardinality != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only cardinality=1 and base_width=64")
        use_aa = aa_layer is not None and stride == 2
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=1 if use_aa else stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.aa = aa_layer(planes, stride) if use_aa else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.aa(self.act1(self.bn1(self.conv1(x))))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand by 4."""

    expansion = 4
    depth = 3
    architecture_tags = {**RESIDUAL_CONNECTION, **BOTTLENECK_BLOCK,
                         "ResNeXt Block": "a bottleneck residual block whose 3x3 convolution is split into "
                                          "groups (cardinality above 1)"}

    def __init__(self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=64, aa_layer=None):
        super().__init__()
        width = int(math.floor(planes * (base_width / 64))) * cardinality
        use_aa = aa_layer is not None and stride == 2
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            width, width, 3, stride=1 if use_aa else stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.aa = aa_layer(width, stride) if use_aa else nn.Identity()
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.aa(self.act2(self.bn2(self.conv2(x))))
        x = self.bn3(self.conv3(x))
        return self.act3(x + shortcut)

    def shows_architecture_tag(self, tag: str) -> bool:
        return tag != "ResNeXt Block" or self.conv2.groups > 1


def make_shortcut(inplanes: int, outplanes: int, stride: int, avg_down: bool) -> nn.Sequential:
    """Projection shortcut. ResNet-D averages 2x2 before the 1x1 so no input pixel is skipped."""
    if not avg_down:
        return nn.Sequential(
            nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), nn.BatchNorm2d(outplanes)
        )
    pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    return nn.Sequential(pool, nn.Conv2d(inplanes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes))


def make_stem(in_chans: int, stem_width: int, deep: bool) -> tuple[nn.Module, int]:
    """7x7 stride-2 convolution to 64 channels, or (deep stem, ResNet-C/D) three 3x3 convolutions,
    the last widening to 2 x `stem_width`. Returns the stem and its output channels."""
    if not deep:
        return nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False), 64
    out_chans = 2 * stem_width
    stem = nn.Sequential(
        nn.Conv2d(in_chans, stem_width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(stem_width),
        nn.ReLU(inplace=True),
        nn.Conv2d(stem_width, stem_width, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_width),
        nn.ReLU(inplace=True),
        nn.Conv2d(stem_width, out_chans, 3, padding=1, bias=False),
    )
    return stem, out_chans


class ResNet(nn.Module):
    """A stem, four stages of residual blocks, global average pooling and a linear classifier.

    Args:
        block: block class (see the module docstring for its contract).
        layers: number of blocks in each of the four stages.
        num_classes: classifier outputs; 0 gives a model without a classifier (features only).
        in_chans: input image channels.
        cardinality, base_width: group count and per-group width of the 3x3 convolutions.
        deep_stem, stem_width: three 3x3 stem convolutions of `stem_width` channels.
        avg_down: average-pool shortcut (ResNet-D).
        aa_layer: anti-aliasing downsampler (e.g. `BlurPool2d`) replacing strided convolutions.
        drop_rate: dropout before the classifier.
        block_args: extra keyword arguments for every block.
    """

    def __init__(
        self,
        block,
        layers,
        num_classes=1000,
        in_chans=3,
        cardinality=1,
        base_width=64,
        deep_stem=False,
        stem_width=64,
        avg_down=False,
        aa_layer=None,
        drop_rate=0.0,
        block_args=None,
    ):
        super().__init__()
        block_args = block_args or {}
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1, inplanes = make_stem(in_chans, stem_width, deep_stem)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        if aa_layer is None:
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.maxpool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), aa_layer(inplanes, 2))

        self._depth = 2  # the stem convolution and the classifier
        for index, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=False)):
            stride = 1 if index == 0 else 2
            blocks = []
            for i in range(num_blocks):
                block_stride = stride if i == 0 else 1
                outplanes = planes * block.expansion
                downsample = None
                if block_stride != 1 or inplanes != outplanes:
                    downsample = make_shortcut(inplanes, outplanes, block_stride, avg_down)
                blocks.append(
                    block(inplanes, planes, block_stride, downsample, cardinality, base_width, aa_layer, **block_args)
                )
                inplanes = outplanes
                self._depth += block.depth
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))

        self.num_features = inplanes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self)

    @property
    def nominal_depth(self) -> int:
        """Layer count as the model's name gives it: weighted layers on the main path."""
        return self._depth

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a new one of `num_classes` outputs (0 removes it)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling: (N, num_features, H/32, W/32)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each of the four stages, for a detection or segmentation head: their channels
        and reductions are the card's Feature channels and Feature reduction."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        outputs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------
# Registered models: one line each,
#
#     register_resnet(ID, FAMILY, default_config(WEIGHTS_URL, image_size=..., crop_pct=..., interpolation=...),
#                     block=..., layers=..., **other ResNet arguments)
#
# Weights URLs and eval settings are those of the published checkpoints.

_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download"
_WEIGHTS = f"{_RELEASES}/v0.1-weights"
_TORCHVISION = "https://download.pytorch.org/models"

# The licence of each checkpoint, as its publisher states it (facts only; docs/architecture.md). The
# torchvision checkpoints come with torchvision's BSD-3-Clause licence (timm's pretrained configs record
# them so too); timm states Apache-2.0 for the weights it trained, in its pretrained configs.
TORCHVISION_LICENSE = dict(
    license="bsd-3-clause", license_url="https://github.com/pytorch/vision/blob/main/LICENSE",
    license_note="torchvision's documentation (https://docs.pytorch.org/vision/stable/models.html) adds that "
                 "pre-trained weights may carry licences or terms of the data they were trained on (ImageNet), "
                 "and that checking them for a use is the user's responsibility")
TIMM_LICENSE = dict(
    license="apache-2.0",
    license_url="https://github.com/huggingface/pytorch-image-models/blob/v1.0.31/timm/models/resnet.py",
    license_note="stated in the pretrained config of the weights in timm 1.0.31 ('license': 'apache-2.0')")


def register_resnet(name: str, family: str, config: ModelConfig, **arch) -> None:
    """Register `name` in `family` as a `ResNet` built with the arguments `arch` (a user's keyword
    arguments to `create_model` override them)."""
    # the deep stem is a Sequential: the input convolution is its first module
    config = dataclasses.replace(config, first_conv="conv1.0" if arch.get("deep_stem") else "conv1")

    def build(**kwargs):
        return ResNet(**{**arch, **kwargs})

    build.__name__ = name
    register_model(name, family, config)(build)


RESNET_D = dict(deep_stem=True, stem_width=32, avg_down=True)

# ResNet
register_resnet("resnet18", "resnet", default_config(f"{_TORCHVISION}/resnet18-5c106cde.pth", **TORCHVISION_LICENSE), block=BasicBlock, layers=(2, 2, 2, 2))
register_resnet("resnet26", "resnet", default_config(f"{_WEIGHTS}/resnet26-9aa10e23.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(2, 2, 2, 2))
register_resnet("resnet34", "resnet", default_config(f"{_WEIGHTS}/resnet34-43635321.pth", **TIMM_LICENSE),
                block=BasicBlock, layers=(3, 4, 6, 3))
register_resnet("resnet50", "resnet", default_config(f"{_WEIGHTS}/resnet50_ram-a26f946b.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3))
register_resnet("resnetblur50", "resnet", default_config(f"{_WEIGHTS}/resnetblur50-84f4748f.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3), aa_layer=BlurPool2d)
register_resnet("tv_resnet34", "resnet", default_config(f"{_TORCHVISION}/resnet34-333f7ec4.pth", **TORCHVISION_LICENSE),
                block=BasicBlock, layers=(3, 4, 6, 3))
register_resnet("tv_resnet50", "resnet", default_config(f"{_TORCHVISION}/resnet50-19c8e357.pth", **TORCHVISION_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3))
register_resnet("tv_resnet101", "resnet", default_config(f"{_TORCHVISION}/resnet101-5d3b4d8f.pth", **TORCHVISION_LICENSE),
                block=Bottleneck, layers=(3, 4, 23, 3))
register_resnet("tv_resnet152", "resnet", default_config(f"{_TORCHVISION}/resnet152-b121ed2d.pth", **TORCHVISION_LICENSE),
                block=Bottleneck, layers=(3, 8, 36, 3))

# ResNet-D
register_resnet("resnet18d", "resnet-d", default_config(f"{_WEIGHTS}/resnet18d_ra2-48a79e06.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=BasicBlock, layers=(2, 2, 2, 2), **RESNET_D)
register_resnet("resnet26d", "resnet-d", default_config(f"{_WEIGHTS}/resnet26d-69e92c46.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(2, 2, 2, 2), **RESNET_D)
register_resnet("resnet34d", "resnet-d", default_config(f"{_WEIGHTS}/resnet34d_ra2-f8dcfcaf.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=BasicBlock, layers=(3, 4, 6, 3), **RESNET_D)
register_resnet("resnet50d", "resnet-d", default_config(f"{_WEIGHTS}/resnet50d_ra2-464e36ba.pth", interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3), **RESNET_D)
register_resnet("resnet101d", "resnet-d", default_config(f"{_WEIGHTS}/resnet101d_ra2-2803ffab.pth", image_size=256,
                                                         crop_pct=0.94, interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 4, 23, 3), **RESNET_D)
register_resnet("resnet152d", "resnet-d", default_config(f"{_WEIGHTS}/resnet152d_ra2-5cac0439.pth", image_size=256,
                                                         crop_pct=0.94, interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 8, 36, 3), **RESNET_D)
register_resnet("resnet200d", "resnet-d", default_config(f"{_WEIGHTS}/resnet200d_ra2-bdba9bf9.pth", image_size=256,
                                                         crop_pct=0.94, interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 24, 36, 3), **RESNET_D)

# ResNeXt
register_resnet("resnext50_32x4d", "resnext", default_config(f"{_WEIGHTS}/resnext50_32x4d_ra-d733960d.pth",
                                                             interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4)
register_resnet("resnext50d_32x4d", "resnext", default_config(f"{_WEIGHTS}/resnext50d_32x4d-103e99f8.pth",
                                                              interpolation="bicubic", **TIMM_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4, **RESNET_D)
register_resnet("resnext101_32x8d", "resnext", default_config(f"{_TORCHVISION}/resnext101_32x8d-8ba56ff5.pth", **TORCHVISION_LICENSE),
                block=Bottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=8)
register_resnet("tv_resnext50_32x4d", "resnext", default_config(f"{_TORCHVISION}/resnext50_32x4d-7cdf4587.pth", **TORCHVISION_LICENSE),
                block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4)
