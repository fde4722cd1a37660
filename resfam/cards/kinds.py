"""Kinds of value, and how a card's value is compared with the code's: each one object with its behaviour.

A field of the table of fields (`fields.py`) is a row that names its kind (a `Kind` of this module) and its
comparison (a `Comparison`). The kind knows everything the engine does with a value of its kind:

- `check`: whether a value, as the card writes it, is acceptable (the parser; the field's hint goes with it);
- `normalised`: the value it stands for, to compare ('224' is 224 pixels, '0.875' the number 0.875);
- `from_code`: the code's value as a card writes it; `for_card`: the measured value in the type `sync`
  writes (ValueError for one it must not write); `already_says`: whether the card already writes it;
  `in_card_style`: how this card would write it (its own order of tags, its line anchor); `insert_style`:
  the quoting of a value `sync --fill` inserts;
- `number`, `shown`, `brief`, `plain`: the value in a table's column, on a card page, in a one-line summary
  and in models.json;
- `prose` (counts): how the card's prose writes the figure out by hand, and what to write instead.

The comparison of a field with the code is within a relative tolerance, exact, as a set, as the registering
source, reported (shown as the publisher states it) or unchecked (kept as written): `Comparison.findings`
makes the engine's findings for one claim.

This module imports only the standard library (and `findings`, which does too): the table of fields
imports it, and the card templates' renderer reads the table.
"""
from __future__ import annotations

import difflib
import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .findings import Finding

SANITY_LIMIT = 10**15  # no count in a model card (params, FLOPs, bytes) comes near this
MAX_IMAGE_SIZE = 4096  # the verifier runs a forward pass at this size: keep it bounded
INTERPOLATIONS = ("bicubic", "bilinear", "box", "hamming", "lanczos", "nearest")

_URL = re.compile(r"https?://[^\s/$.?#][^\s]*\Z")
_NUMERIC_STRING = re.compile(r"[0-9]*\.?[0-9]+\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_PERCENT = re.compile(r"([0-9]*\.?[0-9]+)[ ]?%\Z")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)+\Z")
_INTEGER = re.compile(r"[0-9]+\Z")
_DECIMAL = re.compile(r"[0-9]*\.[0-9]+\Z")
_SYNCED_URL = re.compile(r"https?://\S+\Z")
_SYNCED_SOURCE = re.compile(r"[^\s#]+(#L[0-9]+)?\Z")
_LINE_ANCHOR = re.compile(r"#L[0-9]+\Z")


def is_import_path(value: str) -> bool:
    """'resfam.models.resnet.resnet18', 'resfam.models.resnet:ResNet', 'torchvision.models.resnet18': a
    module path, not a registry name (which may carry one dot, as in a tag like 'resnet50.a1_in1k')."""
    return bool(_DOTTED.match(value)) and (":" in value or value.count(".") >= 2 or value.startswith("resfam."))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shown(value: Any, source: str) -> str:
    """A value as the message shows it: text quoted, anything else as written, long ones cut."""
    text = repr(value) if isinstance(value, str) else source
    return text if len(text) <= 60 else text[:57] + "..."


def _written(value: Any, scalar: Any) -> str:
    """A YAML scalar (its `value` the source text, its `style` the quoting) as a message shows it."""
    return "nothing" if scalar.style is None and scalar.value == "" else shown(value, scalar.value)


def percentage_value(value: Any) -> float | None:
    """An accuracy claim ('76.13%' or 76.13) as a number of percent; None when it is neither."""
    if isinstance(value, str):
        match = _PERCENT.match(value)
        return float(match.group(1)) if match else None
    return float(value) if is_number(value) else None


def plain_value(value: Any) -> Any:
    """A card's value as plain data: '224' -> 224, '0.875' -> 0.875, '80.53%' -> 80.53; other text as is."""
    if isinstance(value, str):
        if _INTEGER.match(value):
            return int(value)
        if _DECIMAL.match(value):
            return float(value)
        percent = percentage_value(value)
        return percent if percent is not None else value
    return value


