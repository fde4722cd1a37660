"""What the code says about the models the cards name: registry facts and measurements, from the
measurement cache where it holds them, else from the measuring workers (`pool`), started only then.

    with ZooMeasurer(cache_dir=...) as zoo:
        registry = zoo.registry()                    # {model ID: RegisteredModel}
        measured = zoo.measure({ID: registry[ID]}, {ID: {224}})   # {model ID: MeasuredModel}

`verify` compares what these say with the cards; `resfam-cards new` writes them into a new card. The
pipeline around it is described in docs/architecture.md.
"""
from __future__ import annotations

import functools
import importlib.machinery
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from .cache import MEASUREMENT_CODE, PACKAGE_DIR, MeasurementCache, SourceTree
from .fields import DEFAULT_IMAGE_SIZE, FIELDS, IDENTITY, IMAGE_SIZE_FIELD, Origin, code_fields
from .findings import CardError, Finding
from .limits import Limits
from .pool import MeasureJob, StillWorking, WorkerError, WorkerPool
from .vocabulary import ClassTag
from .zoos import DEFAULT_ZOO, zoo_package

ProgressCallback = Callable[["Progress | StillWorking"], None]


@dataclass(frozen=True)
class Progress:
    """One model measured (or failed): what a progress line says."""

    done: int
    total: int
    model_id: str
    image_sizes: tuple[int, ...]
    seconds: float
    error: str | None = None

    def __str__(self) -> str:
        sizes = ", ".join(map(str, self.image_sizes))
        outcome = f"failed: {self.error}" if self.error else f"{self.seconds:.1f} s"
        return f"measured {self.done}/{self.total}: {self.model_id} ({sizes} px) {outcome}"


@dataclass(frozen=True)
class RegisteredModel:
    """What the zoo says about a model ID (as a worker read it from the code on disk); None for a fact
    the zoo does not give (zoos.Zoo): the fields that need it are not checked with this zoo."""

    model_id: str
    family: str | None
    config: Mapping[str, Any] | None
    sources: tuple[str, ...]  # the source files that define it, relative to the zoo's package
    defined_in: str | None = None  # the module that registers it, relative to the package
    defined_at: int | None = None  # the line of that module that registers it
    package: str = "resfam"  # the zoo's package: `Code:` paths start with it
    code_url: str | None = None  # `Code:` as a URL: a template of {path}, {line}, {version}
    version: str = ""  # of the zoo's package, for `code_url`

    @property
    def image_size(self) -> int:
        """The default config's image size (FLOPs are counted there), 224 when the zoo gives none."""
        return int((self.config or {}).get("image_size", DEFAULT_IMAGE_SIZE))

    @property
    def code(self) -> str | None:
        """Where the model is registered, as `Code:` names it: the file relative to the folder holding
        the zoo's package (resfam/models/resnet.py), or the URL the `code_url` template makes of it."""
        if not self.defined_in:
            return None
        path = f"{self.package}/{self.defined_in}"
        if self.code_url:
            return self.code_url.format(path=path, line=self.defined_at, version=self.version)
        return path

    @functools.cached_property
    def config_values(self) -> Mapping[str, Any]:
        """The fields the default config and registration give, as a card writes them (those the zoo
        gives no fact for are left out); worked out once, when the registry is read."""
        values = {}
        for card_field in code_fields():
            source, key = card_field.measured_from
            value = (self.config or {}).get(key) if source == Origin.CONFIG else \
                getattr(self, key) if source == Origin.REGISTRY else None
            if value is not None:
                values[card_field.name] = card_field.kind.from_code(value)
        return MappingProxyType(values)


