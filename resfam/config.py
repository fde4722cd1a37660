"""A registered model's default config: what its published weights expect.

Its own module, importing nothing of resfam, so that the registry (which records configs) and the
hub (which loads weights by them) can both import it without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The licence of weights whose publisher states none: said so, never guessed.
LICENSE_NOT_STATED = "not stated by the publisher"


@dataclass(frozen=True)
class ModelConfig:
    """Default config of a registered model: what its published weights expect.

    `first_conv` and `classifier` name the model's input convolution and its head (module names for
    `model.get_submodule`), for code that adapts the input channels or replaces the head.

    `license` is the licence of the weights as their publisher states it (a lowercase Hugging Face Hub
    id such as 'apache-2.0', or `LICENSE_NOT_STATED`), `license_url` where the publisher states it (or
    publishes the weights, when it states none) and `license_note` what else the publisher says about
    their use.
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
    license: str = LICENSE_NOT_STATED
    license_url: str = ""
    license_note: str = ""

    @property
    def image_size(self) -> int:
        return self.input_size[-1]


def default_config(url: str, *, image_size: int = 224, crop_pct: float = 0.875,
                   interpolation: str = "bilinear", license: str = LICENSE_NOT_STATED, license_url: str = "",
                   license_note: str = "") -> ModelConfig:
    """The config of ImageNet weights at `url`, evaluated on square `image_size` crops, under the licence
    their publisher states (see `ModelConfig`)."""
    return ModelConfig(url=url, input_size=(3, image_size, image_size), crop_pct=crop_pct,
                       interpolation=interpolation, license=license, license_url=license_url,
                       license_note=license_note)
