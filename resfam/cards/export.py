"""`resfam-cards export hub OUT/`: one folder per model, ready to push to the Hugging Face Hub next to
its weights. Nothing is uploaded.

    OUT/resnet50d/README.md     a model card: YAML metadata the Hub reads (library, pipeline tag, tags,
                                datasets, the licence of the weights, the accuracies as model-index
                                results), then the
                                figures table, the card's text rendered for this model (the usage
                                snippets included) and its citation
    OUT/resnet50d/config.json   the model's registered default config

The figures come from the same catalog as the site's models.json (`catalog.model_catalog`), and only
from cards that verify: an export of a card that drifts from the code, or cannot be read, is refused
before anything is written. The metadata also carries the verified figures under `resfam`, so a
tool reading the Hub can check them without parsing the table. The licence is each checkpoint's own,
as the registry records it from the publisher of the weights (`unknown` where none is stated); a
licence given to the command overrides it for every model.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import LICENSE_NOT_STATED
from .catalog import CatalogModel, model_catalog
from .claims import Card
from .fields import BY_NAME
from .figures import CardPage, zoo_package_of
from .findings import CardError, Finding
from .page_text import insert_before_first, strip_model_index
from .render import card_context, render_template
from .sync import write_atomic
from .verify import CardResult, Report, templates_dir_for
from .zoos import loaded_as

LIBRARY_NAME = "resfam"
PIPELINE_TAG = "image-classification"
# Hub ids of the datasets and metric types the cards name; others get a slug of their name
HUB_DATASETS = {"ImageNet": "imagenet-1k"}
EXPORTED_FILES = ("README.md", "config.json")  # in each model's folder


@dataclass(frozen=True)
class HubFolder:
    """What one model's folder holds: {file name: text}."""

    name: str
    files: dict[str, str]


HUB_LICENSE_NOT_STATED = "unknown"  # the Hub's license id for weights whose publisher states none


def hub_license(config: Mapping[str, Any]) -> str:
    """The Hub license id of a model's weights, from its registered config (`resfam.config.ModelConfig`)."""
    stated = config.get("license", LICENSE_NOT_STATED)
    return HUB_LICENSE_NOT_STATED if stated == LICENSE_NOT_STATED else stated


def hub_folders(report: Report, templates_dir: str | os.PathLike[str], *,
                license_id: str | None = None) -> list[HubFolder]:
    """The folder of every model on the verified cards of `report`, each under the licence of its weights
    (or `license_id` for all, when given). CardError when a card has errors or drifts (nothing of it
    could be trusted on the Hub), or two cards name the same model."""
    problems = [*report.errors, *report.drifts]
    if problems:
        raise CardError(problems)
    folders: dict[str, HubFolder] = {}
    clashes = []
    for result in report.cards:
        page = CardPage.of(result, f"models/{Path(result.path).stem}.md")
        for model in model_catalog([page]):
            if model.name in folders:
                clashes.append(Finding("error", result.path, result.card.model(model.name).line,
                                       f"{model.name}: another card names this model too; its Hub folder would "
                                       "be written twice", hint="keep the model on one card", model=model.name))
                continue
            registered = result.models[model.name].registered.config
            readme = _readme(model, result, Path(templates_dir), license_id or hub_license(registered),
                             report.versions)
            config = {"architecture": model.model_id, "family": model.family, **registered}
            files = {"README.md": readme, "config.json": json.dumps(config, indent=2) + "\n"}
            folders[model.name] = HubFolder(model.name, {name: files[name] for name in EXPORTED_FILES})
    if clashes:
        raise CardError(clashes)
    return list(folders.values())


def write_folders(folders: Sequence[HubFolder], out_dir: str | os.PathLike[str]) -> None:
    """Write every folder under `out_dir`, each file replaced at once (a new export over an old one)."""
    for folder in folders:
        target = Path(out_dir) / folder.name
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CardError([Finding("error", str(target), None, f"cannot make the folder: {error.strerror or error}",
                                     hint="check the path and the permissions of its parent")]) from None
        for name, text in folder.files.items():
            write_atomic(target / name, text, what=f"the exported {name}")


