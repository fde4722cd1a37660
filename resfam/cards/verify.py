"""Verify card templates against the code: the engine behind `resfam-cards` and the MkDocs plugin.

    report = verify()                      # every templates/models/*.md
    print(format_report(report))           # resfam.cards.report
    report.exit_code                       # 0 clean, 1 drift, 2 bad input

For each card: parse it (`model_index.parse_card`), render it (`render.render_template`, to catch
template errors and to hand the Markdown to the site), resolve every model ID in the registry, measure
every model it names (`measure`, in worker processes, through the cache), compare every claimed figure
with its tolerance, and check the cards against each other; check the names each page gives the zoo
(`names`) and run the Python code of each page (`runner`, in the same workers, through the same cache)
as soon as the card's models are measured, while the workers measure the other cards' models
(`_CardPages`). Every outcome is a `Finding`.

Measuring happens in fresh worker processes (`pool.WorkerPool`), so a long-running process sees the
model files as they are now; this process never imports the models to verify. Each (model, image
size) is measured once per run however many cards name it, and not at all when the cache holds it:
a warm run reads the cache and starts no worker. As many workers measure as the usable cores and the
available memory allow (`pool.default_workers`); `max_workers` sets it. Every step of measuring a
model is bounded in time and every worker in memory (`limits.Limits`): a model over a limit, or one
that crashes its worker, is an error on every card that names it, and the other models are measured.
"""
from __future__ import annotations

import difflib
import fnmatch
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import cache_subfolder, default_cache_dir
from .claims import Card, Claim, ModelClaims
from .fields import (
    DEFAULT_IMAGE_SIZE,
    FIELDS,
    IDENTITY,
    IMAGE_SIZE_FIELD,
    TOLERANCE,
    Origin,
    default_tolerances,
    kind_of,
)
from .findings import CardError, Finding
from .kinds import Comparing, same_value
from .limits import Limits
from .model_index import parse_card
from .names import check_code_names, check_prose_names
from .pool import WorkerError
from .prose import literal_figures
from .render import card_context, cited_models, render_template
from .runner import CodeBlock, PageRuns, RunJob, page_blocks
from .unfinished import unfinished_findings
from .vocabulary import read_vocabulary
from .zoo import MeasuredModel, ProgressCallback, RegisteredModel, RunStats, ZooMeasurer
from .zoos import DEFAULT_ZOO, listing_hint

# Relative tolerances in percent, from the table of fields; the other verified fields take none.
DEFAULT_TOLERANCES: dict[str, float] = default_tolerances()
MEASURED_FIELDS = tuple(DEFAULT_TOLERANCES)  # the measured counts (the fields with a tolerance)
EXACT_FIELDS = (IDENTITY.name,) + tuple(field.name for field in FIELDS if field.verified and field.compare != TOLERANCE)


# ---------------------------------------------------------------------------------------------
# Results


class FindingsView:
    """The findings of a card or of a whole run, sorted by status."""

    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "error"]

    @property
    def drifts(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "drift"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "warning"]

    @property
    def unchecked(self) -> list[Finding]:
        """The fields the zoo gives no fact for ("not checked with this zoo")."""
        return [f for f in self.findings if f.status == "unchecked"]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.drifts


@dataclass
class CardResult(FindingsView):
    """One card: its findings, and what the site and `sync` need.

    card: the parsed card, None when it could not be parsed.
    measurements: {model Name: {card field: value}}: what the code says each model is, as the card
        would write it (FLOPs at the registered image size).
    markdown: the rendered template, None when it could not be rendered.
    models: {model Name: MeasuredModel} for the models that resolved.
    """

    path: str
    card: Card | None
    findings: list[Finding] = field(default_factory=list)
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    markdown: str | None = None
    models: dict[str, MeasuredModel] = field(default_factory=dict)
    cited: dict[str, int] = field(default_factory=dict)  # {model ID: line} named in the prose as models.ID
    # the template's `models`: {model ID: its template values (`MeasuredModel.template_values`)}
    template_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    code: list[tuple[CodeBlock, str]] = field(default_factory=list)  # its Python blocks and how each ran (runner.py)


