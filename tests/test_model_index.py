"""The model-index parser: the Card it builds from a template, and the exact report for bad input."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from resfam.cards import Card, CardError, Claim, model_index, parse_card
from resfam.cards.model_index import MAX_CARD_BYTES, family_of

CARDS = Path(__file__).parent / "cards"
RESNET_CARD = CARDS / "models" / "resnet.md"
PATH = "templates/models/resnet.md"

# The block's YAML starts on line 4; the first model's Name is line 6 and its Metadata fields line 8 on.
HEAD = "# T\n\n<!--\nType: model-index\nModels:\n"


def model(metadata: str = "    Parameters: 1\n", extra: str = "") -> str:
    """A one-model card whose Metadata (indented 4) is `metadata`; `extra` follows at model level."""
    return HEAD + "- Name: resnet50\n  Metadata:\n" + metadata + extra + "-->\n"


def errors_of(text: str, path: str = PATH) -> list[str]:
    with pytest.raises(CardError) as raised:
        parse_card(path, text)
    assert all(finding.status == "error" for finding in raised.value.findings)
    return [finding.format() for finding in raised.value.findings]


# ---------------------------------------------------------------------------------------------
# A good card


@pytest.fixture(scope="module")
def card() -> Card:
    return parse_card(str(RESNET_CARD))


def test_card_summary(card):
    assert card.family == "resnet"
    assert card.collection == "ResNet"
    assert [m.name for m in card.models] == ["resnet18", "resnet50"]
    assert (card.block_start_line, card.block_end_line) == (16, 64)
    assert card.warnings == []
    assert card.text == RESNET_CARD.read_text()
    assert card.raw["Collections"][0]["Paper"]["Title"] == "Deep Residual Learning for Image Recognition"


def test_claims_carry_value_line_and_exact_span(card):
    resnet18 = card.model("resnet18")
    assert resnet18.line == 24 and resnet18.metadata_line == 26
    assert resnet18.id.value == "resnet18" and resnet18.id.line == 35
    parameters = resnet18.fields["Parameters"]
    assert (parameters.value, parameters.line, parameters.style) == (11689512, 28, None)
    assert card.text[slice(*parameters.span)] == "11689512"
    crop = resnet18.fields["Crop Pct"]
    assert (crop.value, crop.line, crop.style) == ("0.875", 36, "'")
    assert card.text[slice(*crop.span)] == "'0.875'"
    assert resnet18.claim("Weights").value == "https://download.pytorch.org/models/resnet18-5c106cde.pth"
    assert resnet18.claim("Weights").line == 40
    assert {k: (c.value, c.line) for k, c in resnet18.results.items()} == {
        "Top 1 Accuracy": ("69.74%", 45), "Top 5 Accuracy": ("89.09%", 46)}


def test_every_span_holds_the_source_of_its_value(card):
    for entry in card.models:
        claims = list(entry.fields.values()) + list(entry.results.values()) + [entry.id, entry.claim("Weights")]
        for claim in claims:
            source = card.text[slice(*claim.span)]
            if isinstance(claim.value, list):  # a block list: its items, one '- ' line each
                assert [line.strip().removeprefix("- ") for line in source.splitlines()] == claim.value
            else:
                assert source.strip("'") == str(claim.value)
            assert card.text.count("\n", 0, claim.span[0]) + 1 == claim.line


def test_fields_hold_metadata_scalars_and_the_architecture_list_but_not_id_or_other_lists(card):
    assert list(card.model("resnet50").fields) == [
        "FLOPs", "Parameters", "Layers", "Crop Pct", "Image Size", "Interpolation"]
    assert card.model("resnet18").fields["Architecture"].value == ["Convolution", "Residual Connection"]
    assert card.model("resnet18").raw["Metadata"]["Architecture"] == ["Convolution", "Residual Connection"]
    assert "Tasks" not in card.model("resnet18").fields and "Tasks" in card.model("resnet18").raw["Metadata"]


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml")
def test_the_committed_cards_are_parsed_by_libyaml(monkeypatch):
    """libyaml's parser is the fast path (tests/test_sync_properties.py checks it reads what PyYAML
    reads); PyYAML's own is only for what libyaml refuses or reads differently."""
    def python_parser(source):
        raise AssertionError("parsed by PyYAML's parser")

    monkeypatch.setattr(model_index, "CheckingLoader", python_parser)
    templates = Path(__file__).parent.parent / "templates" / "models"
    for path in sorted(templates.glob("*.md")):
        assert parse_card(str(path)).models


