"""Property-based tests of the parser and of sync (issue 6): generated cards of every shape.

- a generated card parses back to exactly the values it was written with, spans included;
- sync with any measured values gives a card that claims those values, leaves every byte outside the
  rewritten or inserted spans as it was, and a second sync plans nothing;
- the parser raises nothing but CardError on mangled cards and arbitrary text.
"""
from __future__ import annotations

import string

import yaml

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resfam.cards import CardError, apply_edits, parse_card, plan_sync
from resfam.cards.model_index import INTERPOLATIONS

PATH = "templates/models/resnet.md"
GENERATED = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COUNT_FIELDS = ("Parameters", "FLOPs", "File Size", "Layers")
# Names YAML reads as text (not `no`, `on`, `null`: the parser rejects those, as tested elsewhere).
model_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda name: isinstance(yaml.safe_load(name), str))
counts = st.integers(min_value=0, max_value=10**15)
image_sizes = st.integers(min_value=1, max_value=4096)
crop_pcts = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)
interpolations = st.sampled_from(INTERPOLATIONS)
urls = st.from_regex(r"https://[a-z]{1,8}\.org/[A-Za-z0-9_\-]{1,12}(\.pth|,v[0-9]\.pth|#x)?", fullmatch=True)
quotes = st.sampled_from(["", "'", '"'])
prose = st.text(alphabet=string.ascii_letters + string.digits + " #*_`.,:{}%\n-", max_size=200).filter(
    lambda text: "<!--" not in text and "-->" not in text)


def scalar(value, quote: str) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return f"{quote}{text}{quote}"


@st.composite
def model_entries(draw, name: str, indent: int, sequence_indent: int):
    """(lines of one `Models` entry, the values it claims as {field: value})."""
    pad, seq = " " * indent, " " * sequence_indent
    key = seq + pad  # the column of the entry's keys: `-` then indent - 1 spaces
    claims: dict[str, object] = {}
    metadata: list[str] = []
    fields = draw(st.lists(st.sampled_from(COUNT_FIELDS + ("Image Size", "Crop Pct", "Interpolation", "ID")),
                           unique=True, max_size=8))
    for field in fields:
        if field in COUNT_FIELDS:
            value = draw(counts)
            text = str(value)
        elif field == "Image Size":
            value = draw(image_sizes)
            text = scalar(value, draw(quotes))
        elif field == "Crop Pct":
            value = draw(crop_pcts)
            text = scalar(value, draw(quotes))
        elif field == "Interpolation":
            value = draw(interpolations)
            text = scalar(value, draw(quotes))
        else:
            value = name
            text = name
        comment = draw(st.sampled_from(["", "  # checked", " #"]))
        metadata.append(f"{key}{pad}{field}: {text}{comment}")
        if field != "ID":
            claims[field] = value
    if draw(st.booleans()):
        metadata.append(f"{key}{pad}Architecture:")
        metadata += [f"{key}{pad}{seq}- {item}" for item in draw(st.lists(st.sampled_from(
            ["Convolution", "ReLU", "Residual Connection"]), min_size=1, max_size=3))]
    if draw(st.booleans()):
        metadata.append(f"{key}{pad}Training Resources: 8x V100 GPUs")
    lines = [f"{seq}-{' ' * (indent - 1)}Name: {name}"]
    metadata_written = False
    for entry_key in draw(st.permutations(["In Collection", "Metadata", "Weights", "Results", "Code"])):
        if not draw(st.booleans()):
            continue
        if entry_key == "In Collection":
            lines.append(f"{key}In Collection: ResNet")
        elif entry_key == "Metadata":
            lines += [f"{key}Metadata:"] + metadata
            metadata_written = True
        elif entry_key == "Weights":
            value = draw(urls)
            quote = draw(quotes) if "," not in value and "#" not in value else "'"
            lines.append(f"{key}Weights: {scalar(value, quote)}")
            claims["Weights"] = value
        elif entry_key == "Results":
            lines += [f"{key}Results:", f"{key}{seq}- Task: Image Classification",
                      f"{key}{seq}  Dataset: ImageNet", f"{key}{seq}  Metrics:",
                      f"{key}{seq}    Top 1 Accuracy: 76.13%"]
        else:
            lines.append(f"{key}Code: https://github.com/example/resfam")
    if not metadata_written:
        claims = {field: value for field, value in claims.items() if field == "Weights"}
    return lines, claims