# ---------------------------------------------------------------------------------------------
# The model card


def _readme(model: CatalogModel, result: CardResult, templates_dir: Path, license_id: str,
            versions: dict[str, str]) -> str:
    card = result.card
    header = yaml.safe_dump(_metadata(model, card, license_id, versions), sort_keys=False, allow_unicode=True,
                            width=1000)
    measured_with = ", ".join(f"{name} {version}" for name, version in versions.items())
    zoo = zoo_package_of(versions)
    what = "from resfam, the ResNet family of image classifiers in PyTorch" if zoo == LIBRARY_NAME else f"of {zoo}"
    lead = (f"# {model.name}\n\n`{model.model_id}` is a {model.collection} image classifier {what} "
            f"({loaded_as(zoo, model.model_id)}). The verified figures below were "
            f"measured from {zoo}'s code ({measured_with}) and match its model card; the accuracies are reported "
            "with the weights.\n")
    body = _card_text(result, templates_dir, model.model_id)
    body = insert_before_first(body, level=2, text=_figures_table(model))
    return f"---\n{header}---\n\n{lead}\n{body.strip()}\n"


def _metadata(model: CatalogModel, card: Card, license_id: str, versions: dict[str, str]) -> dict[str, Any]:
    """The YAML metadata of the Hub card: what the Hub indexes and shows, then resfam's figures."""
    entry = card.model(model.name)
    dataset = entry.results_dataset
    metrics = [{"type": _hub_metric(name), "name": name, "value": figure.value}
               for name, figure in model.figures.items()
               if name in entry.results and isinstance(figure.value, (int, float))]
    data: dict[str, Any] = {
        "library_name": zoo_package_of(versions),
        "pipeline_tag": PIPELINE_TAG,
        "license": license_id,
        "tags": [zoo_package_of(versions), model.family, PIPELINE_TAG, "pytorch"],
    }
    if dataset:
        data["datasets"] = [HUB_DATASETS.get(dataset, _slug(dataset))]
    if metrics:
        data["model-index"] = [{"name": model.name, "results": [{
            "task": {"type": PIPELINE_TAG, "name": "Image Classification"},
            "dataset": {"type": HUB_DATASETS.get(dataset or "", _slug(dataset or "unnamed")),
                        "name": dataset or "unnamed", "split": "validation"},
            "metrics": metrics,
        }]}]
    data["resfam"] = {
        "id": model.model_id,
        "family": model.family,
        "verified": {name: figure.value for name, figure in model.figures.items() if figure.status == "verified"},
        "measured_with": dict(versions),
    }
    return data


def _figures_table(model: CatalogModel) -> str:
    rows = ["## Figures\n", "| Figure | Value | Unit | Status | Convention |", "| --- | --- | --- | --- | --- |"]
    for name, figure in model.figures.items():
        value = figure.value
        value = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
            else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        rows.append(f"| {name} | {_cell(value)} | {figure.unit or ''} | {figure.status} | {_cell(figure.convention)} |")
    return "\n".join(rows) + "\n"


def _card_text(result: CardResult, templates_dir: Path, model_id: str) -> str:
    """The card's text rendered for this model (the usage snippets create it), without its title and its
    model-index."""
    path = Path(result.path)
    context = {**card_context(result.card, result.template_values), "model_name": model_id}
    markdown = strip_model_index(render_template(result.path, templates_dir_for(path, templates_dir), context))
    return re.sub(r"\A\s*# [^\n]*\n", "", markdown)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _hub_metric(name: str) -> str:
    """The Hub's metric type of a card's metric (the table of fields names it; else a slug of its name)."""
    return (BY_NAME[name].hub_metric if name in BY_NAME else None) or _slug(name)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
