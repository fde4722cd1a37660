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
    every_model_needs_a_card    an attribute: True asks a full verification for a card of every
                                registered model (coverage "*", resfam); left out or False, only of
                                the IDs the `coverage` setting selects (none by default: timm's 1,000+)
    model_of_checkpoint(WHERE)  the model whose published weights are at WHERE (a URL, a Hub repository)
    stand_in_downloads(FOLDER)  a context manager in which the zoo's download of a checkpoint writes a
                                stand-in of the model's own layout instead (`write_stand_in`, into
                                FOLDER or where the download would land) and any other is refused:
                                what a card's code blocks run inside (cards/runner.py); by default
                                nothing is intercepted

`Zoo` is the base class with those defaults; `ResfamZoo` and `TimmZoo` are two implementations. The
engine has no branch on which zoo it runs: what a zoo gives is what it checks. docs/architecture.md
describes the pipeline. This module runs in the measuring worker only (it imports the zoo, and torch).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import math
import os
import sys
import tempfile
import types
from collections.abc import Callable, Iterable, Iterator
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

    every_model_needs_a_card = False

    def model_of_checkpoint(self, location: str) -> str | None:
        return None

    def stand_in_downloads(self, folder: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class ResfamZoo(Zoo):
    """resfam's registry: every fact of the interface. Its checkpoints are downloaded by torch.hub's
    `download_url_to_file`, which `resfam.hub` reaches through `torch.hub.load_state_dict_from_url`."""

    package = "resfam"
    every_model_needs_a_card = True

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

    def model_of_checkpoint(self, location: str) -> str | None:
        """The model whose registered weights are at the URL `location`, or None."""
        return next((model_id for model_id in self.list_models()
                     if self.registry.get_model_entry(model_id).config.url == location), None)

    def stand_in_downloads(self, folder: str) -> contextlib.AbstractContextManager[None]:
        import torch.hub

        return replaced((torch.hub, "download_url_to_file", url_stand_in(self)))


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

    def model_of_checkpoint(self, location: str) -> str | None:
        """The model whose pretrained weights (any tag's) timm loads from `location`: a Hugging Face
        Hub repository (`timm/convnext_atto.d2_in1k`) or a URL."""
        for config in self.registry._model_pretrained_cfgs.values():
            if location in ((config.hf_hub_id or "").split("@")[0], config.url):
                return config.architecture
        return None

    def stand_in_downloads(self, folder: str) -> contextlib.AbstractContextManager[None]:
        """timm downloads weights with `hf_hub_download` (as timm/models/_hub.py imports it: the file
        name timm asks for says the format, safetensors or a pickled state_dict), else with torch.hub's
        `download_url_to_file` (also as _hub.py imports it); timm's own loading code then reads the file."""
        import torch.hub
        from timm.models import _hub

        def from_hub(repo_id: str, filename: str, *args: Any, cache_dir: str | None = None, **kwargs: Any) -> str:
            model_id = self.model_of_checkpoint(repo_id)
            if model_id is None or not filename.endswith((".safetensors", ".bin", ".pth", ".pth.tar")):
                raise OSError(f"downloads are refused while a card's code runs in the build: {repo_id}/{filename}")
            path = os.path.join(cache_dir or os.path.join(folder, "huggingface"), *repo_id.split("/"), filename)
            write_stand_in(build_bare(self, model_id), path)
            return path

        from_url = url_stand_in(self)
        return replaced((_hub, "hf_hub_download", from_hub), (_hub, "download_url_to_file", from_url),
                        (torch.hub, "download_url_to_file", from_url))


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


def loaded_as(package: str, model_id: str) -> str:
    """How a reader loads the model with its weights, where the zoo's API for it is known (resfam's and
    timm's, whose snippets the build runs); else how the zoo builds it, nothing more."""
    if package in _BUILT_AS:
        return f'`{package}.create_model("{model_id}", pretrained=True)`'
    return f"the {package} zoo's `create_model(\"{model_id}\")`"


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
# Stand-in checkpoints: what a card's code loads in the build instead of the published weights


def build_bare(zoo: Any, model_id: str) -> Any:
    """The zoo's model, built without weight initialisation (the stand-in fills every tensor)."""
    from .measure import build_for_counting

    return build_for_counting(model_id, create=zoo.create_model)


def write_stand_in(model: Any, destination: str) -> None:
    """A checkpoint of `model`'s own layout at `destination` (atomically): its state_dict, every
    floating tensor filled from one seeded draw of standard normal noise, scaled to its fan-in, so that
    its outputs are finite and fixed; in safetensors format when the file name ends in .safetensors,
    else saved by `torch.save`.

    The tensors share one draw, as long as the largest of them, rather than each drawing its own:
    a copy costs a fifth of a draw (resnext50_32x4d: 0.12 CPU s of drawing against 0.025 s)."""
    import torch

    state = model.state_dict()
    weights = {key: tensor for key, tensor in state.items() if tensor.is_floating_point()}
    largest = max((tensor.numel() for tensor in weights.values()), default=0)
    noise = torch.empty(largest).normal_(generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for key in sorted(weights):
            tensor, leaf = weights[key], key.rsplit(".", 1)[-1]
            if leaf in ("running_mean", "bias"):
                tensor.zero_()
            elif leaf == "running_var" or tensor.dim() <= 1:  # and the norm layers' weights, and scalars
                tensor.fill_(1.0)
            else:
                scale = math.sqrt(1.0 / max(1, tensor[0].numel()))
                tensor.copy_(noise[:tensor.numel()].view(tensor.shape)).mul_(scale)
    folder = os.path.dirname(destination) or "."
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix="stand-in-", suffix=".pth", dir=folder)
    os.close(descriptor)
    try:
        if destination.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file({key: tensor.contiguous() for key, tensor in state.items()}, temporary)
        else:
            torch.save(state, temporary)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def url_stand_in(zoo: Any) -> Callable[..., None]:
    """A replacement of torch.hub's `download_url_to_file` that writes, for the URL of a model's weights,
    its stand-in where the file would land (torch.hub's hash check is for the published file: the
    stand-in is not it), and refuses any other URL."""

    def download_url_to_file(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        model_id = zoo.model_of_checkpoint(url)
        if model_id is None:
            raise OSError(f"downloads are refused while a card's code runs in the build: {url}")
        write_stand_in(build_bare(zoo, model_id), dst)

    return download_url_to_file


@contextlib.contextmanager
def replaced(*replacements: tuple[Any, str, Any]) -> Iterator[None]:
    """Each (owner, attribute, value) set inside the block, and put back on leaving."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    try:
        for owner, name, value in replacements:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(originals):
            setattr(owner, name, value)


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