@dataclass
class Report(FindingsView):
    """cards: each card's result; coverage: findings about the set of cards as a whole (a registered
    model on no card), made by a full run only."""

    cards: list[CardResult]
    stats: RunStats = field(default_factory=RunStats)
    tolerances: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    coverage: list[Finding] = field(default_factory=list)
    architecture_tags: dict[str, str] = field(default_factory=dict)  # the vocabulary, when the zoo loaded
    versions: dict[str, str] = field(default_factory=dict)  # what measured the figures: Python, torch, fvcore, resfam

    @property
    def findings(self) -> list[Finding]:
        return [finding for card in self.cards for finding in card.findings] + self.coverage


    @property
    def exit_code(self) -> int:
        """0 when every card matches the code, 1 when a figure drifts, 2 for bad input."""
        return 2 if self.errors else 1 if self.drifts else 0

    @property
    def strict_exit_code(self) -> int:
        """`exit_code`, with every warning failing too, as 1: what `verify --strict` returns, as
        `mkdocs build --strict` fails on the same warnings (as MkDocs's own --strict fails on its own)."""
        return self.exit_code or (1 if self.warnings else 0)


# ---------------------------------------------------------------------------------------------
# Entry point


def verify(paths: Iterable[str | os.PathLike[str]] | None = None, *,
           templates_dir: str | os.PathLike[str] = Path("templates"),
           tolerances: Mapping[str, float] | None = None,
           cache_dir: str | os.PathLike[str] | None = None,
           use_cache: bool = True,
           progress: ProgressCallback | None = None,
           package_dir: str | os.PathLike[str] | None = None,
           max_workers: int | None = None,
           limits: Limits = Limits(),
           without_card: Iterable[str] | None = None,
           zoo: str = DEFAULT_ZOO,
           code_url: str | None = None,
           coverage: Iterable[str] | None = None,
           vocabulary: str | os.PathLike[str] | None = None) -> Report:
    """Verify the card templates `paths` (default: every `templates_dir/models/*.md`).

    without_card: with a list (the command line and the build give one, empty or not), a full run (no
        `paths`) also checks coverage: every registered model is on a card, except the model IDs
        listed (left without a card on purpose). None: no coverage check (a test's partial folder).

    tolerances: {field: percent} overriding DEFAULT_TOLERANCES (Parameters, FLOPs, Activations, File Size,
        Layers).
    cache_dir: where measurements are cached (default `.resfam-cache/` next to `templates_dir`);
        use_cache=False measures everything and leaves the cache alone.
    progress: called with a `Progress` after each model measured, and with a `StillWorking` at least
        every `pool.PROGRESS_SECONDS` while a worker is busy.
    package_dir: the resfam package whose models are measured (default: this one; the tests point it
        at an edited copy).
    max_workers: measuring processes at most (default: `pool.default_workers`).
    limits: the time each step of measuring a model may take, the memory each worker may hold.
    zoo: the zoo SOURCE the models come from (`zoos`: resfam, timm, package.module:attribute; a package
        of the project folder, the one holding `templates_dir`, is found there).
    code_url: `Code:` as a URL, a template of {path}, {line} and {version} (a zoo outside the repository).
    coverage: shell-style patterns: a full run's coverage check asks a card only of the IDs they match;
        None: the zoo's default (every model of a zoo whose `every_model_needs_a_card` is true, resfam's;
        none of another).
    vocabulary: a file of architecture tags for classes the zoo owns (`vocabulary.py`).

    Raises CardError for bad arguments (an unknown or negative tolerance, no card templates found);
    everything about the cards themselves is in the report.
    """
    started = time.perf_counter()
    tolerances = resolve_tolerances(tolerances)
    templates_dir = Path(templates_dir)
    card_paths = _card_paths(paths, templates_dir)
    stats = RunStats()
    project_dir = Path(os.path.abspath(templates_dir)).parent
    with ZooMeasurer(package_dir=package_dir, cache_dir=_cache_dir(cache_dir, templates_dir, use_cache),
                     progress=progress, max_workers=max_workers, limits=limits, stats=stats, zoo=zoo,
                     project_dir=project_dir, code_url=code_url,
                     vocabulary=read_vocabulary(vocabulary)) as measurer:
        measurer.start_early()
        results = [_read_card(path, templates_dir) for path in card_paths]
        pages = _CardPages(results, card_paths, templates_dir, measurer, tolerances)
        _check_against_code(results, measurer, pages)
        pages.finish()
        coverage_findings = [] if paths or without_card is None else \
            _check_coverage(results, measurer, templates_dir, list(without_card), coverage)
        architecture_tags = measurer.architecture_tags()
        versions = dict(measurer.cache.versions)
    _check_across_cards(results)
    for result in results:
        result.findings.sort(key=lambda f: (f.path != result.path, f.line or 0))
    stats.seconds = time.perf_counter() - started
    return Report(results, stats, tolerances, coverage_findings, architecture_tags, versions)