def test_reads_from_disk_with_path_as_given(tmp_path):
    target = tmp_path / "resnet-d.md"
    target.write_bytes(RESNET_CARD.read_bytes())
    card = parse_card(target)
    assert card.path == str(target) and card.family == "resnet-d"
    assert family_of("templates/models/res2net.md") == "res2net"


def test_block_on_the_comment_line_and_crlf_line_endings():
    text = "# T\r\n\r\n<!-- Type: model-index\r\nModels:\r\n- Name: a\r\n  Metadata:\r\n    Layers: 18\r\n-->\r\n"
    card = parse_card(PATH, text)
    layers = card.models[0].fields["Layers"]
    assert (layers.value, layers.line, text[slice(*layers.span)]) == (18, 7, "18")
    assert (card.block_start_line, card.block_end_line) == (3, 8)


def test_collection_falls_back_to_in_collection_then_family():
    text = "<!--\nModels:\n- Name: a\n  In Collection: ResNet-D\n-->\n"
    assert parse_card("templates/models/resnet-d.md", text).collection == "ResNet-D"
    assert parse_card("templates/models/resnet-d.md", "<!--\nModels:\n- Name: a\n-->\n").collection == "resnet-d"


def test_other_html_comments_are_not_blocks():
    text = "<!-- a note -->\n" + model() + "<!-- another: note -->\n"
    assert [m.name for m in parse_card(PATH, text).models] == ["resnet50"]


def test_results_prefer_imagenet():
    extra = ("  Results:\n  - Task: Image Classification\n    Dataset: ImageNet-V2\n    Metrics:\n"
             "      Top 1 Accuracy: 60%\n  - Task: Image Classification\n    Dataset: ImageNet\n"
             "    Metrics:\n      Top 1 Accuracy: 76.13%\n")
    card = parse_card(PATH, model(extra=extra))
    assert card.models[0].results["Top 1 Accuracy"].value == "76.13%"


def test_model_id_falls_back_to_name():
    card = parse_card(PATH, model("    ID: resnet50d\n"))
    assert card.models[0].model_id == "resnet50d"
    assert parse_card(PATH, model()).models[0].model_id == "resnet50"


# ---------------------------------------------------------------------------------------------
# Unknown keys: kept, and reported as warnings


def test_unknown_keys_are_kept_and_warned_about():
    card = parse_card(PATH, model("    Paramters: 1\n    Parameters: 2\n", "  Foo: bar\n"))
    assert [w.format() for w in card.warnings] == [
        f"{PATH}:8: warning: unknown key 'Paramters' in the Metadata of resnet50\n"
        "    hint: did you mean 'Parameters'?",
        f"{PATH}:10: warning: unknown key 'Foo' in resnet50\n"
        "    hint: it is kept as written and not checked",
    ]
    entry = card.models[0]
    assert entry.fields["Paramters"].value == 1 and entry.fields["Parameters"].value == 2
    assert entry.raw["Foo"] == "bar"


def test_in_collection_not_in_collections_is_an_error():
    text = "<!--\nCollections:\n- Name: ResNet\nModels:\n- Name: a\n  In Collection: ResNt\n-->\n"
    with pytest.raises(CardError) as raised:
        parse_card(PATH, text)
    assert [f.format() for f in raised.value.findings] == [
        f"{PATH}:5: error: a is 'In Collection' 'ResNt', which the 'Collections' list does not define\n"
        "    hint: use one of: ResNet"]


