"""Every field a card can state, once: where it sits, what kind of value it holds, how the build compares
it with the code, where the measured value comes from, how `sync` writes it and how the site shows it.

A field is a row of `FIELDS`: its name, its place in a model entry (`Place`), its kind of value and its
comparison with the code (objects of `kinds`, which carry the behaviour: checking a value, normalising,
comparing, formatting, writing back), where the code's value comes from, its default tolerance, its label,
column and unit. The parser (`model_index`), `verify`, `sync`, the pages, the catalog, the export and the
prose check read it; no other engine module names a field. Adding a verified field is one row here plus
its measurement (a key of the worker's measurement, or of the registered config).

This module imports nothing but the standard library and `kinds` (which imports only the standard
library): the template renderer and the parser read it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from .kinds import (
    ANY,
    COUNT,
    COUNTS,
    CROP_PCT,
    EXACT,
    IMAGE_SIZE,
    INTERPOLATION,
    INTERPOLATIONS,
    MODEL_ID,
    PERCENTAGE,
    RATE,
    REPORTED,
    SOURCE,
    SOURCE_PATH,
    TAGS,
    TAGS_LIST,
    TEXT,
    TEXTS,
    TOLERANCE,
    UNCHECKED,
    URL,
    Comparison,
    Count,
    Kind,
    Prose,
)


class Place(StrEnum):
    """Where a field sits in a model entry."""

    METADATA = "Metadata"  # under the entry's Metadata
    ENTRY = "entry"  # a key of the model entry itself
    METRICS = "Metrics"  # a metric of the entry's ImageNet result
    CODE = "code"  # not written on a card: the value always comes from the code (the registry or the measurement)


METADATA, ENTRY, METRICS, CODE = Place.METADATA, Place.ENTRY, Place.METRICS, Place.CODE


class Origin(StrEnum):
    """Where the code's value of a field comes from (the part of `measured` before the colon)."""

    MEASUREMENT = "measurement"  # a figure of the measuring worker
    CONFIG = "config"  # the registered default config
    REGISTRY = "registry"  # the registration: where the model is registered


@dataclass(frozen=True)
class CardField:
    """One field of a card.

    name: the key as a card writes it.
    place: METADATA, ENTRY, METRICS or CODE (not a key of the card: shown from the code).
    kind: the kind of value (`kinds.Kind`): how a value is checked, compared, shown and written back.
    hint: what to write when the value is not acceptable ({path} is the card).
    compare: how it is compared with the code (`kinds.Comparison`): TOLERANCE, EXACT, TAGS, SOURCE, REPORTED
        or UNCHECKED.
    tolerance: the default tolerance in percent (TOLERANCE fields).
    measured: where the code's value comes from, '<Origin>:<key>' (`measured_from` reads it):
        'measurement:<key>' (a figure of the measuring worker; FLOPs-like keys are per image size, see
        `per_image_size`), 'config:<key>' (the registered default config) or 'registry:<key>' (where the
        model is registered).
    per_image_size: the measured value depends on the card's Image Size.
    label: the label on a card page (None: not shown).
    column: the header of the field's column in the comparison tables (a card's and the overview's);
        None: shown in each model's details instead.
    scale, digits: a number in a column is shown as value / scale with `digits` decimals.
    anchor: the section of the measurement page that explains it.
    how: how the build gets the value, one sentence (tooltips and the measurement page).
    unit: the unit of the value (models.json), None for text.
    cited: a card template reads the code's value as `models.ID.<key>` (the key of `measured`).
    uncounted: the measurement names the operators it could not count; a warning at the field when it does.
    checkpoint: the value names the model's published weights: one checkpoint belongs to one model, and a
        model that has one states its accuracy.
    hub_metric: the metric type of the Hugging Face Hub's model-index (None: a slug of the name).
    """

    name: str
    place: Place
    kind: Kind
    hint: str = ""
    compare: Comparison = UNCHECKED
    tolerance: float | None = None
    measured: str | None = None
    per_image_size: bool = False
    label: str | None = None
    column: str | None = None
    scale: float = 1.0
    digits: int = 0
    anchor: str | None = None
    how: str = ""
    unit: str | None = None
    cited: bool = False
    uncounted: bool = False
    checkpoint: bool = False
    hub_metric: str | None = None

    @property
    def verified(self) -> bool:
        return self.compare.verified

    @functools.cached_property
    def measured_from(self) -> tuple[Origin, str] | None:
        """(where the value comes from, its key there), or None; read once per row (a warm build of a
        zoo of 1,400 models asks 24,000 times)."""
        if self.measured is None:
            return None
        source, key = self.measured.split(":", 1)
        return Origin(source), key