def resolve_tolerances(overrides: Mapping[str, Any] | None) -> dict[str, float]:
    """DEFAULT_TOLERANCES with `overrides` applied; CardError listing every bad setting."""
    tolerances = dict(DEFAULT_TOLERANCES)
    problems = []
    settable = ", ".join(MEASURED_FIELDS)
    for name, value in (overrides or {}).items():
        if name in EXACT_FIELDS:
            problems.append(f"{name} is compared exactly with the registered config; it takes no tolerance")
        elif name not in DEFAULT_TOLERANCES:
            close = difflib.get_close_matches(str(name), MEASURED_FIELDS, n=1)
            problems.append(f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"the tolerance of {name} must be a number of percent, got {value!r}")
        elif value < 0:
            problems.append(f"the tolerance of {name} must not be negative, got {value!r}")
        else:
            tolerances[name] = float(value)
    if problems:
        raise CardError([Finding("error", "tolerances", None, problem,
                                 hint=f"tolerances are percentages for: {settable}") for problem in problems])
    return tolerances


# ---------------------------------------------------------------------------------------------
# Reading the cards


def card_templates(templates_dir: str | os.PathLike[str]) -> list[Path]:
    """The card templates of a templates folder: `models/*.md`, sorted."""
    return sorted((Path(templates_dir) / "models").glob("*.md"))


def _card_paths(paths: Iterable[str | os.PathLike[str]] | None, templates_dir: Path) -> list[Path]:
    if paths:
        return [Path(path) for path in paths]
    found = card_templates(templates_dir)
    if not found:
        raise CardError([Finding("error", str(templates_dir / "models"), None, "no card templates found",
                                 hint="card templates are templates/models/<family>.md; run from the project "
                                      "folder or give the templates folder")])
    return found


def shown_path(path: str | os.PathLike[str]) -> str:
    """`path` relative to the working folder when it is inside it, else as given."""
    absolute = os.path.abspath(path)
    here = os.getcwd()
    if os.path.commonpath([absolute, here]) == here:
        return os.path.relpath(absolute, here)
    return os.fspath(path)


def templates_dir_for(path: Path, templates_dir: Path) -> Path:
    """The templates folder a card is rendered in: `templates_dir` when the card is inside it, else the
    folder holding the card's `models/` folder (a copy of the templates elsewhere)."""
    card = os.path.abspath(path)
    root = os.path.abspath(templates_dir)
    if os.path.commonpath([card, root]) == root:
        return templates_dir
    return path.parent.parent if path.parent.name == "models" else path.parent


def _read_card(path: Path, templates_dir: Path) -> CardResult:
    """Parse one card, and find the models its prose cites; every problem becomes a finding."""
    shown = shown_path(path)
    result = CardResult(shown, None)
    try:
        result.card = parse_card(shown)
    except CardError as error:
        result.findings += error.findings
        return result
    result.findings += result.card.warnings + unfinished_findings(result.card)
    result.cited = cited_models(result.card.text)
    return result


