"""The model registry: every model ID maps to a builder function and its default config.

A model ID is registered once, with the family it belongs to and the config the published weights
were trained for. Everything else (the docs build, the command line, users) resolves names here.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # only for annotations: the card engine reads FAMILIES without paying for torch
    import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FAMILIES = ("resnet", "resnet-d", "resnext", "resnest", "res2net")


@dataclass(frozen=True)
class ModelConfig:
    """Default config of a registered model: what its published weights expect."""

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


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module] = field(repr=False)
    config: ModelConfig


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered; the message lists the closest names."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown model {name!r}.{hint} See resfam.list_models() for all names.")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


_REGISTRY: dict[str, ModelEntry] = {}
_ZOO_MODULE = "resfam.models"  # importing it registers every model of the zoo
_zoo_loaded = False


def load_zoo() -> None:
    """Register the zoo (import `resfam.models`, and with it torch), once. Every lookup below calls
    it, so `import resfam` stays cheap and a lookup still sees every model."""
    global _zoo_loaded
    if _zoo_loaded:
        return
    # import_module rather than an import statement: the measuring worker records the import
    # statements run while a model is built, and this one must not make it depend on every model
    zoo = importlib.import_module(_ZOO_MODULE)
    # Called by a model module registering itself, the zoo is still being imported: not loaded yet
    # (should that import fail, the next lookup must try again, not see half a zoo).
    if not getattr(zoo.__spec__, "_initializing", False):
        _zoo_loaded = True


def register_model(name: str, family: str, config: ModelConfig):
    """Decorator: register `fn(pretrained=False, **kwargs) -> nn.Module` under `name`."""
    load_zoo()  # a name taken by the zoo stays taken, as when the zoo was imported with resfam
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, family, fn, config)
        return fn

    return wrap


def closest_names(name: str, n: int = 3) -> list[str]:
    load_zoo()
    return difflib.get_close_matches(name, list(_REGISTRY), n=n, cutoff=0.5)


def get_model_entry(name: str) -> ModelEntry:
    load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(name, closest_names(name)) from None


def get_model_config(name: str) -> ModelConfig:
    return get_model_entry(name).config


def is_model(name: str) -> bool:
    load_zoo()
    return name in _REGISTRY


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered model names matching a shell-style pattern (and family), sorted."""
    load_zoo()
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern) and (family is None or e.family == family)
    )


def create_model(name: str, pretrained: bool = False, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build a registered model; with `pretrained=True` its published weights are loaded.

    With a `num_classes` other than the pretrained 1000, the backbone is loaded and the classifier
    is a new, freshly initialised head (fine-tuning).
    """
    entry = get_model_entry(name)
    model = entry.builder(num_classes=num_classes, **kwargs)
    model.default_config = entry.config
    model.model_name = name
    if pretrained:
        from .hub import load_pretrained

        load_pretrained(model, entry.config, name)
    return model