def markdown_text(text: str) -> str:
    """Card text shown inline in Markdown (a table cell, a heading): HTML and Markdown syntax escaped."""
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", html.escape(text, quote=False))


def link_target(value: Any) -> str:
    """A value as the target of a Markdown link."""
    return str(value).replace(" ", "%20").replace(")", "%29").replace("(", "%28")


def with_prefix(value: Any, unit: str, digits: int) -> str:
    """A count with an SI prefix: (44568392, "", 2) -> '44.57 M', (178899715, "B", 1) -> '178.9 MB'."""
    number = float(value)
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(number) >= scale:
            return f"{number / scale:.{digits}f} {prefix}{unit}"
    return f"{number:g} {unit}".rstrip()


def format_percent(value: float | None) -> str:
    """A drift as a signed percentage, with enough digits that a drift never reads as 0.00%."""
    if value is None:
        return "n/a"
    if value == 0 or abs(value) >= 0.01:
        return f"{value:+.2f}%"
    return f"{value:+.2g}%"


# ---------------------------------------------------------------------------------------------
# Kinds of value


class Kind:
    """A value of any kind: an unknown key's, or a field's whose kind asks nothing of it."""

    listed = False  # written as a YAML list of names, one '- <name>' line each
    list_claim = False  # such a list kept as one Claim (compared with the code); else only in `raw`
    insert_style: str | None = None  # the YAML quoting of a value `sync --fill` inserts (None: plain)
    prose: Prose | None = None  # how the card's prose writes such a figure out by hand (counts)

    def check(self, value: Any, scalar: Any) -> str | tuple[str, str] | None:
        """None when `value` (of the YAML scalar `scalar`: its `value` is the source text, its `style` the
        quoting) is acceptable; else the end of the sentence "'<field>' of <model> ...", or that and a hint
        of its own when the field's usual hint does not fit."""
        return None

    def normalised(self, value: Any) -> Any:
        """The value a claim stands for, to compare with the code's or another entry's (TypeError or
        ValueError when it stands for none)."""
        return value

    def from_code(self, value: Any) -> Any:
        """The code's value (the registered config's) as a card writes it."""
        return value

    def for_card(self, value: Any) -> Any:
        """A measured value in the type `sync` writes; ValueError for one it must not write."""
        raise ValueError(value)

    def already_says(self, claimed: Any, measured: Any) -> bool:
        """Whether the card's value already says what was measured (sync leaves it as written)."""
        return claimed == measured

    def in_card_style(self, claimed: Any, measured: Any, registered: Any) -> Any:
        """The measured value as the card would write it, given what it writes now (`claimed`, None when
        it leaves the field out) and the model's registration."""
        return measured

    def number(self, value: Any) -> Any:
        """What a table's column takes as the number of the value."""
        return value

    def shown(self, value: Any, source_url: str | None) -> str:
        """The value on a card page (Markdown)."""
        return markdown_text(str(value))

    def brief(self, value: Any) -> str:
        """The value in a one-line summary (`resfam-cards list`)."""
        return str(value)

    def plain(self, value: Any) -> Any:
        """The value as plain data (models.json)."""
        return plain_value(value)


ANY = Kind()