def _render_card(result: CardResult, path: Path, templates_dir: Path, measured: Mapping[str, MeasuredModel],
                 compiled_dir: Path | None = None) -> None:
    """Render a parsed card with the measured values of its models and of those its prose cites, and flag
    the figures its prose writes out instead of citing; every problem becomes a finding. compiled_dir:
    where the compiled templates are kept (`render_template`)."""
    if result.card is None:
        return
    wanted = [model.model_id for model in result.card.models] + list(result.cited)
    result.template_values = {model_id: measured[model_id].template_values() for model_id in wanted
                    if model_id in measured and measured[model_id].error is None}
    try:
        result.markdown = render_template(result.path, templates_dir_for(path, templates_dir),
                                          card_context(result.card, result.template_values), compiled_dir)
    except CardError as error:
        result.findings += error.findings
    result.findings += literal_figures(result.card, result.template_values)


class _CardPages:
    """What follows measuring, card by card, as soon as the models a card names and cites are measured
    (`ZooMeasurer.measure`'s follow-up), so that the page's code runs in the measuring workers while
    they measure the other cards' models: compare the card's figures, render it (the prose cites the
    same measurements as the tables), check the names it gives the zoo (`names.py`) and hand its Python
    blocks to the workers (`runner.py`). `finish` renders what measuring never reached (no zoo, a card
    that cannot be read) and records the code's outcomes."""

    def __init__(self, results: list[CardResult], card_paths: list[Path], templates_dir: Path, zoo: ZooMeasurer,
                 tolerances: dict[str, float]):
        self.results = results
        self.waiting = list(zip(card_paths, results, strict=False))
        self.templates_dir = templates_dir
        self.zoo = zoo
        self.tolerances = tolerances
        self.registry: dict[str, RegisteredModel] | None = None  # set when the zoo loads
        self.runs = PageRuns(zoo)
        cache = zoo.cache.directory
        self.compiled_dir = cache_subfolder(cache, "jinja-cards") if cache is not None else None

    def ready(self, measured: Mapping[str, MeasuredModel]) -> list[RunJob]:
        """The run jobs of the cards whose models (and cited models) are all in `measured`."""
        registry = self.registry or {}
        waiting, jobs = [], []
        for path, result in self.waiting:
            wanted = [] if result.card is None else \
                [model.model_id for model in result.card.models] + list(result.cited)
            if not all(model_id in measured for model_id in wanted if model_id in registry):
                waiting.append((path, result))
            elif (job := self._check(path, result, measured)) is not None:
                jobs.append(job)
        self.waiting = waiting
        return jobs

    def on_result(self, job: RunJob, reply: dict[str, Any]) -> list[RunJob]:
        return self.runs.on_result(job, reply)

    def _check(self, path: Path, result: CardResult, measured: Mapping[str, MeasuredModel]) -> RunJob | None:
        if result.card is not None and self.registry is not None:
            _compare_card(result, self.registry, measured, self.zoo, self.tolerances)
        _render_card(result, path, self.templates_dir, measured, self.compiled_dir)
        if result.markdown is None or self.registry is None:
            return None
        blocks = page_blocks(result.markdown, result.path, templates_dir_for(path, self.templates_dir))
        model_ids = sorted(self.registry)
        in_code = [] if result.errors else check_code_names(blocks, model_ids)
        result.findings += in_code + check_prose_names(result.card, model_ids, self.zoo.package_dir)
        if in_code or result.errors:  # not run: it would fail on what is already reported (an unknown model ID)
            self.runs.runs.states[result.path] = [(block, "not run" if block.run else "marked") for block in blocks]
            return None
        return self.runs.job(result.path, blocks) if blocks else None

    def finish(self) -> None:
        """Render the cards measuring did not reach; record how each page's code ran."""
        for path, result in self.waiting:
            _render_card(result, path, self.templates_dir, {}, self.compiled_dir)
        self.waiting = []
        runs = self.runs.runs
        for result in self.results:
            result.code = runs.states.get(result.path, [])
            result.findings += self.runs.findings.get(result.path, [])
        if self.registry is not None and any(result.markdown is not None for result in self.results):
            self.zoo.stats.code = runs


