"""resfam: the ResNet family of image classifiers, with model cards verified against the code."""
from . import models  # noqa: F401  (registers the zoo)
from .hub import PretrainedLoadError
from .registry import (
    ModelConfig,
    UnknownModelError,
    create_model,
    get_model_config,
    get_model_entry,
    is_model,
    list_models,
    register_model,
)

__version__ = "0.1.0"

__all__ = [
    "ModelConfig",
    "PretrainedLoadError",
    "UnknownModelError",
    "create_model",
    "get_model_config",
    "get_model_entry",
    "is_model",
    "list_models",
    "register_model",
]