@dataclass(frozen=True)
class Prose:
    """How a card's prose writes a count out by hand, and the template expression to write instead.

    units: a regular expression of the units that follow the number ('layers?', 'MB|bytes', ...).
    said: what the code measures, for the warning: a format of `value`, `millions`, `billions` and `model`
        (the model's template values).
    scaled: (a unit's pattern, the template filter, the text after the expression) for a unit that says its
        own scale ('GFLOPs' takes `| gflops`, 'MB' `| mb }} MB`).
    decimals_in_millions: a number with decimals and no scale is in millions ('25.6 parameters').
    whole: the figure is written as it is, never scaled (layers).
    """

    units: str
    said: str = "{value:,} ({millions:.1f} million)"
    scaled: tuple[str, str, str] | None = None
    decimals_in_millions: bool = True
    whole: bool = False

    def expression(self, reference: str, key: str, number: str, scale: str, unit: str) -> str:
        """The template expression that writes the figure the way the prose did."""
        if self.whole:
            return f"{{{{ {reference}.{key} }}}}"
        if self.scaled is not None and re.match(self.scaled[0], unit):
            return f"{{{{ {reference}.{key} | {self.scaled[1]} }}}}{self.scaled[2]}"
        if scale in ("m", "million") or (not scale and self.decimals_in_millions and "." in number):
            return f"{{{{ {reference}.{key} | millions }}}}"
        return f"{{{{ {reference}.{key} | grouped }}}}"

    def measured(self, value: Any, model: Mapping[str, Any]) -> str:
        """What the code measures, as the warning says it."""
        number = is_number(value)
        return self.said.format(value=value, millions=value / 1e6 if number else value,
                                billions=value / 1e9 if number else value, model=model)


