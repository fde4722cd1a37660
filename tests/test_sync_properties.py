"""Property-based tests of the parser and of sync (issue 6): generated cards of every shape.

- a generated card parses back to exactly the values it was written with, spans included;
- sync with any measured values gives a card that claims those values, leaves every byte outside the
  rewritten or inserted spans as it was, and a second sync plans nothing;
- the parser raises nothing but CardError on mangled cards and arbitrary text;
- end to end, against the real measurements of a few small models: `resfam-cards sync --write` of a card
  with right, rounded, wrong and missing figures in any layout gives a card that `verify` passes, whose
  figures are exactly the ones expected, with every other byte as it was; a second sync changes nothing.

Example counts follow the Hypothesis profile (HYPOTHESIS_PROFILE, see conftest.py): BASE is its
max_examples, 1000 in the default profile.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import string

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from resfam.cards import CardError, apply_edits, parse_card, plan_sync, yaml_nodes
from resfam.cards.cli import main
from resfam.cards.fields import INTERPOLATIONS
from resfam.cards.unfinished import display_name

pytestmark = pytest.mark.slow  # thousands of generated cards

PATH = "templates/models/resnet.md"
BASE = settings.default.max_examples
GENERATED = settings(max_examples=BASE)

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
    claim = entry.claim("Weights") if field == "Weights" else entry.fields.get(field)
    return None if claim is None else claim.value


def same(field: str, claimed, measured) -> bool:
    if field == "Image Size":
        return int(claimed) == measured
    if field == "Crop Pct":
        return float(claimed) == measured
    return claimed == measured


@settings(max_examples=max(1, BASE // 2))
@given(cards())
def test_generated_cards_parse_to_what_they_claim(generated):
    text, claimed = generated
    card = parse_card(PATH, text)
    assert [entry.name for entry in card.models] == list(claimed)
    for name, values in claimed.items():
        for field, value in values.items():
            assert same(field, claimed_value(card, name, field), value)
    for entry in card.models:
        for claim in [*entry.fields.values(), entry.claim("Weights"), entry.id]:
            if claim is not None and isinstance(claim.value, list):  # Architecture: the whole list
                column = claim.span[0] - text.rfind("\n", 0, claim.span[0]) - 1
                assert yaml.safe_load(" " * column + text[slice(*claim.span)]) == claim.value
            elif claim is not None:
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


def mangle(text: str, manglers) -> str:
    characters = list(text)
    for where, how, piece in manglers:
        position = int(where * len(characters))
        if how == "insert" or position >= len(characters):
            characters.insert(position, piece)
        elif how == "delete":
            del characters[position]
        else:
            characters[position] = piece
    return "".join(characters)


@GENERATED
@given(cards(), MANGLERS)
def test_mangled_cards_raise_only_card_errors(generated, manglers):
    mangled = mangle(generated[0], manglers)
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


@settings(max_examples=max(1, BASE * 3 // 10))
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


def node_tree(node: yaml.Node | None):
    """Everything the parser reads off a YAML node: kind, tag, value, style, where it starts and ends."""
    if node is None:
        return None
    # of the end, the index only: that is all the parser reads (at the end of a text with no final line
    # break, libyaml puts the end mark's line and column on the line after)
    marks = [(node.start_mark.index, node.start_mark.line, node.start_mark.column), node.end_mark.index]
    if isinstance(node, yaml.ScalarNode):
        return ["scalar", node.tag, node.value, node.style, marks]
    children = ([node_tree(child) for child in node.value] if isinstance(node, yaml.SequenceNode)
                else [(node_tree(key), node_tree(value)) for key, value in node.value])
    return [type(node).__name__, node.tag, bool(node.flow_style), marks, children]  # block: None or False


def composed_by_pyyaml(source: str):
    loader = yaml_nodes.CheckingLoader(source)
    try:
        root = loader.get_single_node()
    except (yaml.YAMLError, RecursionError):
        return "refused"
    return node_tree(root), [(type(event).__name__, event.start_mark.index) for event in loader.refused]


def assert_libyaml_composes_what_pyyaml_composes(source: str) -> None:
    """libyaml's parser (the fast path) must give the tree PyYAML's gives wherever it is used."""
    composed = yaml_nodes.compose_with_libyaml(source)
    if composed is not None:  # else PyYAML's parser decides anyway
        root, refused = composed
        assert composed_by_pyyaml(source) == (
            node_tree(root), [(type(event).__name__, event.start_mark.index) for event in refused])


@GENERATED
@given(cards(), MANGLERS)
def test_libyaml_and_pyyaml_compose_the_same_nodes_of_mangled_cards(generated, manglers):
    mangled = mangle(generated[0], manglers)
    assert_libyaml_composes_what_pyyaml_composes(mangled.split("<!--", 1)[-1].split("-->", 1)[0])


YAML_PIECES = st.lists(st.sampled_from(list(" \n:-'\"#{}[],&*!|>?%@`\\0123456789abé.") +
                                      ["\r\n", "- ", ": ", "  ", "\n  ", "!!str ", "&a ", "*a "]),
                       max_size=80).map("".join)


@settings(max_examples=max(1, BASE * 3 // 10))
@given(YAML_PIECES)
def test_libyaml_and_pyyaml_compose_the_same_nodes_of_yaml_like_text(text):
    assert_libyaml_composes_what_pyyaml_composes("Models:\n" + text + "\n")


# ---------------------------------------------------------------------------------------------
# End to end: `resfam-cards sync --write`, then `verify`, against the real measurements

MODELS = {"resnet": ("resnet18", "resnet26"), "resnest": ("resnest14d",)}  # small, quick to measure
WRONG_IMAGE_SIZE = 256  # the one wrong size cards claim: the cache holds FLOPs there too
SYNCED = ("Layers", "Parameters", "FLOPs", "Activations", "File Size", "Architecture", "Image Size", "Crop Pct",
          "Interpolation", "Weights", "Code")
ENTRY_LEVEL = ("Weights", "Code")
# Tags of the vocabulary that some of MODELS lack: what a wrong Architecture list claims
OTHER_TAGS = ("Softmax", "Grouped Convolution", "Split Attention", "Blur Pooling", "Average Pooling", "Residual Block")
SNIPPETS = "```python\nimport resfam\n\nmodel = resfam.create_model('{{ model_name }}')\n```\n"


def cards_command(*args: str) -> tuple[int, str, str]:
    """`resfam-cards ARGS -q` in this process: (exit code, stdout, stderr). Not conftest's `cli` fixture: a
    function-scoped fixture (capsys) is not reset between the examples of a Hypothesis test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "-q"])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def generated_cards_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated-cards")
    (root / "templates" / "models").mkdir(parents=True)
    (root / "templates" / "code_snippets.md").write_text(SNIPPETS, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def zoo(generated_cards_project, shared_cache):
    """{model ID: {field: the code's value}}, read by `verify --json` from a card that claims the wrong
    image size for every model, so that the cache holds each model at both sizes before any example runs:
    no example measures anything."""
    measured = {}
    for family, models in MODELS.items():
        card = generated_cards_project / "templates" / "models" / f"{family}.md"
        card.write_text("<!--\nModels:\n" + "".join(
            f"- Name: {model}\n  Metadata:\n    Image Size: '{WRONG_IMAGE_SIZE}'\n" for model in models) + "-->\n",
            encoding="utf-8")
        report = generated_cards_project / "report.json"
        code, out, err = cards_command("verify", str(card), "--cache-dir", str(shared_cache), "--json", str(report))
        assert code == 1, out + err  # every Image Size drifts, nothing else is claimed
        measured.update(json.loads(report.read_text(encoding="utf-8"))["cards"][0]["measured"])
    assert set(measured) == {model for models in MODELS.values() for model in models}
    assert {values["Image Size"] for values in measured.values()} == {224}
    return measured


@st.composite
def claim(draw, field: str, truth, model: str):
    """(the value as written, the value a correct sync leaves there) for `field` of `model`."""
    quote = draw(st.sampled_from(["", "'", '"']))
    if field in ("Parameters", "FLOPs", "Activations", "File Size"):
        kind = draw(st.sampled_from(["right", "rounded", "wrong"]))
        if kind == "right":
            return str(truth), truth
        if kind == "rounded":  # 4 significant figures: within every tolerance, so kept as written
            rounded = int(float(f"{truth:.4g}"))
            return str(rounded), rounded
        wrong = draw(st.integers(0, 10**13).filter(lambda value: abs(value - truth) * 20 > truth))
        return str(wrong), truth
    if field == "Layers":
        return str(draw(st.sampled_from([truth, truth, truth + 1, 3 * truth]))), truth
    if field == "Image Size":
        return f"{quote}{draw(st.sampled_from([truth, WRONG_IMAGE_SIZE]))}{quote}", truth
    if field == "Crop Pct":
        written = draw(st.sampled_from([repr(truth), "0.9", "0.95"]))
        return f"{quote}{written}{quote}", float(written) if float(written) == truth else truth
    if field == "Interpolation":
        return f"{quote}{draw(st.sampled_from(INTERPOLATIONS))}{quote}", truth
    if field == "Architecture":  # in flow style: block lists are the other tests' business
        listed = draw(st.permutations(truth))
        if draw(st.booleans()):  # wrong: some tags left out, some the network lacks added
            listed = listed[:draw(st.integers(0, len(listed)))]
            listed += draw(st.lists(st.sampled_from([t for t in OTHER_TAGS if t not in truth]), unique=True))
        listed = listed or [truth[0]]
        kept = [tag for tag in listed if tag in truth]
        return "[" + ", ".join(listed) + "]", kept + [tag for tag in truth if tag not in kept]
    if field == "Code":
        written = draw(st.sampled_from([truth, "resfam/models/resnest.py", "resfam/models/gone.py"]))
        return f"{quote}{written}{quote}", truth
    written = draw(st.sampled_from([truth, f"https://example.org/weights/{model}-{draw(st.integers(0, 99))}.pth"]))
    return f"{quote}{written}{quote}", truth


@st.composite
def measured_cards(draw, family: str, zoo: dict, fill: bool):
    """(card text, {model Name: {field: the value the card claims after a sync}}): the models of `family`
    in any order, each with any subset of its figures, each right, rounded, wrong or left out, in any
    layout (indentation, key order, quoting, comments, line endings; flow-style Metadata unless `fill`,
    whose insertion into a flow mapping the plan-level test above covers)."""
    indent = draw(st.sampled_from([2, 4]))
    sequence_indent = draw(st.sampled_from([0, indent]))
    seq, pad = " " * sequence_indent, " " * indent
    key = seq + pad  # the column of an entry's keys
    models = draw(st.permutations(MODELS[family]))
    models = models[:draw(st.integers(1, len(models)))]
    lines = ["Type: model-index", "Models:"]
    expected: dict[str, dict[str, object]] = {}
    for model in models:
        truth = zoo[model]
        name = draw(st.sampled_from([model, model.upper()]))  # a Name other than the ID needs the ID
        fields = draw(st.permutations(SYNCED))
        fields = [field for field in fields if draw(st.booleans())]
        metadata, finals = [], {}
        if name != model or draw(st.booleans()):
            metadata.append(("ID", model))
        entry_level = {}
        for field in fields:
            written, final = draw(claim(field, truth[field], model))
            finals[field] = final
            if field in ENTRY_LEVEL:
                entry_level[field] = written
            else:
                metadata.append((field, written))
        claimed_size = next((value for field, value in metadata if field == "Image Size"), None)
        if claimed_size is not None and int(claimed_size.strip("'\"")) != truth["Image Size"]:
            for sized in ("FLOPs", "Activations"):  # counted at the wrong size: rewritten with the size
                if sized in finals:
                    finals[sized] = truth[sized]
        if fill:
            finals = {field: finals.get(field, truth[field]) for field in SYNCED}
        expected[name] = finals
        comment = draw(st.sampled_from(["", "  # measured"]))
        # a finished card (named collection, accuracies), so that the strict checks have nothing to say
        entry = {"Name": [f"Name: {name}"], "In Collection": [f"In Collection: {display_name(family)}"],
                 "Results": ["Results:", f"{seq}- Task: Image Classification", f"{seq}  Dataset: ImageNet",
                             f"{seq}  Metrics:", f"{seq}    Top 1 Accuracy: 70.1%"]}
        for field, written in entry_level.items():
            entry[field] = [f"{field}: {written}{comment}"]
        if metadata and not fill and draw(st.booleans()):
            entry["Metadata"] = ["Metadata: {" + ", ".join(f"{field}: {value}" for field, value in metadata) + "}"]
        elif metadata or draw(st.booleans()):
            entry["Metadata"] = ["Metadata:"] + [f"{pad}{field}: {value}{comment}" for field, value in metadata]
        order = ["Name"] + [k for k in draw(st.permutations(sorted(entry))) if k != "Name"]
        written = [line for k in order for line in entry[k]]
        lines += [f"{seq}-{' ' * (indent - 1)}{written[0]}"] + [f"{key}{line}" for line in written[1:]]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = (f"# {{{{ collection }}}}\n\nThe {family} family, in {{{{ model_ids|length }}}} model(s).\n\n"
            "{% include 'code_snippets.md' %}\n\n<!--\n" + "\n".join(lines) + "\n-->\n")
    return text.replace("\n", newline), expected


def masked(text: str) -> str:
    """`text` with the source of every figure sync may rewrite replaced by a NUL: what must not change."""
    card = parse_card(PATH, text)
    spans = sorted(claim.span for model in card.models for claim in (model.claim(field) for field in SYNCED) if claim)
    for start, end in reversed(spans):
        text = text[:start] + "\0" + text[end:]
    return text


INSERTED_LINE = re.compile(r" *(Metadata:|Architecture:|\0|(Layers|Parameters|FLOPs|Activations|File Size|Image Size|"
                           r"Crop Pct|Interpolation|Weights|Code): \0)\r?\n")


@settings(max_examples=max(1, BASE * 3 // 10))
@given(data=st.data())
def test_sync_write_then_verify_passes_against_the_real_measurements(generated_cards_project, zoo, shared_cache, data):
    fill = data.draw(st.booleans(), label="--fill")
    family = data.draw(st.sampled_from(sorted(MODELS)), label="family")
    text, expected = data.draw(measured_cards(family, zoo, fill), label="card")
    card = generated_cards_project / "templates" / "models" / f"{family}.md"
    card.write_bytes(text.encode("utf-8"))
    options = [str(card), "--cache-dir", str(shared_cache)] + (["--fill"] if fill else [])

    code, out, err = cards_command("sync", "--write", *options)
    assert code == 0, out + err
    synced = card.read_bytes().decode("utf-8")
    code, out, err = cards_command("verify", *options[:3])
    assert code == 0 and out.startswith("ok: 1 card, ") and "(0 models measured" in out, out + err
    assert cards_command("sync", *options) == (0, "", "nothing to change: 1 card(s) match the code\n")
    assert card.read_bytes().decode("utf-8") == synced

    # every figure is exactly what it should be: a rounded one kept, a wrong one corrected, a missing one
    # added with --fill only
    result = parse_card(PATH, synced)
    for model in result.models:
        claims = {field: model.claim(field) for field in SYNCED if model.claim(field) is not None}
        assert set(claims) == set(expected[model.name]), model.name
        for field, claim in claims.items():
            value = claim.value
            value = int(value) if field == "Image Size" else float(value) if field == "Crop Pct" else value
            assert value == expected[model.name][field], (model.name, field)

    # and every other byte is as it was: inserted lines aside, only figures changed
    before, after = masked(text), masked(synced)
    if not fill:
        assert after == before
    else:
        remaining = iter(after.splitlines(keepends=True))
        for line in before.splitlines(keepends=True):
            for candidate in remaining:
                if candidate == line:
                    break
                assert INSERTED_LINE.fullmatch(candidate), candidate
            else:
                raise AssertionError(f"line lost: {line!r}")
        assert all(INSERTED_LINE.fullmatch(line) for line in remaining)
