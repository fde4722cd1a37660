"""Figures a card's prose writes out by hand instead of citing the measurement.

The tables of a card are measured on every build; a sentence such as "resnet50 has 23.0 million
parameters" is not, and goes stale when the model changes. `literal_figures` finds, in the template's
own text, a number followed by a unit of a figure the card verifies (the units are those of each count's
row of the table of fields, `kinds.Prose`):

    parameters / params              Parameters     e.g. '25.6 million parameters', '25.6M params'
    FLOPs, GFLOPs, MACs, GMACs, ...  FLOPs          e.g. 'about 1 GFLOP more', '4.1 GMACs'
    activations                      Activations    e.g. '11.1M activations'
    MB, KB, GB, MiB, bytes           File Size      e.g. '102.5 MB'
    layers, -layer                   Layers         e.g. '50 layers', 'the 50-layer models'

and reports each as a warning at its file:line, saying what the code measures (for the model the
sentence names, when it names one) and the template expression to write instead. So is a stage layout
written out by hand: three or more whole numbers in a list followed, within three words, by `blocks`,
`channels` or `widths` ("stacks 3, 8, 36, 3 blocks", "widths [256, 512, 1024, 2048]"): write
`{{ models.ID.blocks | join(', ') }}` (or `.widths`, `.inner_widths`, `.stem_widths`) instead. The rule is narrow
on purpose: a number must be followed by one of these units (an adjective such as 'more' may sit
between), so years, kernel sizes ('3x3'), strides, channel counts, epochs and citations never trip it;
nor does anything that is not prose: Jinja tags and expressions (a cited figure), code (fenced or
inline), HTML comments (the model-index) and URLs.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .card_file import LINE_BREAK
from .claims import Card
from .fields import FIELDS
from .findings import Finding

_NUMBER = r"(?<![\w.,])(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\w.]*\d)"
_SCALE = r"(?:[ \t]?(?P<scale>[kKMGT]|thousand|million|billion)(?![A-Za-z]))?"
_BETWEEN = r"[ \t-]*(?:(?:more|fewer|less|extra|additional|weighted)[ \t]+)?"
# The fields whose figures prose may write out by hand: the counts the table says how prose writes.
_WRITTEN = tuple(field for field in FIELDS if field.kind.prose is not None and field.cited)
_FIGURE = re.compile(_NUMBER + _SCALE + _BETWEEN + r"(?P<unit>" + "|".join(
    f"(?P<field{index}>{field.kind.prose.units})" for index, field in enumerate(_WRITTEN)) + r")(?![\w-])",
    re.IGNORECASE)

# Text that is not prose, blanked before the figures are looked for (offsets and lines kept).
_NOT_PROSE = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}"  # a raw block
    r"|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}"  # Jinja: a cited figure is an expression
    r"|<!--.*?(?:-->|\Z)"  # HTML comments, the model-index among them
    r"|^[ \t]*(?P<fence>`{3,}|~{3,}).*?(?:^[ \t]*(?P=fence)[ \t]*$|\Z)"  # fenced code
    r"|(?P<ticks>`+).+?(?P=ticks)"  # inline code
    r"|https?://\S+",
    re.DOTALL | re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n[ \t]*\n")

# A stage layout written out by hand: three or more whole numbers in a list ("3, 8, 36, 3",
# "3-4-6-3", "[64, 128, 256, 512]", "3, 4, 6 and 3"), then, within a few words, what they count.
_STAGE_LIST = re.compile(
    r"(?<![\w.,-])\[?(?P<numbers>\d+(?:(?:[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+|-)\d+){2,})\]?(?![\w.-]*\d)"
    r"(?P<between>[ \t]*(?:[A-Za-z()-]+[ \t]+){0,3}?)(?P<kind>blocks?|channels?|widths?)(?![\w-])", re.IGNORECASE)
# what the numbers count -> the stage layouts of the template's `models.ID` they may be (render.py)
_STAGE_FACTS = {"block": ("blocks",), "channel": ("widths", "inner_widths", "stem_widths"),
                "width": ("widths", "inner_widths", "stem_widths")}

PLACEHOLDER_ID = "ID"  # the model an expression names when the card has none


def literal_figures(card: Card, values: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """A warning for every figure `card`'s prose writes as a literal number with a verified unit.

    values: {model ID: its template values (`render.card_context`)}, to say what the code measures.
    """
    text = card.text
    prose = _NOT_PROSE.sub(_blank, text)
    names = sorted(set(values) | {model.model_id for model in card.models}, key=len, reverse=True)
    mention = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])") if names else None
    findings = []
    for match in _FIGURE.finditer(prose):
        field = next(field for index, field in enumerate(_WRITTEN) if match.group(f"field{index}"))
        key = field.measured_from[1]  # its name in the template's `models.ID` (render.py)
        model_id = _named_model(text, match, mention)
        expression = field.kind.prose.expression(
            _reference(model_id or (card.models[0].model_id if card.models else PLACEHOLDER_ID)), key,
            match.group("number"), (match.group("scale") or "").lower(), match.group("unit"))
        literal = " ".join(match.group().split())
        if model_id is not None and model_id in values:
            measured = values[model_id][key]
            what = f"the code measures {model_id} {field.name}: {field.kind.prose.measured(measured, values[model_id])}"
        else:
            measured = None
            what = "the code measures this figure for each model; the sentence names no model of this card"
        findings.append(Finding(
            "warning", card.path, len(LINE_BREAK.findall(text, 0, match.start())) + 1,
            f"the prose writes {literal!r} as a literal figure, which the build does not check; {what}",
            hint=f"write {expression} instead (the template's variables: resfam/cards/render.py)",
            model=_model_name(card, model_id), field=field.name, claimed=literal, measured=measured, strict=True))
    return findings + _stage_lists(card, values, prose, mention)


def _stage_lists(card: Card, values: Mapping[str, Mapping[str, Any]], prose: str,
                 mention: re.Pattern | None) -> list[Finding]:
    """A warning for every stage layout the prose writes out by hand (blocks per stage, stage widths)."""
    text = card.text
    findings = []
    for match in _STAGE_LIST.finditer(prose):
        numbers = [int(number) for number in re.findall(r"\d+", match.group("numbers"))]
        kind = match.group("kind").lower().rstrip("s")
        model_id = _named_model(text, match, mention) or (card.models[0].model_id if card.models else PLACEHOLDER_ID)
        model_values = values.get(model_id, {})
        # the layout the numbers stand for: the one they equal, else the first of their kind
        names = _STAGE_FACTS[kind]
        name = next((name for name in names if model_values.get(name) == numbers), names[0])
        reference = _reference(model_id)
        literal = " ".join(match.group().split())
        measured = model_values.get(name)
        what = (f"the code measures {model_id} {name.replace('_', ' ')}: {', '.join(map(str, measured))}"
                if measured is not None else "the code measures the stage layout of each model")
        findings.append(Finding(
            "warning", card.path, len(LINE_BREAK.findall(text, 0, match.start())) + 1,
            f"the prose writes the stage layout {literal!r} by hand, which the build does not check; {what}",
            hint=f"write {{{{ {reference}.{name} | join(', ') }}}} instead (the template's variables: "
                 "resfam/cards/render.py)",
            model=_model_name(card, model_id), claimed=numbers, measured=measured, strict=True))
    return findings


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\r\n\x85\u2028\u2029]", " ", match.group())


def _named_model(text: str, figure: re.Match, mention: re.Pattern | None) -> str | None:
    """The model the figure's sentence is about: the last one named before the figure, else the first
    one after it (inline code included: models are usually written `resnet50`)."""
    if mention is None:
        return None
    start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, figure.start())), default=0)
    end = next((m.start() for m in _SENTENCE_END.finditer(text, figure.end())), len(text))
    before = [m.group() for m in mention.finditer(text, start, figure.start())]
    if before:
        return before[-1]
    after = mention.search(text, figure.end(), end)
    return after.group() if after else None


def _model_name(card: Card, model_id: str | None) -> str | None:
    return next((model.name for model in card.models if model.model_id == model_id), model_id)


def _reference(model_id: str) -> str:
    """How a template names the model's values: `models.resnet50`, or `models['resnet50.tv']`."""
    return f"models.{model_id}" if re.fullmatch(r"[A-Za-z_]\w*", model_id) else f"models[{model_id!r}]"