def test_a_collection_no_model_is_in_is_a_warning():
    text = "<!--\nCollections:\n- Name: ResNet\n- Name: Spare\nModels:\n- Name: a\n  In Collection: ResNet\n-->\n"
    assert [w.format() for w in parse_card(PATH, text).warnings] == [
        f"{PATH}:4: warning: the collection 'Spare' has no model: no entry is 'In Collection' 'Spare'\n"
        "    hint: add 'In Collection: Spare' to its models, or remove the collection"]


# ---------------------------------------------------------------------------------------------
# Bad cards: each with its exact report

SYNC = f"run 'resfam-cards sync --write {PATH}' to fill it in"
YAML_HINT = ("check the indentation and the ':' after each key; quote values that contain ': ', ' #', "
             "or start with a special character")
SCAFFOLD = "add one, or scaffold a card with 'resfam-cards new FAMILY --model ID'"
UNSAFE_TAG = ("YAML tag '{0}' is not allowed in a model-index block; only plain values, lists and "
              "mappings are read (the YAML is loaded safely)\n    hint: remove '{0}' and write a plain value")

BAD_CARDS = [
    ("empty file", "", [
        f"{PATH}: error: the file is empty: a card template needs a summary and a model-index block\n"
        f"    hint: {SCAFFOLD}"]),
    ("only blank lines", "  \n\n", [
        f"{PATH}: error: the file is empty: a card template needs a summary and a model-index block\n"
        f"    hint: {SCAFFOLD}"]),
    ("no block", "# T\n\ntext\n<!-- just a note -->\n", [
        f"{PATH}: error: no model-index block: the models must be listed in an HTML comment "
        f"'<!-- Type: model-index ... -->'\n    hint: {SCAFFOLD}"]),
    ("two blocks", model() + "<!--\nModels:\n- Name: x\n-->\n", [
        f"{PATH}:10: error: a second model-index block (the first starts at line 3); a card has exactly one\n"
        "    hint: move its models into the first block and delete this one"]),
    ("comment never closed", HEAD + "- Name: a\n", [
        f"{PATH}:3: error: the HTML comment holding the model-index block is never closed\n"
        "    hint: end the block with '-->' on a line of its own"]),
    ("jinja inside the block", model("    Parameters: {{ n }}\n"), [
        f"{PATH}:8: error: Jinja syntax '{{{{' inside the model-index block; its values must be written "
        "out so the build can check them\n    hint: replace the expression with the literal value"]),
    ("tab indentation", model("\tParameters: 1\n    FLOPs: 2\n  \tLayers: 3\n"), [
        f"{PATH}:8: error: tab character in the indentation (column 1); YAML indents with spaces only\n"
        "    hint: replace the tab with spaces",
        f"{PATH}:10: error: tab character in the indentation (column 3); YAML indents with spaces only\n"
        "    hint: replace the tab with spaces"]),
    ("tab after the colon", model("    Parameters:\t1\n"), [
        f"{PATH}:8: error: malformed YAML in the model-index block: found character '\\t' that cannot "
        "start any token\n    hint: replace tabs with spaces"]),
    ("bad indentation", model("    Parameters: 1\n   FLOPs: 2\n"), [
        f"{PATH}:9: error: malformed YAML in the model-index block: inconsistent indentation: this line "
        f"does not line up with the lines above it (while parsing a block mapping at line 6)\n"
        f"    hint: {YAML_HINT}"]),
    # YAML reads 'Parameters 1 FLOPs' as one key: the mistake shows at the next ':'
    ("missing colon", model("    Parameters 1\n    FLOPs: 2\n"), [
        f"{PATH}:9: error: malformed YAML in the model-index block: a ':' where no key can start: quote a "
        f"value that contains ': ', or give the line above its missing ':'\n    hint: {YAML_HINT}"]),
    ("missing colon after the first key", model("    Parameters: 1\n    FLOPs 2\n    Layers: 3\n"), [
        f"{PATH}:9: error: malformed YAML in the model-index block: no ':' after the key on this line\n"
        "    hint: write the line as 'Key: value'"]),
    ("value containing ': '", model("", "  Description: Note: the weights are new\n"), [
        f"{PATH}:8: error: malformed YAML in the model-index block: a ':' where no key can start: quote a "
        f"value that contains ': ', or give the line above its missing ':'\n    hint: {YAML_HINT}"]),
    # noticed at the end of the block, reported where the quote opens
    ("unclosed quote", model("    Interpolation: 'bilinear\n"), [
        f"{PATH}:8: error: malformed YAML in the model-index block: the quote opened on this line is never "
        "closed\n    hint: add the closing quote at the end of the value"]),
    ("second document", model("    Parameters: 1\n---\nfoo: 1\n"), [
        f"{PATH}:9: error: malformed YAML in the model-index block: a second YAML document ('---'); the "
        f"block holds one (expected a single document in the stream at line 4)\n    hint: {YAML_HINT}"]),
    ("NUL character", model("    Parameters: 1\x00\n"), [
        f"{PATH}:8: error: malformed YAML in the model-index block: character #x0000 is not allowed\n"
        "    hint: delete the control character"]),
    ("!!python/object tag", model("    Parameters: !!python/object/apply:os.system ['echo hi']\n"), [
        f"{PATH}:8: error: " + UNSAFE_TAG.format("!!python/object/apply:os.system")]),
    ("!!python/name tag on a key", model("    !!python/name:os.system x: 1\n"), [
        f"{PATH}:8: error: " + UNSAFE_TAG.format("!!python/name:os.system")]),
    ("custom tag", model("    Parameters: !big 1\n"), [f"{PATH}:8: error: " + UNSAFE_TAG.format("!big")]),
    ("!!binary tag", model("    Parameters: !!binary aGk=\n"), [
        f"{PATH}:8: error: " + UNSAFE_TAG.format("!!binary")]),
    ("alias", HEAD + "- Name: a\n  Metadata: &m\n    Parameters: 1\n- Name: b\n  Metadata: *m\n-->\n", [
        f"{PATH}:10: error: alias '*m' in the model-index block; anchors and aliases are not supported\n"
        "    hint: write the value out in full where it is used"]),
    ("no Models", "<!--\nType: model-index\nCollections:\n- Name: X\n-->\n", [
        f"{PATH}:2: error: the model-index block has no 'Models' list\n"
        "    hint: add 'Models:' with one '- Name: <model>' entry per model"]),
    ("Models not a list", "<!--\nType: model-index\nModels:\n  a: 1\n-->\n", [
        f"{PATH}:4: error: 'Models' must be a list, got a mapping\n"
        "    hint: write one '- Name: <model>' entry per model under 'Models:'"]),
    ("Models empty", "<!--\nType: model-index\nModels: []\n-->\n", [
        f"{PATH}:3: error: 'Models' lists no models\n    hint: add one '- Name: <model>' entry per model"]),
    ("wrong Type", "<!--\nType: model-card\nModels:\n- Name: a\n-->\n", [
        f"{PATH}:2: error: 'Type' must be 'model-index', got 'model-card'\n    hint: write 'Type: model-index'"]),
    ("entry not a mapping", HEAD + "- resnet50\n-->\n", [
        f"{PATH}:6: error: each entry of 'Models' must be a mapping, got 'resnet50'\n"
        "    hint: start the entry with '- Name: <model>'"]),
    ("missing Name", HEAD + "- Metadata:\n    Parameters: 1\n-->\n", [
        f"{PATH}:6: error: a model entry has no 'Name'\n"
        "    hint: add 'Name: <model>' as the first key of the entry"]),
    ("Name a number", HEAD + "- Name: 123\n-->\n", [
        f"{PATH}:6: error: a model 'Name' must be text, got 123\n"
        "    hint: YAML reads 123 as a number: quote it, Name: '123'"]),
    ("Name a YAML boolean", HEAD + "- Name: no\n-->\n", [
        f"{PATH}:6: error: a model 'Name' must be text, got no\n"
        "    hint: YAML reads no as a boolean: quote it, Name: 'no'"]),
    ("Name a list", HEAD + "- Name: [a]\n-->\n", [
        f"{PATH}:6: error: a model 'Name' must be text, got a list\n"
        "    hint: write the model's name, e.g. 'Name: resnet50'"]),
    ("duplicate model name", HEAD + "- Name: a\n- Name: b\n- Name: a\n-->\n", [
        f"{PATH}:8: error: model 'a' is listed twice (first at line 6)\n"
        "    hint: delete one of the two entries or rename it"]),
    ("duplicate key", model("    Parameters: 1\n    FLOPs: 2\n    Parameters: 3\n"), [
        f"{PATH}:10: error: duplicate key 'Parameters' in the Metadata of resnet50 (first at line 8)\n"
        "    hint: keep one of the two lines; YAML would silently use the last one"]),
    ("key that is a list", model("    [a, b]: 1\n"), [
        f"{PATH}:8: error: a key in the Metadata of resnet50 must be text, got a list\n"
        "    hint: write keys as plain names, e.g. 'Parameters:'"]),
    ("Metadata a list", HEAD + "- Name: a\n  Metadata:\n  - Parameters: 1\n-->\n", [
        f"{PATH}:8: error: 'Metadata' of a must be a mapping, got a list\n"
        "    hint: indent the fields under 'Metadata:'"]),
    ("Parameters not a number", model("    Parameters: many\n"), [
        f"{PATH}:8: error: 'Parameters' of resnet50 must be an integer, got 'many'\n"
        f"    hint: write the exact count, or {SYNC}"]),
    ("negative Parameters", model("    Parameters: -5\n"), [
        f"{PATH}:8: error: 'Parameters' of resnet50 must be a non-negative integer, got -5\n"
        f"    hint: write the exact count, or {SYNC}"]),
    ("huge FLOPs", model("    FLOPs: 100000000000000000000\n"), [
        f"{PATH}:8: error: 'FLOPs' of resnet50 is implausibly large: 100000000000000000000 (more than 10^15)\n"
        f"    hint: write the exact count (fvcore convention: one multiply-add is one FLOP), or {SYNC}"]),
    ("5000-digit Parameters", model("    Parameters: " + "9" * 5000 + "\n"), [
        f"{PATH}:8: error: 'Parameters' of resnet50 must be an integer, got '"
        + "9" * 56 + f"...\n    hint: write the exact count, or {SYNC}"]),
    ("boolean Layers", model("    Layers: true\n"), [
        f"{PATH}:8: error: 'Layers' of resnet50 must be an integer, got true\n"
        f"    hint: write the exact depth, or {SYNC}"]),
    ("float Parameters", model("    Parameters: 25.5e+6\n"), [
        f"{PATH}:8: error: 'Parameters' of resnet50 must be an integer, got 25.5e+6\n"
        f"    hint: write the exact count, or {SYNC}"]),
    ("quoted File Size", model("    File Size: '102400'\n"), [
        f"{PATH}:8: error: 'File Size' of resnet50 must be an integer, got '102400' (a quoted string: "
        f"remove the quotes)\n    hint: write the exact size in bytes, or {SYNC}"]),
    ("Parameters left empty", model("    Parameters:\n"), [
        f"{PATH}:8: error: 'Parameters' of resnet50 has no value\n    hint: write the exact count, or {SYNC}"]),
    ("FLOPs a list", model("    FLOPs: [1, 2]\n"), [
        f"{PATH}:8: error: 'FLOPs' of resnet50 must be a single value, got a list\n"
        f"    hint: write the exact count (fvcore convention: one multiply-add is one FLOP), or {SYNC}"]),
    ("Image Size zero", model("    Image Size: 0\n"), [
        f"{PATH}:8: error: 'Image Size' of resnet50 must be between 1 and 4096 pixels, got 0\n"
        "    hint: write the input resolution in pixels, e.g. '224'"]),
    ("Image Size a word", model("    Image Size: large\n"), [
        f"{PATH}:8: error: 'Image Size' of resnet50 must be a whole number of pixels such as '224', got "
        "'large'\n    hint: write the input resolution in pixels, e.g. '224'"]),
    ("Crop Pct above 1", model("    Crop Pct: 1.5\n"), [
        f"{PATH}:8: error: 'Crop Pct' of resnet50 must be a fraction in (0, 1], got 1.5\n"
        "    hint: write the crop fraction, e.g. '0.875'"]),
    ("Crop Pct NaN", model("    Crop Pct: .nan\n"), [
        f"{PATH}:8: error: 'Crop Pct' of resnet50 must be a fraction such as '0.875', got .nan\n"
        "    hint: write the crop fraction, e.g. '0.875'"]),
    ("unknown Interpolation", model("    Interpolation: cubic\n"), [
        f"{PATH}:8: error: 'Interpolation' of resnet50 must be one of bicubic, bilinear, box, hamming, "
        "lanczos, nearest, got 'cubic'\n    hint: use one of: bicubic, bilinear, box, hamming, lanczos, nearest"]),
    ("Weights not a URL", model("", "  Weights: resnet50.pth\n"), [
        f"{PATH}:8: error: 'Weights' of resnet50 must be an http(s) URL, got 'resnet50.pth'\n"
        "    hint: write the full https:// URL of the checkpoint"]),
    ("ID an import path", model("    ID: resfam.models.resnet:ResNet\n"), [
        f"{PATH}:8: error: 'ID' of resnet50 must be the model's registered name, not an import path: got "
        "'resfam.models.resnet:ResNet'\n    hint: a card names a model only through the resfam registry: "
        "write 'ID: resnet50' (resfam.list_models() lists the names)"]),
    ("ID a dotted import path", model("    ID: torchvision.models.resnet18\n"), [
        f"{PATH}:8: error: 'ID' of resnet50 must be the model's registered name, not an import path: got "
        "'torchvision.models.resnet18'\n    hint: a card names a model only through the resfam registry: "
        "write 'ID: resnet18' (resfam.list_models() lists the names)"]),
    ("Name an import path and no ID", HEAD + "- Name: resfam.models.resnet.ResNet\n  Metadata:\n"
                                             "    Layers: 50\n-->\n", [
        f"{PATH}:6: error: resfam.models.resnet.ResNet: an entry without an 'ID' names its model by its 'Name', "
        "which must be the model's registered name, not an import path\n    hint: a card names a model only "
        "through the resfam registry: add 'ID: <registered name>' under 'Metadata' (resfam.list_models() "
        "lists the names)"]),
    ("ID not a name", model("    ID: resnet 50\n"), [
        f"{PATH}:8: error: 'ID' of resnet50 must be a registered model name such as 'resnet50', got "
        "'resnet 50'\n    hint: write the model's name in the resfam registry (resfam.list_models())"]),
    ("Architecture not a list", model("    Architecture: Convolution\n"), [
        f"{PATH}:8: error: 'Architecture' of resnet50 must be a list of names, got 'Convolution'\n"
        "    hint: write one '- <name>' line per item under 'Architecture:'"]),
    ("bad accuracies", model("", "  Results:\n  - Task: Image Classification\n    Dataset: ImageNet\n"
                                 "    Metrics:\n      Top 1 Accuracy: high\n      Top 5 Accuracy: 120%\n"), [
        f"{PATH}:12: error: 'Top 1 Accuracy' of resnet50 must be a percentage such as 76.13%, got 'high'\n"
        "    hint: write a percentage such as 76.13%",
        f"{PATH}:13: error: 'Top 5 Accuracy' of resnet50 must be between 0 and 100%, got 120%\n"
        "    hint: write a percentage such as 92.86%"]),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in BAD_CARDS], ids=[c[0] for c in BAD_CARDS])
