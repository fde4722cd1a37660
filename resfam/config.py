"""A registered model's default config: what its published weights expect.

Its own module, importing nothing of resfam, so that the registry (which records configs) and the
hub (which loads weights by them) can both import it without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Default config of a registered model: what its published weights expect.

    `first_conv` and `classifier` name the model's input convolution and its head (module names for
    `model.get_submodule`), for code that adapts the input channels or replaces the head.
    """

    url: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    first_conv: str = "conv1"
    classifier: str = "fc"

    @property
    def image_size(self) -> int:
        return self.input_size[-1]


def default_config(url: str, *, image_size: int = 224, crop_pct: float = 0.875,
                   interpolation: str = "bilinear") -> ModelConfig:
    """The config of ImageNet weights at `url`, evaluated on square `image_size` crops."""
    return ModelConfig(url=url, input_size=(3, image_size, image_size), crop_pct=crop_pct,
                       interpolation=interpolation)