DEFAULT_IMAGE_SIZE = 224  # the Image Size a card that states none stands for: its FLOPs are counted there
_SYNC_HINT = "write the exact {what}, or run 'resfam-cards sync --write {{path}}' to fill it in"
_CONFIG_HOW = "equal to the model's registered default config"

# In the order of a card page's table, which is also the order `sync --fill` inserts missing fields in.
FIELDS: tuple[CardField, ...] = (
    CardField("ID", METADATA, MODEL_ID, "write the model's name in the resfam registry (resfam.list_models())"),
    CardField("Layers", METADATA, Count(Prose(r"layers?", said="{value}", whole=True)),
              _SYNC_HINT.format(what="depth"), TOLERANCE, 0.0,
              "measurement:layers", label="Layers", anchor="layers",
              how="nominal depth from the block counts of the architecture", unit="layers", cited=True),
    CardField("Parameters", METADATA, Count(Prose(r"param(?:eter)?s?")), _SYNC_HINT.format(what="count"),
              TOLERANCE, 0.1,
              "measurement:parameters", label="Parameters", column="Params (M)", scale=1e6, digits=2,
              anchor="parameters",
              how="sum of p.numel() over model.parameters(), with the 1000-class head", unit="count", cited=True),
    CardField("FLOPs", METADATA,
              Count(Prose(r"[kMGT]?FLOP(?:s|S)?|[kMGT]?MACs?|[kMGT]?MAdds?|multiply-adds",
                          said="{value:,} ({billions:.2f} G at {model[image_size]} px)",
                          scaled=(r"[GT]", "gflops", ""), decimals_in_millions=False)),
              _SYNC_HINT.format(what="count (fvcore convention: one multiply-add is one FLOP)"), TOLERANCE, 0.1,
              "measurement:flops", per_image_size=True, label="GFLOPs", column="GFLOPs", scale=1e9, digits=2,
              anchor="flops",
              how="fvcore FlopCountAnalysis of one image at the card's image size; one multiply-add is one FLOP",
              unit="FLOPs", cited=True, uncounted=True),
    CardField("Activations", METADATA, Count(Prose(r"activations?")),
              _SYNC_HINT.format(what="count (fvcore's activation count)"),
              TOLERANCE, 0.1, "measurement:activations", per_image_size=True, label="Activations",
              column="Activations (M)", scale=1e6, digits=2, anchor="activations",
              how="fvcore ActivationCountAnalysis of one image at the card's image size: the outputs of the "
                  "convolutions and linear layers", unit="activations", cited=True),
    CardField("File Size", METADATA,
              Count(Prose(r"[kKMGT]i?B|bytes|(?:kilo|mega|giga)bytes", said="{value:,} bytes ({millions:.1f} MB)",
                          scaled=(r"(?i)(?!bytes\Z)", "mb", " MB"))),
              _SYNC_HINT.format(what="size in bytes"), TOLERANCE, 1.0,
              "measurement:file_size", label="File size", column="File (MB)", scale=1e6, digits=1,
              anchor="file-size",
              how="bytes written by torch.save(model.state_dict())", unit="bytes", cited=True),
    CardField("Top 1 Accuracy", METRICS, PERCENTAGE, "write a percentage such as 76.13%", REPORTED,
              label="Top-1 accuracy", column="Top-1 (%)", digits=2, unit="%", hub_metric="accuracy"),
    CardField("Top 5 Accuracy", METRICS, PERCENTAGE, "write a percentage such as 92.86%", REPORTED,
              label="Top-5 accuracy", column="Top-5 (%)", digits=2, unit="%",
              hub_metric="top_5_accuracy"),
    CardField("Image Size", METADATA, IMAGE_SIZE, "write the input resolution in pixels, e.g. '224'", EXACT,
              measured="config:image_size", label="Image size", column="Input (px)", anchor="config", how=_CONFIG_HOW,
              unit="pixels", cited=True),
    CardField("Crop Pct", METADATA, CROP_PCT, "write the crop fraction, e.g. '0.875'", EXACT,
              measured="config:crop_pct", label="Crop", anchor="config", how=_CONFIG_HOW, unit="fraction", cited=True),
    CardField("Interpolation", METADATA, INTERPOLATION, f"use one of: {', '.join(INTERPOLATIONS)}", EXACT,
              measured="config:interpolation", label="Interpolation", anchor="config", how=_CONFIG_HOW,
              cited=True),
    CardField("Weights", ENTRY, URL, "write the full https:// URL of the checkpoint", EXACT,
              measured="config:url", label="Weights", anchor="config",
              how="equal to the weights URL registered for the model", checkpoint=True),
    CardField("Architecture", METADATA, TAGS_LIST,
              "write one '- <tag>' line per component; the tags are listed on the measurement page", TAGS,
              measured="measurement:architecture", label="Architecture", anchor="architecture",
              how="the components found in the model as built: its layers and the operators of its traced graph",
              unit="tags"),
    CardField("Code", ENTRY, SOURCE_PATH,
              "write the path of the file that registers the model, relative to the repository root, "
              "e.g. resfam/models/resnet.py (optionally with #L<line>)", SOURCE,
              measured="registry:code", label="Code", anchor="code",
              how="the file, relative to the repository root, whose code registers the model", unit="path"),
    # Shown from the code, never written on a card: what a backbone gives per stage, and the licence of
    # the weights as their publisher states it (recorded with the weights in the registry).
    CardField("Feature Channels", CODE, COUNTS, compare=EXACT, measured="measurement:feature_channels",
              label="Feature channels", anchor="features",
              how="the channels of each stage's output, from a forward pass of the model as built",
              unit="channels"),
    CardField("Feature Reduction", CODE, COUNTS, compare=EXACT, measured="measurement:feature_reduction",
              label="Feature reduction", anchor="features",
              how="the input size divided by the size of each stage's output, from the same forward pass",
              unit="factor"),
    CardField("License", CODE, TEXT, compare=REPORTED, measured="config:license", label="License",
              column="License", anchor="license",
              how="the licence of the weights as their publisher states it, recorded with the weights in the "
                  "registry; not checked by the build"),
    CardField("License Source", CODE, URL, compare=REPORTED, measured="config:license_url",
              label="License source", anchor="license",
              how="where the publisher of the weights states their licence"),
    CardField("License Note", CODE, TEXT, compare=REPORTED, measured="config:license_note",
              label="License note", anchor="license",
              how="what else the publisher of the weights says about their use"),
    # Training settings: kept as written, not checked against the code.
    CardField("Epochs", METADATA, COUNT, "write the number of training epochs", unit="epochs"),
    CardField("Batch Size", METADATA, COUNT, "write the training batch size", unit="images"),
    CardField("LR Step Size", METADATA, COUNT, "write the number of epochs between learning-rate steps",
              unit="epochs"),
    CardField("LR", METADATA, RATE),
    CardField("Momentum", METADATA, RATE),
    CardField("Weight Decay", METADATA, RATE),
    CardField("Dropout", METADATA, RATE),
    CardField("LR Gamma", METADATA, RATE),
    CardField("Tasks", METADATA, TEXTS),
    CardField("Training Data", METADATA, TEXTS),
    CardField("Training Techniques", METADATA, TEXTS),
    CardField("Training Resources", METADATA, TEXT),
    CardField("Training Time", METADATA, TEXT),
)