def test_bad_card_is_reported_exactly(text, expected):
    assert errors_of(text) == expected


def test_every_problem_of_a_file_is_reported_together():
    text = (HEAD + "- Name: a\n  Metadata:\n    Parameters: many\n    Crop Pct: 2\n  Weights: here\n"
            "- Name: b\n  Metadata:\n    Layers: -1\n- Name: a\n-->\n")
    findings = errors_of(text)
    assert [f.splitlines()[0] for f in findings] == [
        f"{PATH}:8: error: 'Parameters' of a must be an integer, got 'many'",
        f"{PATH}:9: error: 'Crop Pct' of a must be a fraction in (0, 1], got 2",
        f"{PATH}:10: error: 'Weights' of a must be an http(s) URL, got 'here'",
        f"{PATH}:13: error: 'Layers' of b must be a non-negative integer, got -1",
        f"{PATH}:14: error: model 'a' is listed twice (first at line 6)",
    ]


def test_error_findings_name_model_field_and_claim():
    with pytest.raises(CardError) as raised:
        parse_card(PATH, model("    Parameters: many\n"))
    (finding,) = raised.value.findings
    assert (finding.model, finding.field, finding.claimed, finding.line) == ("resnet50", "Parameters", "many", 8)


def test_yaml_error_line_is_the_template_line():
    prose = "# Title\n\n" + "Some prose.\n" * 40  # 42 lines before the block
    text = prose + "<!--\nModels:\n- Name: a\n  Metadata:\n    Parameters: 1\n   FLOPs: 2\n-->\n"
    assert errors_of(text)[0].startswith(f"{PATH}:48: error: malformed YAML")