@dataclass(frozen=True)
class MeasuredModel:
    """Everything measured about one model: its registered config and the worker's measurements by image
    size (figures, FLOPs and activations, the stage layout of `measure.stage_layout`). `by_size` is empty
    when the model could not be measured (`error` says why)."""

    registered: RegisteredModel
    by_size: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # the worker's measurements
    error: str | None = None

    def values(self, image_size: int) -> dict[str, Any]:
        """Every field as a card writes it, per-image-size figures at `image_size` (when measured there)."""
        values: dict[str, Any] = {IDENTITY.name: self.registered.model_id}
        first = self.by_size[min(self.by_size)] if self.by_size else None
        for card_field in code_fields():
            source, key = card_field.measured_from
            measurement = self.by_size.get(image_size) if card_field.per_image_size else first
            if source == Origin.MEASUREMENT and measurement is not None and measurement[key] is not None:
                values[card_field.name] = measurement[key]
        return {**values, **self.registered.config_values}

    def unexpected_uncounted_ops(self, image_size: int) -> Mapping[str, int]:
        return self.by_size[image_size]["unexpected_uncounted_ops"] if image_size in self.by_size else {}

    def template_values(self) -> dict[str, Any]:
        """What a card template reads as `models.ID` (the names of render.py's docstring), at the
        registered image size: the same figures as the card's table (the fields the table cites, by the
        key of their measured value), and the stage layout."""
        values = self.values(self.registered.image_size)
        layout = self.by_size[self.registered.image_size]["layout"]
        stages = layout["stages"]
        cited = {card_field.measured_from[1]: values.get(card_field.name) for card_field in FIELDS if card_field.cited}
        return {
            **cited,
            IMAGE_SIZE_FIELD.measured_from[1]: self.registered.image_size,  # the default when the zoo gives none
            "blocks": [stage["blocks"] for stage in stages],
            "block": stages[0]["block"] if stages else "",
            "widths": [stage["width"] for stage in stages],
            "inner_widths": [stage["inner_width"] for stage in stages],
            "stem_widths": list(layout["stem_widths"]),
        }


class FollowUp(Protocol):
    """Work that waits for models to be measured (verify.py's card pages): `ready` is given every model
    measured so far and returns the jobs that can start now (`pool.WorkerPool.measure`'s), `on_result`
    takes the reply to one of them and may return more."""

    def ready(self, measured: Mapping[str, MeasuredModel]) -> list[Any]: ...

    def on_result(self, job: Any, reply: dict[str, Any]) -> list[Any]: ...


@dataclass
class RunStats:
    """What a verification cost: models built by workers, figures served from the cache."""

    measured_models: int = 0
    measured_sizes: int = 0
    cached_sizes: int = 0
    workers_started: int = 0
    seconds: float = 0.0
    registry_from_cache: bool = False
    # {(model ID, image size): why the shape-only trace failed} for the figures counted on the CPU instead
    cpu_fallbacks: dict[tuple[str, int], str] = field(default_factory=dict)
    code: Any = None  # runner.CodeRuns: the Python blocks of the pages and how each ran


# ---------------------------------------------------------------------------------------------
# Measuring: the cache first, worker processes for the rest