@dataclass(frozen=True)
class Count(Kind):
    """A whole number: a measured count (parameters, FLOPs, bytes, layers) or a training fact (epochs)."""

    prose: Prose | None = None

    def check(self, value: Any, scalar: Any) -> str | None:
        if scalar.style is None and scalar.value == "":
            return "has no value"
        if not isinstance(value, int) or isinstance(value, bool):
            quoted = isinstance(value, str) and _DIGITS.match(value) and scalar.style in ("'", '"')
            suffix = " (a quoted string: remove the quotes)" if quoted else ""
            return f"must be an integer, got {shown(value, scalar.value)}{suffix}"
        if value < 0:
            return f"must be a non-negative integer, got {scalar.value}"
        if value > SANITY_LIMIT:
            return f"is implausibly large: {shown(value, scalar.value)} (more than 10^15)"
        return None

    def for_card(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SANITY_LIMIT:
            return value
        raise ValueError(value)

    def already_says(self, claimed: Any, measured: Any) -> bool:
        return type(claimed) is int and claimed == measured

    def brief(self, value: Any) -> str:
        return with_prefix(value, "", 2)


class Rate(Kind):
    """A non-negative number: a learning rate, a momentum, a dropout rate."""

    def check(self, value: Any, scalar: Any) -> str | None:
        if not is_number(value) or not math.isfinite(value) or value < 0:
            return f"must be a non-negative number, got {_written(value, scalar)}"
        return None


class Text(Kind):
    """One line of text."""

    def check(self, value: Any, scalar: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be text, got {_written(value, scalar)}"
        return None


class Texts(Kind):
    """A list of names (Tasks, Training Data): kept as written."""

    listed = True


class Counts(Kind):
    """A list of numbers, one per stage (never written on a card: shown from the code)."""

    def shown(self, value: Any, source_url: str | None) -> str:
        return ", ".join(map(str, value))


class Tags(Kind):
    """A list of architecture tags: compared as a set, written back in the card's own order."""

    listed = True
    list_claim = True

    def normalised(self, value: Any) -> Any:
        return sorted(value)

    def for_card(self, value: Any) -> Any:
        if isinstance(value, list) and value \
                and all(isinstance(tag, str) and tag.strip() and "\n" not in tag for tag in value):
            return list(value)
        raise ValueError(value)

    def in_card_style(self, claimed: Any, measured: Any, registered: Any) -> Any:
        """The network's tags as the card would list them: the card's own tags that the network has, in
        the card's order, then the ones it leaves out, in alphabetical order."""
        listed = [tag for tag in (claimed or []) if tag in measured]
        return listed + [tag for tag in measured if tag not in listed]

    def shown(self, value: Any, source_url: str | None) -> str:
        return ", ".join(markdown_text(str(tag)) for tag in value)


class ModelId(Kind):
    """A model's registered name: how the card names a model, only ever through the registry."""

    def check(self, value: Any, scalar: Any) -> str | tuple[str, str] | None:
        if isinstance(value, str) and is_import_path(value):
            # A card names a model only through the registry: nothing in a card is ever imported.
            last = re.split(r"[.:]", value)[-1]
            example = last if last.islower() else "resnet50"
            return (f"must be the model's registered name, not an import path: got {_written(value, scalar)}",
                    f"a card names a model only through the resfam registry: write 'ID: {example}' "
                    "(resfam.list_models() lists the names)")
        if not isinstance(value, str) or not _MODEL_ID.match(value):
            return f"must be a registered model name such as 'resnet50', got {_written(value, scalar)}"
        return None


class ImageSize(Kind):
    """An input resolution in pixels, written as text ('224')."""

    insert_style = "'"

    def check(self, value: Any, scalar: Any) -> str | None:
        number = int(value) if isinstance(value, str) and _DIGITS.match(value) else value
        if not isinstance(number, int) or isinstance(number, bool):
            return f"must be a whole number of pixels such as '224', got {_written(value, scalar)}"
        if not 0 < number <= MAX_IMAGE_SIZE:
            return f"must be between 1 and {MAX_IMAGE_SIZE} pixels, got {scalar.value}"
        return None

    def normalised(self, value: Any) -> Any:
        return int(value)

    from_code = normalised  # the config's value is the number itself

    def for_card(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_IMAGE_SIZE:
            return value
        raise ValueError(value)

    def already_says(self, claimed: Any, measured: Any) -> bool:
        return str(claimed) == str(measured)


class CropPct(Kind):
    """The fraction of the image the centre crop keeps, written as text ('0.875')."""

    insert_style = "'"

    def check(self, value: Any, scalar: Any) -> str | None:
        number = float(value) if isinstance(value, str) and _NUMERIC_STRING.match(value) else value
        if not is_number(number) or not math.isfinite(number):
            return f"must be a fraction such as '0.875', got {_written(value, scalar)}"
        if not 0 < number <= 1:
            return f"must be a fraction in (0, 1], got {scalar.value}"
        return None

    def normalised(self, value: Any) -> Any:
        return float(value)

    from_code = normalised  # the config's value is the number itself

    def for_card(self, value: Any) -> Any:
        if is_number(value) and math.isfinite(value) and 0 < value <= 1:
            return float(value)
        raise ValueError(value)

    def already_says(self, claimed: Any, measured: Any) -> bool:
        try:
            return float(claimed) == float(measured)
        except (TypeError, ValueError):
            return False


class Interpolation(Kind):
    """The resampling filter of the preprocessing, one of PIL's names."""

    def check(self, value: Any, scalar: Any) -> str | None:
        if value not in INTERPOLATIONS:
            return f"must be one of {', '.join(INTERPOLATIONS)}, got {_written(value, scalar)}"
        return None

    def for_card(self, value: Any) -> Any:
        if value in INTERPOLATIONS:
            return value
        raise ValueError(value)


class Url(Kind):
    """An http(s) URL, shown as a link named by its last path segment."""

    def check(self, value: Any, scalar: Any) -> str | None:
        if not isinstance(value, str) or not _URL.match(value):
            return f"must be an http(s) URL, got {_written(value, scalar)}"
        return None

    def for_card(self, value: Any) -> Any:
        if isinstance(value, str) and _SYNCED_URL.match(value):
            return value
        raise ValueError(value)

    def shown(self, value: Any, source_url: str | None) -> str:
        name = str(value).rstrip("/").rsplit("/", 1)[-1]
        return f"[{markdown_text(name)}]({link_target(value)})"


class Source(Text):
    """The file that registers a model, relative to the repository root, optionally with `#L<line>`; or a
    URL made by the zoo's `code_url` template. Which file it names is the verifier's question."""

    def for_card(self, value: Any) -> Any:
        if isinstance(value, str) and _SYNCED_SOURCE.match(value):
            return value
        raise ValueError(value)

    def in_card_style(self, claimed: Any, measured: Any, registered: Any) -> Any:
        """What the card should say for `registered` (`zoo.RegisteredModel`), in its form: the path, with the
        line of the registration when the card anchors a line (`resfam/models/resnet.py#L210`)."""
        if registered.code is None:
            return None
        anchored = isinstance(claimed, str) and _LINE_ANCHOR.search(claimed) is not None
        if anchored and registered.defined_at and not registered.code_url:
            return f"{registered.code}#L{registered.defined_at}"
        return registered.code

    def shown(self, value: Any, source_url: str | None) -> str:
        path = markdown_text(str(value))
        return f"[{path}]({link_target(source_url.rstrip('/') + '/' + str(value))})" if source_url else path


class Percentage(Kind):
    """A percentage such as 76.13% (or the number 76.13): an accuracy."""

    def check(self, value: Any, scalar: Any) -> str | None:
        match = _PERCENT.match(value) if isinstance(value, str) else None
        number = float(match.group(1)) if match else value
        if not is_number(number) or not math.isfinite(number):
            return f"must be a percentage such as 76.13%, got {_written(value, scalar)}"
        if not 0 <= number <= 100:
            return f"must be between 0 and 100%, got {scalar.value}"
        return None

    def number(self, value: Any) -> Any:
        return percentage_value(value)


COUNT, RATE, TEXT, TEXTS, COUNTS, TAGS_LIST, MODEL_ID = Count(), Rate(), Text(), Texts(), Counts(), Tags(), ModelId()
IMAGE_SIZE, CROP_PCT, INTERPOLATION, URL, SOURCE_PATH, PERCENTAGE = \
    ImageSize(), CropPct(), Interpolation(), Url(), Source(), Percentage()


# ---------------------------------------------------------------------------------------------
# Comparing with the code


@dataclass(frozen=True)
class Comparing:
    """One claim of a card to compare with the code's value.

    path, model: the card and the entry's Name; field: the `fields.CardField`; claim: the card's `Claim`;
    measured: the code's value as a card writes it; hint: what to run when it drifts; tolerance: in percent
    (fields compared within one); image_size: what a per-image-size figure was counted at (else None);
    vocabulary: {tag: definition} of the architecture tags; registered: the model's `zoo.RegisteredModel`.
    """

    path: str
    model: str
    field: Any
    claim: Any
    measured: Any
    hint: str
    tolerance: float | None = None
    image_size: int | None = None
    vocabulary: Mapping[str, str] | None = None
    registered: Any = None

    def finding(self, status: str, message: str, **extra: Any) -> Finding:
        return Finding(status, self.path, extra.pop("line", self.claim.line), message,
                       hint=self.hint if status == "drift" else extra.pop("hint", ""), model=self.model,
                       field=self.field.name, **extra)


@dataclass(frozen=True)
class Comparison:
    """How a field is compared with the code: `verified` when the build checks it; `described` for the
    measurement page's table; `findings` for one claim (none for a field kept as written)."""

    name: str
    verified: bool = False
    described: str = ""

    def findings(self, comparing: Comparing) -> list[Finding]:
        return []


class WithinTolerance(Comparison):
    """A count, within a relative tolerance in percent."""

    def findings(self, comparing: Comparing) -> list[Finding]:
        claimed, measured, tolerance = comparing.claim.value, comparing.measured, comparing.tolerance
        drift = (claimed - measured) / measured * 100 if measured else (0.0 if claimed == measured else None)
        within = abs(claimed - measured) * 100 <= tolerance * abs(measured)
        at = f" at {comparing.image_size} px" if comparing.image_size is not None else ""
        what = f"{comparing.model} {comparing.field.name}"
        if within:
            note = "" if claimed == measured else f", {format_percent(drift)}, tolerance {tolerance:g}%"
            return [comparing.finding("ok", f"{what}: {claimed:,} (code measures {measured:,}{at}{note})",
                                      claimed=claimed, measured=measured, drift_pct=drift)]
        return [comparing.finding("drift", f"{what}: card says {claimed:,}, code measures {measured:,}{at} "
                                           f"({format_percent(drift)}, tolerance {tolerance:g}%)",
                                  claimed=claimed, measured=measured, drift_pct=drift)]


def same_value(kind: Kind, claimed: Any, other: Any) -> bool:
    """Whether two values of `kind` stand for the same value ('224' and 224 do)."""
    return _normalised(kind, claimed) == _normalised(kind, other)


def _normalised(kind: Kind, value: Any) -> Any:
    try:
        return kind.normalised(value)
    except (TypeError, ValueError):
        return value


class Exactly(Comparison):
    """Equal to the registered default config."""

    def findings(self, comparing: Comparing) -> list[Finding]:
        claimed, registered = comparing.claim.value, comparing.measured
        what = f"{comparing.model} {comparing.field.name}"
        if same_value(comparing.field.kind, claimed, registered):
            return [comparing.finding("ok", f"{what}: {claimed} (registered default config)",
                                      claimed=claimed, measured=registered)]
        return [comparing.finding("drift", f"{what}: card says {claimed}, the registered default config says "
                                           f"{registered}", claimed=claimed, measured=registered)]


class AsSet(Comparison):
    """A list of tags, equal as a set to what the network has, both ways; a tag outside the vocabulary is an
    error of its own (nothing could check it)."""

    def findings(self, comparing: Comparing) -> list[Finding]:
        claim, measured, vocabulary = comparing.claim, comparing.measured, comparing.vocabulary or {}
        what = f"{comparing.model} {comparing.field.name}"
        claimed = list(claim.value)
        findings = []
        for tag, line in zip(claimed, claim.item_lines or [claim.line] * len(claimed), strict=False):
            if tag in vocabulary:
                continue
            close = difflib.get_close_matches(tag, list(vocabulary), n=3, cutoff=0.6)
            findings.append(comparing.finding(
                "error", f"{what}: {tag!r} is not an architecture tag"
                         + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""),
                line=line, hint=f"the tags are: {', '.join(sorted(vocabulary))} (defined on the measurement page); "
                                "a tag for a class of the zoo is declared in a vocabulary file (the plugin's "
                                "'vocabulary' setting, --vocabulary FILE)",
                claimed=tag))
        lacking = [tag for tag in claimed if tag in vocabulary and tag not in measured]
        left_out = [tag for tag in measured if tag not in claimed]
        if not lacking and not left_out:
            findings.append(comparing.finding("ok", f"{what}: {', '.join(claimed)} (the network has each, and "
                                                    "nothing else of the vocabulary)",
                                              claimed=claimed, measured=measured))
            return findings
        problems = ([f"the network has no {', '.join(lacking)}"] if lacking else []) \
            + ([f"the list leaves out {', '.join(left_out)}, which the network has"] if left_out else [])
        findings.append(comparing.finding("drift", f"{what}: {'; '.join(problems)}", claimed=claimed,
                                          measured=measured))
        return findings


class AsSource(Comparison):
    """The file (and, with a `#L<n>` anchor, the line) that registers the model."""

    def findings(self, comparing: Comparing) -> list[Finding]:
        claimed = comparing.claim.value
        expected = comparing.field.kind.in_card_style(claimed, comparing.measured, comparing.registered)
        what = f"{comparing.model} {comparing.field.name}"
        if claimed == expected:
            return [comparing.finding("ok", f"{what}: {claimed} registers the model", claimed=claimed,
                                      measured=expected)]
        return [comparing.finding("drift", f"{what}: card says {claimed}, the model is registered at {expected}",
                                  claimed=claimed, measured=expected)]


TOLERANCE = WithinTolerance("tolerance", verified=True)  # a count, within a relative tolerance (percent)
EXACT = Exactly("exact", verified=True, described="equal")  # equal to the registered default config
TAGS = AsSet("tags", verified=True, described="the same set, both ways")  # as a set, what the network has
SOURCE = AsSource("source", verified=True, described="the same file (and line)")  # the file that registers it
REPORTED = Comparison("reported", described="reported, not checked")  # cannot be checked here: shown as reported
UNCHECKED = Comparison("unchecked")  # training settings and the like: kept as written
