"""The model registry: every model ID maps to a builder function and its default config.

A model ID is registered once, with the family it belongs to and the config the published weights
were trained for. Everything else (the docs build, the command line, users) resolves names here.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ModelConfig

if TYPE_CHECKING:  # only for annotations: the registry must not import torch before the zoo does
    import torch.nn as nn

# A family is any slug a model registers under: it names the card template, templates/models/<family>.md
FAMILY_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model; `defined_in` and `defined_at` are the file and line of the module code that
    registers it (past the helpers on the way to `register_model`, whose files are `via`)."""

    name: str
    family: str
    builder: Callable[..., nn.Module] = field(repr=False)
    config: ModelConfig
    defined_in: str | None = None
    defined_at: int | None = None
    via: tuple[str, ...] = ()


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
    if not isinstance(family, str) or not FAMILY_SLUG.fullmatch(family):
        raise ValueError(f"{_registering_line()}: model {name!r} registers under the family {family!r}, which "
                         "is not a slug; use lowercase letters, digits and single hyphens, e.g. 'wide-resnet' "
                         "(the family names its card template, templates/models/<family>.md)")

    defined_in, defined_at, via = _registration_site()

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"{_registering_line()}: model {name!r} is registered twice; every model ID "
                             "names one model: choose another ID")
        _REGISTRY[name] = ModelEntry(name, family, fn, config, defined_in, defined_at, via)
        return fn

    return wrap


def _registering_line() -> str:
    """file:line of the statement registering a model, for error messages: past resfam's own helpers
    (`register_resnet`) to the line of the model module, or the caller's line outside resfam."""
    frame = sys._getframe(2)  # register_model's caller
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    while frame.f_code.co_name != "<module>" and frame.f_back is not None \
            and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _registration_site() -> tuple[str | None, int | None, tuple[str, ...]]:
    """Where `register_model` is called from: the file and line of the module code on the call stack
    (a model module's line, also when a helper such as `register_resnet` calls it) and every file on
    the way there. The card engine's `Code:` check reads it (docs/architecture.md)."""
    frame = sys._getframe(2)  # register_model's caller
    files = []
    while frame is not None:
        files.append(os.path.abspath(frame.f_code.co_filename))
        if frame.f_code.co_name == "<module>":
            return files[-1], frame.f_lineno, tuple(dict.fromkeys(files))
        frame = frame.f_back
    return None, None, tuple(dict.fromkeys(files))


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
    is a new, freshly initialised head (fine-tuning). A pretrained model is built without the random
    initialisation of the weights its checkpoint replaces (only a new head is initialised): the same
    model, built several times faster.
    """
    entry = get_model_entry(name)
    if not pretrained:
        model = entry.builder(num_classes=num_classes, **kwargs)
    else:
        from .hub import initialise_new_head, load_pretrained, no_weight_init

        with no_weight_init():
            model = entry.builder(num_classes=num_classes, **kwargs)
        load_pretrained(model, entry.config, name)
        if getattr(model, "num_classes", num_classes) != entry.config.num_classes:
            initialise_new_head(model, entry.config)
    model.default_config = entry.config
    model.model_name = name
    return model