def claimed_image_size(model: ModelClaims) -> int:
    """The image size the card's FLOPs and Activations are counted at: its Image Size (already validated),
    else 224."""
    claim = model.claim(IMAGE_SIZE_FIELD.name)
    return int(claim.value) if claim is not None else DEFAULT_IMAGE_SIZE


# ---------------------------------------------------------------------------------------------
# Comparing with the code


def _check_against_code(results: list[CardResult], zoo: ZooMeasurer, pages: _CardPages) -> None:
    """Measure the models of the cards (and those their prose cites); `pages` compares, renders and runs
    each card as soon as its models are measured."""
    if all(result.card is None for result in results):
        return
    try:
        registry = zoo.registry()
    except WorkerError as error:
        for result in results:
            if result.card is not None and (result.card.models or result.cited):
                line = result.card.models[0].line if result.card.models else None
                result.findings.append(Finding(
                    "error", result.path, line, f"cannot load the {zoo.zoo} model zoo: {error}",
                    hint="fix the model code at the place named; nothing on this card could be checked"))
        return
    pages.registry = registry
    wanted: dict[str, set[int]] = {}  # in the order they are measured in
    # card by card, the cards with the fewest models first: pages get ready (and run, beside the measuring
    # of the next cards) as early as they can, and the last to wait is the page of the card with the most
    # models; within a card, the largest images first, so that the card's last job tends to be a short one
    cards = [result for result in results if result.card is not None]
    for result in sorted(cards, key=lambda result: len(result.card.models) + len(result.cited)):
        sizes: dict[str, set[int]] = {}  # of this card's models that no earlier card named
        for model in result.card.models:
            registered = registry.get(model.model_id)
            if registered is not None:
                (wanted if model.model_id in wanted else sizes).setdefault(model.model_id, set()).update(
                    {claimed_image_size(model), registered.image_size})
        for model_id in result.cited:
            if model_id in registry:
                (wanted if model_id in wanted else sizes).setdefault(model_id, set()).add(
                    registry[model_id].image_size)
        for model_id in sorted(sizes, key=lambda model_id: -max(sizes[model_id])):
            wanted[model_id] = sizes[model_id]
    zoo.measure({model_id: registry[model_id] for model_id in wanted}, wanted, then=pages)


def _compare_card(result: CardResult, registry: Mapping[str, RegisteredModel], measured: Mapping[str, MeasuredModel],
                  zoo: ZooMeasurer, tolerances: dict[str, float]) -> None:
    """Compare each model of a card with what was measured."""
    for model in result.card.models:
        registered = registry.get(model.model_id)
        if registered is None:
            result.findings.append(_unknown_id(result, model, registry, zoo.zoo, zoo.renamed()))
            continue
        found = measured[model.model_id]
        result.models[model.name] = found
        result.measurements[model.name] = found.values(registered.image_size)
        result.findings += _compare_model(result, model, found, tolerances, zoo.architecture_tags())


def _unknown_id(result: CardResult, model: ModelClaims, registry: Mapping[str, RegisteredModel],
                zoo: str, renamed: Mapping[str, str]) -> Finding:
    closest = difflib.get_close_matches(model.model_id, list(registry), n=3, cutoff=0.5)
    line = model.id.line if model.id is not None else model.line
    what = IDENTITY.name if model.id is not None else f"Name (the entry has no {IDENTITY.name})"
    new = renamed.get(model.model_id)
    if new is not None:  # the zoo resolves the old name to the model (and weights tag) it builds
        model_id, _, weights = new.partition(".")
        return Finding("error", result.path, line, f"{model.name}: {model.model_id!r} is an old name: the {zoo} "
                                                   f"zoo builds {new!r} for it",
                       hint=f"write {IDENTITY.name}: {model_id}"
                       + (f" (its weights tag: {weights})" if weights else ""),
                       model=model.name, field=IDENTITY.name, claimed=model.model_id, measured=model_id)
    hint = f"did you mean {', '.join(closest)}? " if closest else ""
    return Finding("error", result.path, line, f"{model.name}: unknown model {what} {model.model_id!r}",
                   hint=hint + f"the registered models are listed by: {listing_hint(zoo)}", model=model.name,
                   field=IDENTITY.name, claimed=model.model_id)


