"""resfam: the ResNet family of image classifiers, with model cards verified against the code.

The names below are imported on first use (PEP 562), not with the package: the card engine and the
MkDocs plugin live in `resfam.cards` and must not pay for importing torch and the whole zoo. The
registry loads the zoo itself on the first lookup, so `resfam.create_model(...)` works as before.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> the submodule that defines it
_LAZY = {
    "ModelConfig": "config",
    "default_config": "config",
    "UnknownModelError": "registry",
    "create_model": "registry",
    "get_model_config": "registry",
    "get_model_entry": "registry",
    "is_model": "registry",
    "list_models": "registry",
    "register_model": "registry",
    "PretrainedLoadError": "hub",
    "imagenet_labels": "labels",
}
_SUBMODULES = ("cards", "config", "hub", "labels", "models", "registry")

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from .config import ModelConfig, default_config
    from .hub import PretrainedLoadError
    from .labels import imagenet_labels
    from .registry import (
        UnknownModelError,
        create_model,
        get_model_config,
        get_model_entry,
        is_model,
        list_models,
        register_model,
    )

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _SUBMODULES)
