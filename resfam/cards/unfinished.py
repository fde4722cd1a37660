"""What makes a card unfinished, so that the strict checks (`verify --strict`, `mkdocs build --strict`)
do not publish it: a placeholder that `resfam-cards new` writes and nobody replaced, a model that states
no accuracy (no `Results`) though it names its weights, a collection named by its slug (`wide-resnet`)
where readers expect a name (`Wide ResNet`; a card that names no collection is shown under its family,
and is not flagged). Each is a strict warning at its line, saying what to write.
"""
from __future__ import annotations

import re

from ..registry import FAMILY_SLUG
from .claims import Card
from .fields import FIELDS
from .findings import Finding

PLACEHOLDER = "TODO:"  # how `resfam-cards new` marks the text left to write


def display_name(family: str) -> str:
    """A readable collection name for a family slug, the default of `resfam-cards new`: each word
    capitalised, a known architecture written as it is named, a one-letter variant kept to its word
    ('wide-resnet' -> 'Wide ResNet', 'resnet-d' -> 'ResNet-D')."""
    name = ""
    for word in family.split("-"):
        if len(word) == 1 and name:
            name += f"-{word.upper()}"
        else:
            name += (" " if name else "") + _KNOWN_WORDS.get(word, word.capitalize())
    return name


_KNOWN_WORDS = {"resnet": "ResNet", "resnext": "ResNeXt", "resnest": "ResNeSt", "res2net": "Res2Net"}


def unfinished_findings(card: Card) -> list[Finding]:
    lines = card.text.splitlines()
    found = [Finding("warning", card.path, number, f"placeholder left in the card: {line.strip()}",
                     hint="replace it with the card's own text (resfam-cards new writes these placeholders)",
                     strict=True)
             for number, line in enumerate(lines, 1) if PLACEHOLDER in line]
    for model in card.models:
        # published weights come with their accuracy; a model without weights (a zoo's untrained
        # example) has none to state
        if any(model.claim(field.name) is not None for field in FIELDS if field.checkpoint) \
                and not model.raw.get("Results"):
            found.append(Finding(
                "warning", card.path, model.line, f"{model.name} states no accuracy: the entry has no Results",
                hint="add its ImageNet Top 1 and Top 5 Accuracy under Results (docs/adding-a-model.md, step 2)",
                model=model.name, strict=True))
    named = bool(card.raw.get("Collections")) or any(model.raw.get("In Collection") for model in card.models)
    if named and FAMILY_SLUG.fullmatch(card.collection):
        line = next((number for number, text in enumerate(lines, 1)
                     if re.fullmatch(rf"\s*(- )?Name: *{re.escape(card.collection)}\s*", text)), None)
        found.append(Finding(
            "warning", card.path, line, f"the collection is named {card.collection!r}, a slug: the overview, the "
            "chart's legend and the navigation show this name",
            hint=f"name it as readers know it, e.g. '{display_name(card.family)}', in Collections and In Collection",
            strict=True))
    return found
