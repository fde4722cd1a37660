"""Zoos: where the models that cards name come from, and what a zoo can say about each.

A zoo is named by a SOURCE string (`resfam-cards --zoo SOURCE`, the plugin's `zoo:` setting):

    resfam                      resfam's own models (the default)
    timm                        the models of timm (`pip install 'resfam[timm]'`)
    package.module:attribute    an object of your own package that implements the interface below

The measuring worker loads it (`load_zoo`) and asks it, per model ID, for the facts the card fields
need. The interface (every method but the first two may be left out, or return None: the fields that
need that fact are then "not checked with this zoo", on the page and in models.json):

    package                     the import name of the package whose files define the models: its
                                files are hashed for the cache and `Code:` paths start with it
    list_models() -> [ID]       every model ID
    create_model(ID)            the model, without pretrained weights, with its default classifier
    default_config(ID)          {"image_size": 224, "crop_pct": 0.875, "interpolation": "bicubic",
                                 "url": "https://..."}: what the published weights were trained for
                                (any key left out is not checked)
    defined_at(ID)              (file, line) of the code that defines or registers the model
    family(ID)                  a slug naming the card template the model belongs on
    nominal_depth(model)        the depth a model's name gives (resnet50: 50): the card's Layers
    source_files(ID)            the files the model's definition depends on, besides `defined_at`'s
                                (the worker adds what the model imports while it is built)
    renamed_models()            {old ID: the name the zoo builds instead}: a card that writes an old
                                name is told which to write

`Zoo` is the base class with those defaults; `ResfamZoo` and `TimmZoo` are two implementations. The
engine has no branch on which zoo it runs: what a zoo gives is what it checks. docs/architecture.md
describes the pipeline. This module runs in the measuring worker only (it imports the zoo, and torch).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import types
from collections.abc import Iterable
from typing import Any

DEFAULT_ZOO = "resfam"


class Zoo:
    """The interface a zoo implements, with "not known" for every optional fact."""

    package: str = ""

    def list_models(self) -> list[str]:
        raise NotImplementedError

    def create_model(self, model_id: str) -> Any:
        raise NotImplementedError

    def default_config(self, model_id: str) -> dict[str, Any] | None:
        return None

    def defined_at(self, model_id: str) -> tuple[str, int] | None:
        return None

    def family(self, model_id: str) -> str | None:
        return None

    def nominal_depth(self, model: Any) -> int | None:
        return None

    def source_files(self, model_id: str) -> Iterable[str]:
        return ()

    def renamed_models(self) -> dict[str, str] | None:
        return None


class ResfamZoo(Zoo):
    """resfam's registry: every fact of the interface."""

    package = "resfam"

    def __init__(self) -> None:
        from resfam import registry

        registry.load_zoo()
        self.registry = registry

    def list_models(self) -> list[str]:
        return self.registry.list_models()

    def create_model(self, model_id: str) -> Any:
        return self.registry.create_model(model_id)

    def default_config(self, model_id: str) -> dict[str, Any]:
        config = self.registry.get_model_config(model_id)
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in vars(config).items()}
        return {**values, "image_size": config.input_size[-1]}

    def defined_at(self, model_id: str) -> tuple[str, int] | None:
        entry = self.registry.get_model_entry(model_id)
        return (entry.defined_in, entry.defined_at) if entry.defined_in else None

    def family(self, model_id: str) -> str:
        return self.registry.get_model_entry(model_id).family

    def nominal_depth(self, model: Any) -> int:
        return int(model.nominal_depth)

    def source_files(self, model_id: str) -> Iterable[str]:
        """The files on the way to `register_model` and those of the modules its builder refers to."""
        entry = self.registry.get_model_entry(model_id)
        return [*entry.via, *files_of_modules(referenced_modules(entry.builder))]


class TimmZoo(Zoo):
    """timm's registry: IDs, models, default configs, the line that registers each model and its module
    (the family, as a slug). timm states no nominal depth: Layers is not checked."""

    package = "timm"

    def __init__(self) -> None:
        import timm
        from timm.models import _registry

        self.timm = timm
        self.registry = _registry

    def list_models(self) -> list[str]:
        return list(self.timm.list_models())

    def create_model(self, model_id: str) -> Any:
        return self.timm.create_model(model_id, pretrained=False)

    def default_config(self, model_id: str) -> dict[str, Any] | None:
        config = self.registry.get_pretrained_cfg(model_id, allow_unregistered=False)
        if config is None:
            return None
        values: dict[str, Any] = {"image_size": int(config.input_size[-1]), "crop_pct": float(config.crop_pct),
                                  "interpolation": config.interpolation}
        # where timm loads the default weights from: the Hub repository when there is one, else the URL
        if config.hf_hub_id:
            values["url"] = f"https://huggingface.co/{config.hf_hub_id}"
        elif config.url:
            values["url"] = config.url
        return values

    def defined_at(self, model_id: str) -> tuple[str, int] | None:
        function = inspect.unwrap(self.registry.model_entrypoint(model_id))
        return os.path.abspath(function.__code__.co_filename), function.__code__.co_firstlineno

    def family(self, model_id: str) -> str:
        """The timm module that registers the model, as a slug (vision_transformer: vision-transformer)."""
        return self.registry.model_entrypoint(model_id).__module__.rsplit(".", 1)[-1].replace("_", "-")

    def source_files(self, model_id: str) -> Iterable[str]:
        return files_of_modules(referenced_modules(self.registry.model_entrypoint(model_id)))

    def renamed_models(self) -> dict[str, str]:
        """timm's deprecated names and what timm builds for each (a name with a weights tag)."""
        return {old: new for old, new in self.registry._deprecated_models.items() if new}