class ZooMeasurer:
    """Registry facts and measurements of the models the cards name: from the cache where it holds them,
    else from worker processes, started only then. Every file's hash is read when this is made, before
    any worker starts: a result is cached only if the files it depends on were the same throughout."""

    def __init__(self, *, package_dir: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, progress: ProgressCallback | None = None,
                 max_workers: int | None = None, limits: Limits = Limits(), stats: RunStats | None = None,
                 zoo: str = DEFAULT_ZOO, project_dir: str | os.PathLike[str] | None = None,
                 code_url: str | None = None, vocabulary: Mapping[str, ClassTag] | None = None):
        self.package_dir = Path(package_dir).resolve() if package_dir is not None else PACKAGE_DIR
        self.zoo = zoo
        self.zoo_package = zoo_package_of(zoo)
        self.code_url = code_url
        self.vocabulary = dict(vocabulary or {})  # tags of classes the zoo owns, from the docs project
        self.sources = SourceTree(zoo_folder(zoo, project_dir, self.package_dir), self.package_dir)
        self.snapshot = self.sources.snapshot()
        self.code_snapshot = self.sources.code_digests()
        self.cache = MeasurementCache(cache_dir, self.sources, zoo=zoo, zoo_package=self.zoo_package)
        arguments = ("--zoo", zoo, *(("--project", os.path.abspath(project_dir)) if project_dir is not None else ()))
        self.pool = WorkerPool(self.package_dir, max_workers, limits, zoo=arguments)
        self.progress = progress
        self.stats = stats if stats is not None else RunStats()
        self._registry: dict[str, RegisteredModel] | None = None
        self._architecture_tags: dict[str, str] | None = None
        self._renamed: dict[str, str] = {}
        self._needs_cards = False  # the zoo's every_model_needs_a_card
        self._looked_in_cache = False

    def __enter__(self) -> ZooMeasurer:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        self.close(interrupted=exc_type is not None)

    def close(self, interrupted: bool = False) -> None:
        """End the workers; after an error or Ctrl-C, at once (a busy one is killed)."""
        self.pool.close(kill=interrupted)
        self.stats.workers_started = self.pool.started

    def start_early(self) -> None:
        """With no registry facts in the cache (a cold run, or a model file edited), a worker will be
        needed: start it now, so that it starts up (~2 s, docs/performance.md) while the cards are read. With no
        measurement in the cache either, every model will be measured: start every worker."""
        if self._cached_registry() is None:
            self.pool.start_early(self.pool.max_workers if self.cache.holds_no_measurement() else 1)

    def _cached_registry(self) -> dict[str, RegisteredModel] | None:
        """The registry facts the cache holds for the sources as they are (looked up once)."""
        if not self._looked_in_cache:
            self._looked_in_cache = True
            facts = self.cache.get_registry()
            self._registry, self._architecture_tags = self._registered_models(facts)
            self._renamed = _renamed(facts)
            self._needs_cards = self._registry is not None and facts["every_model_needs_a_card"]
            self.stats.registry_from_cache = self._registry is not None
        return self._registry

    def registry(self) -> dict[str, RegisteredModel]:
        """Every registered model ID (raises WorkerError when the zoo cannot be imported)."""
        if self._cached_registry() is None:
            reply = self.pool.registry(self.progress)
            facts = {"models": reply.get("models"), "architecture_tags": reply.get("architecture_tags"),
                     "renamed": reply.get("renamed") or {},
                     "every_model_needs_a_card": reply.get("every_model_needs_a_card")}
            self._registry, self._architecture_tags = self._registered_models(facts)
            self._renamed = _renamed(facts)
            if self._registry is None:
                raise WorkerError("the measuring worker sent malformed registry facts")
            self._needs_cards = facts["every_model_needs_a_card"]
            if self._unchanged(reply, reply["hashes"], every_file=True):
                self.cache.put_registry(facts, self.sources.model_sources())
        return self._registry

    def default_coverage(self) -> list[str]:
        """The coverage patterns when the settings give none: every model when the zoo says each needs a
        card (resfam), else none (a zoo of 1,000+ models: only the IDs the settings select)."""
        self.registry()
        return ["*"] if self._needs_cards else []

    def renamed(self) -> dict[str, str]:
        """{old ID: the name the zoo builds instead} (after `registry()`)."""
        return dict(self._renamed)

    def architecture_tags(self) -> dict[str, str]:
        """Every tag a card's Architecture list may name, with its definition (after `registry()`); a
        vocabulary file's tag that the zoo's classes define otherwise is a CardError."""
        tags = dict(self._architecture_tags or {})
        for name, entry in self.vocabulary.items():
            if tags.get(entry.tag, entry.definition) != entry.definition:
                raise CardError([Finding("error", "vocabulary", None, f"the tag {entry.tag!r} of {name} is defined "
                                         "differently by a class of the zoo", hint="use the zoo's definition")])
            tags[entry.tag] = entry.definition
        return tags

    def _with_vocabulary(self, measurement: Mapping[str, Any]) -> Mapping[str, Any]:
        """A measurement whose architecture tags include those the vocabulary file gives its classes."""
        extra = {self.vocabulary[name].tag for name in measurement.get("classes", ()) if name in self.vocabulary}
        if not extra:
            return measurement
        return {**measurement, "architecture": sorted({*measurement["architecture"], *extra})}

    def measure(self, models: Mapping[str, RegisteredModel], sizes: Mapping[str, set[int]],
                then: FollowUp | None = None) -> dict[str, MeasuredModel]:
        """Each model measured at each of its `sizes`: {model ID: MeasuredModel}. `then` is asked for
        more work for the same workers as the models get measured (a card's page once its models are)."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        errors: dict[str, str] = {}
        measured: dict[str, MeasuredModel] = {}
        jobs: list[Any] = []
        for model_id in models:
            missing = []
            for size in sorted(sizes[model_id]):
                cached = _valid_measurement(self.cache.get_measurement(model_id, {}, size), model_id, size)
                if cached is not None:
                    found[model_id, size] = cached
                else:
                    missing.append(size)
            if missing:
                jobs.append(MeasureJob(model_id, missing))
        self.stats.cached_sizes += len(found)
        total = len(jobs)
        # in the order of `models` (verify.py: card by card, so that each card's page is ready, and runs
        # beside the measuring of the next cards, as early as it can)

        def settle(model_id: str) -> None:
            registered = models[model_id]
            if model_id in errors:
                measured[model_id] = MeasuredModel(registered, error=errors[model_id])
            else:
                measured[model_id] = MeasuredModel(registered, {size: self._with_vocabulary(found[model_id, size])
                                                                for size in sizes[model_id]})

        def on_result(job: Any, reply: dict[str, Any]) -> list[Any]:
            if not isinstance(job, MeasureJob):
                return then.on_result(job, reply) if then is not None else []
            self.stats.measured_models += 1
            measurements = reply.get("measurements") if reply.get("op") == "measured" else None
            if measurements is None:
                errors[job.model_id] = reply.get("error", "the worker gave no answer")
            else:
                cacheable = self._unchanged(reply, reply["sources"])
                for measurement in measurements:
                    size = measurement["image_size"]
                    found[job.model_id, size] = measurement
                    self.stats.measured_sizes += 1
                    if cacheable:
                        self.cache.put_measurement(job.model_id, {}, size, measurement, reply["sources"],
                                                   reply.get("dependencies"))
            if self.progress is not None:
                self.progress(Progress(self.stats.measured_models, total, job.model_id,
                                       tuple(job.image_sizes), reply.get("seconds", 0.0), errors.get(job.model_id)))
            settle(job.model_id)
            return then.ready(measured) if then is not None else []

        waiting = {job.model_id for job in jobs}
        for model_id in models:
            if model_id not in waiting:
                settle(model_id)
        jobs += then.ready(measured) if then is not None else []
        if jobs:
            self.pool.measure(jobs, on_result, self.progress)

        for (model_id, size), measurement in found.items():
            if measurement.get("flops_fallback"):
                self.stats.cpu_fallbacks[model_id, size] = measurement["flops_fallback"]
        return {model_id: measured[model_id] for model_id in models}

    def _unchanged(self, reply: Mapping[str, Any], hashes: Mapping[str, str | None], every_file: bool = False) -> bool:
        """Whether a worker's result may be cached: the files it depends on (with `every_file`, all the
        model sources) and the measurement code have the hashes they had before any worker started,
        and the versions are those of the cache key."""
        code = reply.get("code") or {}
        if reply.get("versions") != self.cache.versions or set(code) != set(MEASUREMENT_CODE) \
                or any(self.code_snapshot.get(name) != digest for name, digest in code.items()):
            return False
        if every_file:
            expected = self.sources.model_sources()
            hashes = {name: digest for name, digest in hashes.items() if name in expected}
            return hashes == expected
        return all(digest is not None and self.snapshot.get(name) == digest for name, digest in hashes.items())


    def _registered_models(self, facts: Any) -> tuple[dict[str, RegisteredModel] | None, dict[str, str] | None]:
        return _registered_models(facts, self.zoo_package, self.code_url, self.cache.versions.get(self.zoo_package, ""))


def _renamed(facts: Any) -> dict[str, str]:
    renamed = facts.get("renamed") if isinstance(facts, dict) else None
    return {str(old): str(new) for old, new in renamed.items()} if isinstance(renamed, dict) else {}


def zoo_package_of(zoo: str) -> str:
    """The top-level package of the zoo SOURCE; CardError for a SOURCE of the wrong form."""
    try:
        return zoo_package(zoo)
    except ValueError as error:
        raise CardError([Finding("error", "zoo", None, str(error),
                                 hint="e.g. --zoo timm, or --zoo mypackage.zoo:ZOO (docs: Verified cards for "
                                      "your own zoo)")]) from None


def zoo_folder(zoo: str, project_dir: str | os.PathLike[str] | None, package_dir: Path = PACKAGE_DIR) -> Path:
    """The folder of the zoo's package, found as the worker will import it (the folder holding the
    engine's package `package_dir`, then the project folder, then the installed packages) without
    importing it; CardError when there is none."""
    package = zoo_package_of(zoo)
    search = [os.path.abspath(project_dir)] if project_dir is not None else []
    spec = importlib.machinery.PathFinder.find_spec(package, [str(package_dir.parent), *search, *sys.path])
    if spec is None or not spec.submodule_search_locations:
        raise CardError([Finding("error", "zoo", None, f"the zoo {zoo!r}: no package {package!r} in "
                                 f"{search[0] if search else 'the installed packages'} or the installed packages",
                                 hint="install it (for timm: pip install 'resfam[timm]'), or put the package in "
                                      "the project folder")])
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _registered_models(facts: Any, package: str = "resfam", code_url: str | None = None,
                       version: str = "") -> tuple[dict[str, RegisteredModel] | None, dict[str, str] | None]:
    """Registry facts as RegisteredModels and the architecture tags' vocabulary, or (None, None) when they
    are not well-formed (a foreign entry)."""
    if not isinstance(facts, dict) or not isinstance(facts.get("models"), dict) \
            or not isinstance(facts.get("architecture_tags"), dict) \
            or not isinstance(facts.get("every_model_needs_a_card"), bool):
        return None, None
    try:
        models = {name: RegisteredModel(name, fact["family"], fact["config"], tuple(fact["sources"]),
                                        fact.get("defined_in"), fact.get("defined_at"), package, code_url, version)
                  for name, fact in facts["models"].items()}
        for model in models.values():
            _ = model.config_values  # every config field is there and of the right kind
    except (KeyError, TypeError, ValueError):
        return None, None
    return models, {str(tag): str(definition) for tag, definition in facts["architecture_tags"].items()}


_MEASUREMENT_FIELDS = {"parameters": int, "flops": int, "activations": int, "file_size": int,
                       "image_size": int, "model_id": str, "unexpected_uncounted_ops": dict, "architecture": list,
                       "layout": dict}
_STAGE_FIELDS = {"blocks": int, "block": str, "width": int, "inner_width": int}


def _valid_measurement(value: Any, model_id: str, image_size: int) -> dict[str, Any] | None:
    """A cached measurement, if it has every field with the right type for this model and size."""
    if not isinstance(value, dict) or not _well_typed(value, _MEASUREMENT_FIELDS) \
            or not (value.get("layers") is None or _is_count(value.get("layers"))):
        return None
    if value["model_id"] != model_id or value["image_size"] != image_size:
        return None
    layout = value["layout"]
    stem_widths, stages = layout.get("stem_widths"), layout.get("stages")
    if not isinstance(stem_widths, list) or not all(_is_count(width) for width in stem_widths) \
            or not isinstance(stages, list) or not all(isinstance(stage, dict) and _well_typed(stage, _STAGE_FIELDS)
                                                       for stage in stages):
        return None
    return value


def _well_typed(value: dict[str, Any], fields: Mapping[str, type]) -> bool:
    return all(isinstance(value.get(name), kind) and not isinstance(value.get(name), bool)
               for name, kind in fields.items())


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