def test_a_billion_laughs_block_is_refused_before_expansion():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "<!--\nModels:\n- Name: a\n" + "\n".join(lines) + "\n-->\n"
    findings = errors_of(text)
    assert len(findings) == 90 and findings[0].startswith(f"{PATH}:5: error: alias '*a0'")


@pytest.mark.parametrize("depth, line", [(40, 4), (5000, 1)])  # 5000 would overflow PyYAML's recursion
def test_deep_nesting_is_refused(depth, line):
    text = "<!--\nModels:\n- Name: a\n  X: " + "[" * depth + "]" * depth + "\n-->\n"
    assert errors_of(text) == [
        f"{PATH}:{line}: error: the model-index block is nested more than 32 levels deep\n"
        "    hint: a model-index needs only Models > entry > Metadata/Results > values"]


# ---------------------------------------------------------------------------------------------
# Files that are not card text at all


def test_non_utf8_bytes(tmp_path):
    target = tmp_path / "resnet.md"
    target.write_bytes(b"# T\n\nCaf\xe9 au lait\n")
    assert errors_of_file(target) == [
        f"{target}:3: error: the file is not valid UTF-8: byte 0xe9 at column 4 cannot be decoded\n"
        "    hint: save the file with UTF-8 encoding"]


def test_ten_megabyte_file(tmp_path):
    target = tmp_path / "resnet.md"
    target.write_bytes(b"x" * 10_000_000)
    assert errors_of_file(target) == [
        f"{target}: error: the file is 10.0 MB; a card template may be at most 2.1 MB\n"
        "    hint: check that this is the card template you meant; a card is a page of text"]
    assert errors_of("y" * (MAX_CARD_BYTES + 1))[0].startswith(f"{PATH}: error: the file is 2.1 MB")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs a device file")