def _compare_model(result: CardResult, model: ModelClaims, measured: MeasuredModel,
                   tolerances: dict[str, float], architecture_tags: Mapping[str, str]) -> list[Finding]:
    path, name = result.path, model.name
    registered = measured.registered
    sync_hint = f"run: resfam-cards sync --write {path}"
    findings = []

    id_line = model.id.line if model.id is not None else model.line
    if registered.family is not None and registered.family != result.card.family:
        findings.append(Finding(
            "error", path, id_line,
            f"{name}: model {registered.model_id!r} is registered in family {registered.family!r}, not in "
            f"{result.card.family!r} (this card's family, from its file name)",
            hint=f"move the model to templates/models/{registered.family}.md", model=name, field=IDENTITY.name,
            claimed=registered.model_id, measured=registered.family))
    elif model.id is not None:
        findings.append(Finding("ok", path, id_line, f"{name} {IDENTITY.name}: {registered.model_id} is registered",
                                model=name, field=IDENTITY.name, claimed=model.id.value, measured=registered.model_id))

    if measured.error is not None:
        findings.append(Finding("error", path, id_line, f"{name}: could not be measured: {measured.error}",
                                hint="fix the model code at the place named, then verify again", model=name))
    size = claimed_image_size(model)
    values = measured.values(size) if measured.error is None else registered.config_values
    for card_field in FIELDS:
        claim = model.claim(card_field.name)
        if claim is None or not card_field.verified:
            continue
        if card_field.name not in values:
            if measured.error is None or card_field.measured_from[0] != Origin.MEASUREMENT:
                findings.append(_not_checked(path, name, card_field.name, claim))
            continue
        findings += card_field.compare.findings(Comparing(
            path, name, card_field, claim, values[card_field.name], sync_hint, tolerances.get(card_field.name),
            size if card_field.per_image_size else None, architecture_tags, registered))
        uncounted = measured.unexpected_uncounted_ops(size) if card_field.uncounted and measured.error is None else {}
        if uncounted:
            ops = ", ".join(f"{op} ({n}x)" for op, n in uncounted.items())
            findings.append(Finding(
                "warning", path, claim.line,
                f"{name} {card_field.name}: fvcore cannot count {ops}; the figure leaves them out",
                hint="check whether these operators do multiply-adds; fvcore's convention is the contract",
                model=name, field=card_field.name))
    return findings


def _not_checked(path: str, name: str, field_name: str, claim: Claim) -> Finding:
    """A field the zoo gives no fact for: neither a pass nor a drift."""
    return Finding("unchecked", path, claim.line, f"{name} {field_name}: {claim.value} is not checked with this zoo "
                                                  "(it gives no fact for it)",
                   hint="the facts each zoo gives are listed on the measurement page", model=name,
                   field=field_name, claimed=claim.value)