@st.composite
def cards(draw):
    """(template text, {model name: claimed values})."""
    indent = draw(st.sampled_from([2, 4]))
    sequence_indent = draw(st.sampled_from([0, indent]))
    names = draw(st.lists(model_names, min_size=1, max_size=4, unique=True))
    block = ["Type: model-index", "Collections:", f"{' ' * sequence_indent}- Name: ResNet", "Models:"]
    claimed = {}
    for name in names:
        lines, values = draw(model_entries(name, indent, sequence_indent))
        block += lines
        claimed[name] = values
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    closing = draw(st.sampled_from(["\n-->", " -->", "\n  -->"]))
    text = (draw(prose) + "\n\n{% include 'code_snippets.md' %}\n\n<!--\n" + "\n".join(block) + closing
            + "\n" + draw(prose))
    return text.replace("\r\n", "\n").replace("\n", newline), claimed


@st.composite
def measurements(draw, names: list[str]):
    """Measured values for some fields of some models."""
    fields = st.fixed_dictionaries({}, optional={
        "Parameters": counts, "FLOPs": counts, "File Size": counts, "Layers": st.integers(0, 1000),
        "Image Size": image_sizes, "Crop Pct": crop_pcts, "Interpolation": interpolations, "Weights": urls})
    return {name: draw(fields) for name in names if draw(st.booleans())}


def claimed_value(card, name: str, field: str):
    entry = card.model(name)
    claim = entry.weights if field == "Weights" else entry.fields.get(field)
    return None if claim is None else claim.value


def same(field: str, claimed, measured) -> bool:
    if field == "Image Size":
        return int(claimed) == measured
    if field == "Crop Pct":
        return float(claimed) == measured
    return claimed == measured


@settings(GENERATED, max_examples=500)
@given(cards())
def test_generated_cards_parse_to_what_they_claim(generated):
    text, claimed = generated
    card = parse_card(PATH, text)
    assert [entry.name for entry in card.models] == list(claimed)
    for name, values in claimed.items():
        for field, value in values.items():
            assert same(field, claimed_value(card, name, field), value)
    for entry in card.models:
        for claim in [*entry.fields.values(), entry.weights, entry.id]:
            if claim is not None:
                assert text[slice(*claim.span)].strip("'\"") == (
                    repr(claim.value) if isinstance(claim.value, float) else str(claim.value))


@GENERATED
@given(st.data())
def test_sync_writes_the_measurement_and_nothing_else(data):
    text, _ = data.draw(cards())
    card = parse_card(PATH, text)
    measured = data.draw(measurements([entry.name for entry in card.models]))
    fill_missing = data.draw(st.booleans())

    edits = plan_sync(card, measured, fill_missing=fill_missing)
    result = apply_edits(text, edits)

    # Every byte outside the edited spans is unchanged.
    cursor, shift = 0, 0
    for edit in sorted(edits, key=lambda e: e.span):
        start, end = edit.span
        assert result[cursor + shift:start + shift] == text[cursor:start]
        assert text[start:end] == edit.old
        assert result[start + shift:start + shift + len(edit.new)] == edit.new
        shift += len(edit.new) - (end - start)
        cursor = end
    assert result[cursor + shift:] == text[cursor:]

    # The result claims the measurement, and a second sync changes nothing.
    synced = parse_card(PATH, result)
    for name, values in measured.items():
        for field, value in values.items():
            before = claimed_value(card, name, field)
            after = claimed_value(synced, name, field)
            if before is not None or fill_missing:
                assert same(field, after, value)
            else:
                assert after is None
    assert plan_sync(synced, measured, fill_missing=fill_missing) == []


MANGLERS = st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["insert", "delete", "replace"]),
                              st.sampled_from(list(" \n\t:-'\"#{}[],&*!|>?%@`\\~0123456789abc.") +
                                              ["\r\n", "<!--", "-->", "\x00", "\u2028", "é", "!!python/object ",
                                               "{{", "    ", "- ", "&a ", "*a "])),
                    min_size=1, max_size=8)


@GENERATED
@given(cards(), MANGLERS)
def test_mangled_cards_raise_only_card_errors(generated, manglers):
    text, _ = generated
    characters = list(text)
    for where, how, piece in manglers:
        position = int(where * len(characters))
        if how == "insert" or position >= len(characters):
            characters.insert(position, piece)
        elif how == "delete":
            del characters[position]
        else:
            characters[position] = piece
    mangled = "".join(characters)
    try:
        card = parse_card(PATH, mangled)
    except CardError as error:
        assert error.findings and all(f.status == "error" and f.path == PATH for f in error.findings)
        return
    names = [entry.name for entry in card.models]
    measured = {name: {"Parameters": 1, "Layers": 2, "Crop Pct": 0.5, "Weights": "https://x.org/w.pth"}
                for name in names}
    result = apply_edits(mangled, plan_sync(card, measured, fill_missing=True))
    assert plan_sync(parse_card(PATH, result), measured, fill_missing=True) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_raises_only_card_errors(text):
    try:
        parse_card(PATH, "<!--\nModels:\n" + text + "\n-->\n")
    except CardError:
        pass
    try:
        parse_card(PATH, text)
    except CardError:
        pass