def test_a_file_of_no_stated_size_is_read_no_further_than_the_limit():
    assert errors_of_file("/dev/zero") == [
        "/dev/zero: error: the file is larger than 2.1 MB, the most a card template may be\n"
        "    hint: check that this is the card template you meant; a card is a page of text"]


def test_missing_file_and_directory(tmp_path):
    assert errors_of_file(tmp_path / "nope.md") == [
        f"{tmp_path / 'nope.md'}: error: cannot read the card template: No such file or directory\n"
        "    hint: check the path; card templates live in templates/models/"]
    assert errors_of_file(tmp_path)[0].startswith(f"{tmp_path}: error: cannot read the card template: ")


def test_unexpected_exceptions_never_escape_for_odd_scalars():
    card = parse_card(PATH, model("    Training Time: 2020-13-45\n    Layers: 0x32\n", "  Description: =\n"))
    assert card.models[0].fields["Training Time"].value == "2020-13-45"  # not a date: kept as text
    assert card.models[0].fields["Layers"].value == 50


def errors_of_file(path: os.PathLike) -> list[str]:
    with pytest.raises(CardError) as raised:
        parse_card(path)
    return [finding.format() for finding in raised.value.findings]


def test_claim_is_a_value_object():
    assert Claim(1, 2, (3, 4)) == Claim(1, 2, (3, 4), None)
