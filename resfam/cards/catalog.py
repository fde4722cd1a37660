"""Every model of the site as data, made once per build: the overview page (its table and its chart),
the site's `models.json` and the Hugging Face Hub export all read this one list.

`model_catalog` turns the card pages (claims, measurements and the engine's findings) into one
`CatalogModel` per model: every figure the card states, and the ones the code measured that it leaves
out, each with its value as plain data (`'224'` is 224, `'80.53%'` is 80.53 with the unit %), its
status (`figures.Figure.status`), its unit and the convention it is measured or reported by.
`models_json` is the catalog as `models.json`; its JSON Schema is docs/models.schema.json.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .fields import BY_NAME, FIELDS, kind_of
from .figures import NOT_CHECKED, REPORTED_FIELDS, VERIFIED_FIELDS, CardPage, anchor, model_figures

CATALOG_FORMAT = 1

# The unit of each figure a card may state; a field missing here (a name, a URL, a rate) has none.
UNITS = {field.name: field.unit for field in FIELDS if field.unit}  # from the table of fields
REPORTED_CONVENTION = "reported with the weights by their publishers on {dataset}; not measured by the build"
STATED_CONVENTION = "stated on the card; not checked by the build"
NOT_CHECKED_CONVENTION = "stated on the card; not checked with this zoo, which gives no fact for it"



@dataclass(frozen=True)
class CatalogFigure:
    value: Any  # as plain data: a number where the card's text is one, else the text
    status: str  # verified, measured, not checked, reported, drift or error (see figures.Figure.status)
    unit: str | None
    convention: str  # how the figure is measured (verified, measured) or where it comes from (reported)
    measured: Any = None  # what the code measures, for a verified or drifting figure


@dataclass(frozen=True)
class CatalogModel:
    name: str
    model_id: str
    family: str  # the family slug, the card template's file stem
    collection: str  # the card's title
    src_uri: str  # the card page in the site, e.g. 'models/resnet-d.md'
    image_size: int  # what the FLOPs are counted at
    figures: dict[str, CatalogFigure]

    @property
    def anchor(self) -> str:
        """The id of the model's section on its card page."""
        return anchor(self.name)

    def number(self, field: str) -> float | None:
        """A figure as a number (accuracies in percent), or None when absent or not numeric."""
        figure = self.figures.get(field)
        if figure is None or isinstance(figure.value, bool) or not isinstance(figure.value, (int, float)):
            return None
        return float(figure.value)


def model_catalog(pages: Sequence[CardPage]) -> list[CatalogModel]:
    """Every model of every card, in page order."""
    models = []
    for page in pages:
        for model in model_figures(page):
            dataset = page.card.model(model.name).results_dataset or "an unnamed dataset"
            figures = {name: CatalogFigure(kind_of(name).plain(figure.value), figure.status, UNITS.get(name),
                                           _convention(name, figure.status, dataset),
                                           figure.finding.measured if figure.status in ("verified", "drift")
                                           else None)
                       for name, figure in model.figures.items()}
            models.append(CatalogModel(model.name, model.model_id, page.family, page.title, page.src_uri,
                                       model.image_size, figures))
    return models


def _convention(field: str, status: str, dataset: str) -> str:
    if status == NOT_CHECKED:
        return NOT_CHECKED_CONVENTION
    if field in VERIFIED_FIELDS and status != "reported":  # the build measures it
        return VERIFIED_FIELDS[field][2]
    if field in REPORTED_FIELDS:  # an accuracy, or a publisher's statement recorded in the registry
        return BY_NAME[field].how or REPORTED_CONVENTION.format(dataset=dataset)
    return STATED_CONVENTION


def models_json(models: Sequence[CatalogModel], card_urls: Mapping[str, str],
                versions: Mapping[str, str]) -> dict[str, Any]:
    """The catalog as the site's `models.json` (docs/models.schema.json).

    card_urls: card src_uri -> the URL of its page (relative to the site root, or absolute).
    versions: what measured the figures (Python, torch, fvcore).
    """
    return {
        "format": CATALOG_FORMAT,
        "models": [
            {
                "name": model.name,
                "id": model.model_id,
                "family": model.family,
                "collection": model.collection,
                "card_url": f"{card_urls[model.src_uri]}#{model.anchor}",
                "image_size": model.image_size,
                "measured_with": dict(versions),
                "figures": {name: _figure_json(figure) for name, figure in model.figures.items()},
            }
            for model in models
        ],
    }


def _figure_json(figure: CatalogFigure) -> dict[str, Any]:
    data = {"value": figure.value, "status": figure.status, "unit": figure.unit, "convention": figure.convention}
    if figure.measured is not None:
        data["measured"] = figure.measured
    return data