_BUILT_IN = {"resfam": ResfamZoo, "timm": TimmZoo}


def load_zoo(source: str) -> Zoo:
    """The zoo SOURCE names. Raises ValueError for a SOURCE of the wrong form, ImportError (or what the
    zoo raises) when it cannot be loaded."""
    if source in _BUILT_IN:
        return _BUILT_IN[source]()
    module_name, attribute = split_source(source)
    zoo = getattr(importlib.import_module(module_name), attribute, None)
    if zoo is None:
        raise ImportError(f"the module {module_name} has no attribute {attribute!r} (the zoo {source!r})")
    if not callable(getattr(zoo, "list_models", None)) or not callable(getattr(zoo, "create_model", None)):
        raise TypeError(f"{source} is not a zoo: it needs list_models() and create_model(ID) "
                        "(the interface: resfam.cards.zoos.Zoo)")
    return zoo


# How a user lists a zoo's model IDs, for hints
_LISTING = {"resfam": "python -m resfam", "timm": "python -c 'import timm; print(timm.list_models())'"}


def listing_hint(source: str) -> str:
    return _LISTING.get(source, f"{source.replace(':', '.')}.list_models()")


# How a zoo's package builds a model, for the note of a card page (`package` from the measured versions)
_BUILT_AS = {"resfam": "`resfam.create_model(ID)`", "timm": "`timm.create_model(ID)`"}


def built_as(package: str) -> str:
    return _BUILT_AS.get(package, f"the {package} zoo's `create_model(ID)`")


def split_source(source: str) -> tuple[str, str]:
    """('package.module', 'attribute') of a `package.module:attribute` SOURCE; ValueError otherwise."""
    module_name, _, attribute = source.partition(":")
    if not module_name or not attribute or not all(part.isidentifier() for part in [*module_name.split("."),
                                                                                    attribute]):
        raise ValueError(f"zoo {source!r}: write resfam, timm or package.module:attribute")
    return module_name, attribute


def zoo_package(source: str) -> str:
    """The top-level package a SOURCE's models come from (what the parent hashes and versions), without
    importing anything."""
    return source if source in _BUILT_IN else split_source(source)[0].split(".")[0]


def fact(zoo: Any, name: str, *args: Any) -> Any:
    """`zoo.name(*args)`, or None when the zoo does not implement it: the fact is not known."""
    method = getattr(zoo, name, None)
    return method(*args) if callable(method) else None


# ---------------------------------------------------------------------------------------------
# What a model's definition refers to


def files_of_modules(module_names: Iterable[str]) -> list[str]:
    """The source files of the loaded modules named."""
    files = []
    for name in module_names:
        filename = getattr(sys.modules.get(name), "__file__", None)
        if filename:
            files.append(os.path.abspath(filename))
    return files


def referenced_modules(root: Any, depth: int = 6) -> set[str]:
    """Names of the modules the objects reachable from `root` are defined in: a function's own module
    and what its closure, defaults and `functools.partial` arguments hold (classes, functions, and
    the values inside dicts, lists and tuples), a few levels deep."""
    found: set[str] = set()
    seen: set[int] = set()

    def visit(obj: Any, level: int) -> None:
        if level > depth or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, type):
            found.update(base.__module__ for base in obj.__mro__)
        elif isinstance(obj, types.FunctionType):
            found.add(obj.__module__)
            cells = [cell.cell_contents for cell in obj.__closure__ or () if _cell_is_set(cell)]
            for inner in [*cells, *(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values(),
                          getattr(obj, "__wrapped__", None)]:
                visit(inner, level + 1)
        elif isinstance(obj, functools.partial):
            for inner in [obj.func, *obj.args, *obj.keywords.values()]:
                visit(inner, level + 1)
        elif isinstance(obj, types.MethodType):
            visit(obj.__func__, level + 1)
        elif isinstance(obj, dict):
            for inner in [*obj.keys(), *obj.values()]:
                visit(inner, level + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for inner in obj:
                visit(inner, level + 1)
        elif isinstance(obj, types.ModuleType):
            found.add(obj.__name__)
        elif obj is not None:
            found.add(type(obj).__module__)

    visit(root, 0)
    return found


def _cell_is_set(cell: types.CellType) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True