BY_NAME: dict[str, CardField] = {field.name: field for field in FIELDS}


def fields_where(*, place: Place | None = None, compare: Comparison | tuple[Comparison, ...] | None = None,
                 kind: Kind | None = None) -> tuple[CardField, ...]:
    """The fields at `place`, compared as `compare` (one or several), of value `kind`, in table order."""
    compares = (compare,) if isinstance(compare, Comparison) else compare
    return tuple(field for field in FIELDS
                 if (place is None or field.place == place) and (compares is None or field.compare in compares)
                 and (kind is None or field.kind == kind))


def kind_of(name: str) -> Kind:
    """The kind of value of the field `name`; any value for a key the table does not know."""
    return BY_NAME[name].kind if name in BY_NAME else ANY


# The fields with a part of their own in the engine, found by what they are.
IDENTITY = fields_where(kind=MODEL_ID)[0]  # names the model in the registry
IMAGE_SIZE_FIELD = fields_where(kind=IMAGE_SIZE)[0]  # the image size the per-image-size figures are counted at
CHART_X, CHART_Y = BY_NAME["FLOPs"], BY_NAME["Top 1 Accuracy"]  # the overview's chart: accuracy against compute


def default_tolerances() -> dict[str, float]:
    """{field: percent} for every field compared within a tolerance."""
    return {field.name: field.tolerance for field in fields_where(compare=TOLERANCE)}


def code_fields() -> tuple[CardField, ...]:
    """Every field whose value the code gives (the measurement, the registered config, the registry)."""
    return tuple(field for field in FIELDS if field.measured is not None)


def synced_fields() -> tuple[CardField, ...]:
    """The fields `sync` writes: every card field whose value the code gives."""
    return tuple(field for field in code_fields() if field.place != CODE)


def columns() -> tuple[CardField, ...]:
    """The fields of the comparison tables, in table order."""
    return tuple(field for field in FIELDS if field.column)