def _check_coverage(results: list[CardResult], zoo: ZooMeasurer, templates_dir: Path,
                    without_card: list[str], patterns: Iterable[str] | None) -> list[Finding]:
    """A registered model that `patterns` select, that no card names and that is not left out on
    purpose is a drift of the card its family's template would hold; an opt-out that names no
    registered model is an error."""
    if any(result.card is None for result in results):
        return []  # what an unreadable card lists is unknown; its error already fails the run
    try:
        registry = zoo.registry()
    except WorkerError:
        return []  # every card already says the zoo cannot be loaded
    patterns = list(patterns) if patterns is not None else zoo.default_coverage()
    on_cards = {model.model_id for result in results if result.card is not None for model in result.card.models}
    findings = []
    for model_id in without_card:
        if model_id not in registry:
            close = difflib.get_close_matches(model_id, list(registry), n=3, cutoff=0.5)
            findings.append(Finding("error", "without_card", None,
                                    f"{model_id!r} is left without a card, but no such model is registered",
                                    hint=(f"did you mean {', '.join(close)}? " if close else "")
                                    + f"list registered model IDs only ({listing_hint(zoo.zoo)} lists them)",
                                    model=model_id, field=IDENTITY.name))
        elif model_id in on_cards:
            findings.append(Finding("warning", "without_card", None,
                                    f"{model_id} is left without a card, yet a card lists it",
                                    hint="remove it from the list of models without a card", model=model_id))
    for model_id, registered in sorted(registry.items()):
        if model_id in on_cards or model_id in without_card \
                or not any(fnmatch.fnmatchcase(model_id, pattern) for pattern in patterns):
            continue
        family = registered.family or "FAMILY"
        card = shown_path(Path(templates_dir) / "models" / f"{family}.md")
        findings.append(Finding(
            "drift", card if registered.family else shown_path(Path(templates_dir) / "models"), None,
            f"{model_id} (family {family}) is registered but on no card" if registered.family else
            f"{model_id} is registered but on no card",
            hint=f"run: resfam-cards new {family} --model {model_id}   (it prints the entry, with "
                 f"measured figures, to paste into {card}); or list it among the models without a card "
                 "(--without-card, or the plugin's without_card setting)", model=model_id, field=IDENTITY.name))
    return findings


# ---------------------------------------------------------------------------------------------
# Checking the cards against each other


def _check_across_cards(results: list[CardResult]) -> None:
    entries = [(result, model) for result in results if result.card is not None for model in result.card.models]

    for checkpoint in (card_field for card_field in FIELDS if card_field.checkpoint):
        by_file: dict[str, list[tuple[CardResult, ModelClaims, Claim]]] = {}
        for result, model in entries:
            claim = model.claim(checkpoint.name)
            if claim is not None and isinstance(claim.value, str):
                by_file.setdefault(claim.value, []).append((result, model, claim))
        for url, claimants in by_file.items():
            if len({model.model_id for _, model, _ in claimants}) > 1:
                for result, model, claim in claimants:
                    others = ", ".join(f"{other.model_id} ({r.path}:{other_claim.line})"
                                       for r, other, other_claim in claimants if other.model_id != model.model_id)
                    result.findings.append(Finding(
                        "error", result.path, claim.line,
                        f"{model.name} {checkpoint.name}: the same weights file is also claimed by {others}",
                        hint="a checkpoint belongs to one model: check which model this URL is for",
                        model=model.name, field=checkpoint.name, claimed=url))

    by_id: dict[str, list[tuple[CardResult, ModelClaims]]] = {}
    for result, model in entries:
        by_id.setdefault(model.model_id, []).append((result, model))
    for model_id, claimants in by_id.items():
        for result, model in claimants:
            for other_result, other in claimants:
                if other is model:
                    continue
                for field_name, claim, other_claim in _shared_claims(model, other):
                    if not same_value(kind_of(field_name), claim.value, other_claim.value):
                        result.findings.append(Finding(
                            "error", result.path, claim.line,
                            f"{model.name} {field_name}: this entry says {claim.value}, but "
                            f"{other_result.path}:{other_claim.line} says {other_claim.value} for the same model "
                            f"{model_id!r}",
                            hint="one model, one set of figures: make the entries agree or keep one",
                            model=model.name, field=field_name, claimed=claim.value, measured=other_claim.value))


def _shared_claims(model: ModelClaims, other: ModelClaims) -> list[tuple[str, Claim, Claim]]:
    """(field, claim, other's claim) for every field both entries state."""
    mine, theirs = model.claims(), other.claims()
    return [(name, mine[name], theirs[name]) for name in mine if name in theirs]


def _cache_dir(cache_dir: str | os.PathLike[str] | None, templates_dir: Path, use_cache: bool) -> Path | None:
    if not use_cache:
        return None
    return Path(cache_dir) if cache_dir is not None else default_cache_dir(templates_dir)
