"""The verified cards as data: each model of a card with every figure it states or the engine measured,
what the engine said about each (the data layer that the pages, the catalog and the Hub export read).

`CardPage` is what the site needs to know about one card (its claims, findings and measurements);
`model_figures` brings them together per model (`ModelFigures`, one `Figure` per field), each figure
with its status: verified, measured, not checked, reported, drift or error. Nothing here measures,
compares or renders.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .claims import Card, ModelClaims
from .fields import BY_NAME, DEFAULT_IMAGE_SIZE, FIELDS, IDENTITY, IMAGE_SIZE_FIELD, REPORTED, fields_where, kind_of
from .findings import Finding
from .model_index import family_of
from .runner import CodeBlock

if TYPE_CHECKING:
    from .verify import CardResult

# The rows a card table shows, in the order of the table of fields: card field -> (row label, anchor
# on the measurement page, how the build measured it). The sentences are the tooltips of the marks.
VERIFIED_FIELDS: dict[str, tuple[str, str, str]] = {
    field.name: (field.label, field.anchor, field.how) for field in FIELDS if field.verified and field.label}
REPORTED_FIELDS = {field.name: field.label for field in fields_where(compare=REPORTED)}
_ROW_ORDER = tuple(field.name for field in FIELDS if field.label)

PROBLEM_STATUSES = ("drift", "error")
NOT_CHECKED = "not checked"  # a figure's status when the zoo gives no fact to check it with


@dataclass
class CardPage:
    """What the site needs to know about one card.

    src_uri: where the page goes in the site ('models/resnet-d.md').
    path: the template, as the findings name it.
    family: the family slug (the template's file stem), used when the card could not be parsed.
    card: the parsed card, or None when it could not be read.
    markdown: the rendered template, or None when it could not be rendered.
    findings: everything the engine found about the card (ok, drift, error, warning).
    measured: {model Name: {card field: measured value}}, for figures a card leaves out.
    source_url: where the repository's files are browsed (`Code:` paths become links), or None.
    versions: the versions that measured the figures (`verify.Report.versions`), for the page's note.
    """

    src_uri: str
    path: str
    family: str
    card: Card | None
    markdown: str | None
    findings: list[Finding] = field(default_factory=list)
    measured: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source_url: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)  # what measured the figures (verify.Report)
    code: Sequence[tuple[CodeBlock, str]] = ()  # the page's Python blocks and how each ran (runner.py)

    @property
    def title(self) -> str:
        return self.card.collection if self.card is not None else self.family

    @classmethod
    def of(cls, result: CardResult, src_uri: str, source_url: str | None = None,
           versions: Mapping[str, str] | None = None) -> CardPage:
        """The page of a card the engine verified, at `src_uri` in the site; `versions` measured it."""
        return cls(src_uri=src_uri, path=result.path, family=family_of(result.path), card=result.card,
                   markdown=result.markdown, findings=result.findings, measured=result.measurements,
                   source_url=source_url, versions=dict(versions or {}), code=list(result.code))


@dataclass(frozen=True)
class Figure:
    """One row of a model's table: the value shown and what the engine said about it."""

    field: str
    value: Any  # the card's claim, or the measurement when the card leaves the field out
    finding: Finding | None  # the engine's finding for this model and field, if any
    measured_only: bool = False  # the card leaves the field out: the value is the measurement

    @property
    def status(self) -> str:
        """drift or error (the engine's finding), verified (measured and equal to the card), measured (not
        on the card: the value is the measurement), not checked (the zoo gives no fact for it) or reported
        (stated on the card, not measured)."""
        if self.finding is not None and self.finding.status in PROBLEM_STATUSES:
            return self.finding.status
        if self.finding is not None and self.finding.status == "unchecked":
            return NOT_CHECKED
        if self.measured_only:  # from the code; a publisher's statement recorded there stays reported
            return "reported" if BY_NAME[self.field].compare == REPORTED else "measured"
        if self.finding is not None and self.finding.status == "ok":
            return "verified"
        return "reported"


@dataclass(frozen=True)
class ModelFigures:
    """One model of a card with every figure it states or the engine measured."""

    name: str
    figures: dict[str, Figure]
    model_id: str = ""

    def number(self, field: str) -> float | None:
        """A figure as a number (accuracies in percent), or None when absent or not numeric."""
        figure = self.figures.get(field)
        if figure is None:
            return None
        try:
            return float(kind_of(field).number(figure.value))
        except (TypeError, ValueError):
            return None

    @property
    def image_size(self) -> int:
        size = self.number(IMAGE_SIZE_FIELD.name)
        return int(size) if size else DEFAULT_IMAGE_SIZE


# ---------------------------------------------------------------------------------------------
# Claims, measurements and findings brought together per model


def model_figures(page: CardPage) -> list[ModelFigures]:
    """Each model of the card with every figure it states or the engine measured: those the card tables
    show first (in `_ROW_ORDER`), then the card's other scalar fields (Epochs, ...), in card order."""
    if page.card is None:
        return []
    # the table's marks: the comparisons (a warning about a figure, e.g. in the prose, is not one)
    findings = {(f.model, f.field): f for f in page.findings if f.model and f.field and f.status != "warning"}
    return [_figures(model, findings, page.measured.get(model.name, {})) for model in page.card.models]


def _figures(model: ModelClaims, findings: Mapping[tuple[str, str], Finding],
           measured: Mapping[str, Any]) -> ModelFigures:
    claims = model.claims()
    figures = {}
    for name in dict.fromkeys([*_ROW_ORDER, *claims, *measured]):
        finding = findings.get((model.name, name))
        if name in claims:
            figures[name] = Figure(name, claims[name].value, finding)
        elif measured.get(name) is not None and name != IDENTITY.name:
            figures[name] = Figure(name, measured[name], finding, measured_only=True)
    return ModelFigures(model.name, figures, model.model_id)


def anchor(name: str) -> str:
    """The HTML id of a model's section on its card (model names are close to ids already)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "model"


def zoo_package_of(versions: Mapping[str, str]) -> str:
    """The zoo's package, from the versions that measured a page: the one the engine does not always use
    (cache.installed_versions); resfam when there is none."""
    return next((name for name in versions if name not in ("python", "torch", "fvcore", "resfam")), "resfam")
