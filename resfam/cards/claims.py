"""The parsed card, as plain data: every scalar a `Claim` with its value, its line and its exact span.

`model_index.parse_card` builds these; `verify`, `sync`, the pages and the catalog read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fields import BY_NAME, ENTRY, FIELDS, METADATA, METRICS
from .findings import Finding


@dataclass(frozen=True)
class Claim:
    """One scalar of the card, as written.

    value: the YAML value (int, float, str, bool, None, ...).
    line: 1-based line of the scalar in the template file.
    span: (start, end) character offsets of the scalar's source text in the template text, quotes
        included, comments and surrounding spaces excluded: `text[start:end]` is exactly what to
        replace to change the value.
    style: YAML scalar style of the source: None (plain), "'" or '"' (quoted), '|' or '>' (block);
        for a list, "flow" ([a, b]) or None (one '- ' line per item).
    item_lines: for a list, the line of each item.
    """

    value: Any
    line: int
    span: tuple[int, int]
    style: str | None = None
    item_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class InsertionPoint:
    """Where a new key of a mapping goes, for `sync --fill`.

    offset: character offset in the template text where the new text is inserted.
    line: 1-based line of that offset.
    column: indentation (in spaces) of the new key.
    kind: 'block' (insert whole lines `<column spaces>Key: value\\n` at `offset`, a line start or the
        end of the block), 'flow' (insert `, Key: value` before the closing `}` at `offset`), or
        'empty' (the mapping is written as an empty value, `Metadata:`; insert lines after its key).
    """

    offset: int
    line: int
    column: int
    kind: str = "block"


@dataclass
class ModelClaims:
    """One entry of `Models`.

    name: the entry's `Name`; line: the line of its `Name`.
    id: the Metadata `ID` (the registry name of the model), or None when the entry has none.
    fields: every scalar of the entry's Metadata except `ID`, keyed by its card name (the fields of the
        table at place METADATA, unknown keys included), and each list the table keeps as one claim (the
        `Architecture` tags: a Claim whose value is the list and whose span covers the whole list). Other
        lists (Tasks, ...) are only in `raw`.
    entry: the fields written as keys of the entry itself (place ENTRY: `Weights`, `Code`), by name.
    results: the metrics of the ImageNet result (the first result when none names ImageNet), e.g. the top-1
        and top-5 accuracies; results_dataset: that result's Dataset, if it names one.
    metadata_line: line of the `Metadata` key, or None when the entry has no Metadata.
    raw: the whole entry as plain data, unknown keys included.
    metadata_insert: where a missing Metadata field is inserted (None when there is no Metadata).
    model_insert: where a missing model-level key (Weights, or a whole Metadata mapping) is inserted.
    """

    name: str
    line: int
    id: Claim | None = None
    fields: dict[str, Claim] = field(default_factory=dict)
    entry: dict[str, Claim] = field(default_factory=dict)
    results: dict[str, Claim] = field(default_factory=dict)
    results_dataset: str | None = None
    metadata_line: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    metadata_insert: InsertionPoint | None = None
    model_insert: InsertionPoint | None = None

    @property
    def model_id(self) -> str:
        """The registry name this entry stands for: its ID, else its Name."""
        return self.id.value if self.id is not None else self.name

    def claim(self, name: str) -> Claim | None:
        """What the entry states for the field `name`, wherever the table of fields puts it."""
        place = BY_NAME[name].place if name in BY_NAME else METADATA
        if place == ENTRY:
            return self.entry.get(name)
        return (self.results if place == METRICS else self.fields).get(name)

    def claims(self) -> dict[str, Claim]:
        """Every field the entry states: Metadata, ImageNet metrics and entry-level (in table order)."""
        entry = {field.name: self.entry[field.name] for field in FIELDS if field.name in self.entry}
        return {**self.fields, **self.results, **entry}


@dataclass
class Card:
    """A parsed card template.

    path: the template path as given to `parse_card` (used in every finding).
    text: the template text the spans refer to.
    family: the template file stem (`templates/models/resnet-d.md` -> 'resnet-d').
    collection: the first `Collections` Name; else the first model's `In Collection`; else `family`.
    models: the `Models` entries in file order.
    block_start_line, block_end_line: lines of the `<!--` and `-->` around the model-index block.
    warnings: findings with status 'warning' (unknown keys and other things kept but worth a look).
    block_span: (start, end) offsets of the YAML text between `<!--` and `-->`.
    raw: the whole block as plain data.
    """

    path: str
    text: str
    family: str
    collection: str
    models: list[ModelClaims]
    block_start_line: int
    block_end_line: int
    warnings: list[Finding] = field(default_factory=list)
    block_span: tuple[int, int] = (0, 0)
    raw: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> ModelClaims:
        """The entry named `name` (KeyError when the card has none)."""
        for entry in self.models:
            if entry.name == name:
                return entry
        raise KeyError(name)
