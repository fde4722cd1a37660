"""What a card says beyond its figures: architecture tags, `Code:` and coverage, checked against the code.

Each lie is made in a copy of the repository's own templates and run through `resfam-cards` as a user
runs it: verify fails with file:line, model, field, claim and code; `sync --write` repairs it; a second
`sync` changes nothing.
"""
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import resfam
from resfam.cards import architecture, measure
from resfam.cards.fields import FIELDS, TAGS
from resfam.cards.model_index import KNOWN_METADATA_KEYS, KNOWN_MODEL_KEYS, parse_card
from resfam.cards.sync import SYNC_FIELDS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def templates_copy(tmp_path, monkeypatch):
    """A copy of the repository's templates, as the working folder."""
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def card_path(family: str) -> Path:
    return Path("templates") / "models" / f"{family}.md"


def rewrite_claim(family: str, model: str, field: str, new_source: str) -> int:
    """Replace the source text of one claim of a card (a whole list for Architecture); its line."""
    path = card_path(family)
    card = parse_card(path)
    claim = card.model(model).claim(field)
    start, end = claim.span
    path.write_text(card.text[:start] + new_source + card.text[end:], encoding="utf-8")
    return claim.line


def card_count() -> int:
    return len(list((Path("templates") / "models").glob("*.md")))


def tags_source(tags: list[str]) -> str:
    return "\n    ".join(f"- {tag}" for tag in tags)


def listed_tags(family: str, model: str) -> list[str]:
    return parse_card(card_path(family)).model(model).claim("Architecture").value


def assert_repaired_by_sync(cli, family: str) -> None:
    assert cli("sync", "--write")[0] == 0
    assert cli("verify")[0] == 0
    assert cli("sync") == (0, "", f"nothing to change: {card_count()} card(s) match the code\n")
    assert parse_card(card_path(family))  # and it still reads


# ---------------------------------------------------------------------------------------------
# Architecture tags


def test_a_tag_the_network_lacks_is_a_drift_and_sync_removes_it(templates_copy, cli):
    original = card_path("resnet").read_text(encoding="utf-8")
    tags = listed_tags("resnet", "resnet50")
    line = rewrite_claim("resnet", "resnet50", "Architecture", tags_source(tags + ["Grouped Convolution"]))
    code, out, _ = cli("verify")
    assert code == 1
    assert f"templates/models/resnet.md:{line}: drift: resnet50 Architecture: the network has no " \
           "Grouped Convolution" in out
    assert cli("sync", "--write")[0] == 0
    assert card_path("resnet").read_text(encoding="utf-8") == original  # only the lie went
    assert cli("sync") == (0, "", f"nothing to change: {card_count()} card(s) match the code\n")


@pytest.mark.parametrize("family, model, tag", [
    ("res2net", "res2net50_26w_4s", "Max Pooling"),
    ("resnest", "resnest50d", "Split Attention"),
    ("resnet", "resnetblur50", "Blur Pooling"),
    ("resnext", "resnext50_32x4d", "Grouped Convolution"),
    ("resnet-d", "resnet50d", "Average Pooling"),
])
def test_a_component_the_list_leaves_out_is_a_drift_and_sync_adds_it(templates_copy, cli, family, model, tag):
    tags = listed_tags(family, model)
    line = rewrite_claim(family, model, "Architecture", tags_source([t for t in tags if t != tag]))
    code, out, _ = cli("verify")
    assert code == 1
    assert f"templates/models/{family}.md:{line}: drift: {model} Architecture: the list leaves out {tag}, " \
           "which the network has" in out
    assert_repaired_by_sync(cli, family)
    assert listed_tags(family, model) == [t for t in tags if t != tag] + [tag]  # the card's order, then the new


def test_a_softmax_claimed_by_a_network_that_returns_logits_is_a_drift(templates_copy, cli):
    tags = listed_tags("resnet", "resnet18")
    line = rewrite_claim("resnet", "resnet18", "Architecture", tags_source(tags + ["Softmax"]))
    code, out, _ = cli("verify")
    assert code == 1 and f"resnet.md:{line}: drift: resnet18 Architecture: the network has no Softmax" in out
    assert_repaired_by_sync(cli, "resnet")


def test_a_tag_outside_the_vocabulary_is_bad_input_with_close_matches(templates_copy, cli):
    tags = listed_tags("resnext", "resnext50_32x4d")
    rewrite_claim("resnext", "resnext50_32x4d", "Architecture",
                  tags_source([t.replace("Grouped Convolution", "Grouped Convolutions") for t in tags]))
    claim = parse_card(card_path("resnext")).model("resnext50_32x4d").claim("Architecture")
    line = claim.item_lines[claim.value.index("Grouped Convolutions")]  # the line of the wrong tag
    code, out, _ = cli("verify")
    assert code == 2
    assert f"resnext.md:{line}: error: resnext50_32x4d Architecture: 'Grouped Convolutions' is not an " \
           "architecture tag (did you mean 'Grouped Convolution'" in out
    assert re.search(r"hint: the tags are: 1x1 Convolution, .*Split Attention", out)
    # the list also lacks the real tag: a drift beside the error, and sync refuses to write over bad input
    assert "the list leaves out Grouped Convolution" in out
    assert cli("sync", "--write")[0] == 2


def test_a_flow_list_keeps_its_style_when_synced(templates_copy, cli):
    tags = listed_tags("resnest", "resnest14d")
    rewrite_claim("resnest", "resnest14d", "Architecture", "[" + ", ".join(tags[1:]) + "]")
    path = card_path("resnest")
    path.write_text(path.read_text(encoding="utf-8").replace("Architecture:\n    [", "Architecture: ["),
                    encoding="utf-8")
    assert cli("verify")[0] == 1
    assert_repaired_by_sync(cli, "resnest")
    text = card_path("resnest").read_text(encoding="utf-8")
    assert "    Architecture: [" + ", ".join(tags[1:] + tags[:1]) + "]\n" in text


def test_fill_adds_a_missing_list_in_the_card_style(templates_copy, cli):
    path = card_path("resnet")
    card = parse_card(path)
    claim = card.model("resnet34").claim("Architecture")
    key_start = card.text.rindex("    Architecture:", 0, claim.span[0])
    path.write_text(card.text[:key_start] + card.text[claim.span[1] + 1:], encoding="utf-8")
    assert "Architecture" not in parse_card(path).model("resnet34").fields
    assert cli("verify")[0] == 0  # a card may leave a field out
    assert cli("sync", "--fill", "--write")[0] == 0
    assert sorted(listed_tags("resnet", "resnet34")) == sorted(claim.value)
    assert re.search(r"\n    Architecture:\n    - 1x1 Convolution\n    - Batch Normalization\n", path.read_text())
    assert cli("sync", "--fill") == (0, "", f"nothing to change: {card_count()} card(s) match the code\n")


# ---------------------------------------------------------------------------------------------
# Code


@pytest.mark.parametrize("written, expected", [
    ("resfam/models/resnest.py", "resfam/models/resnet.py"),  # another model's file
    ("resfam/models/resnet18.py", "resfam/models/resnet.py"),  # no such file
    ("https://github.com/rwightman/pytorch-image-models/blob/master/timm/models/resnet.py",
     "resfam/models/resnet.py"),  # the upstream source, not ours
    ("resfam/models/resnet.py#L1", "resfam/models/resnet.py#L{line}"),  # a stale line
], ids=["wrong-file", "missing-file", "url", "stale-line"])
def test_a_wrong_code_path_is_a_drift_and_sync_writes_the_registering_file(templates_copy, cli, written, expected):
    lines = (REPO / "resfam/models/resnet.py").read_text().splitlines()
    registering = next(number for number, text in enumerate(lines, 1) if text.startswith('register_resnet("resnet18"'))
    expected = expected.format(line=registering)
    line = rewrite_claim("resnet", "resnet18", "Code", written)
    code, out, _ = cli("verify")
    assert code == 1
    assert f"templates/models/resnet.md:{line}: drift: resnet18 Code: card says {written}, the model is " \
           f"registered at {expected}" in out
    assert_repaired_by_sync(cli, "resnet")
    assert parse_card(card_path("resnet")).model("resnet18").claim("Code").value == expected


def test_a_right_line_anchor_verifies(templates_copy, cli):
    registering = next(number for number, text in enumerate((REPO / "resfam/models/res2net.py").read_text()
                                                          .splitlines(), 1) if '"res2net50_48w_2s"' in text)
    rewrite_claim("res2net", "res2net50_48w_2s", "Code", f"resfam/models/res2net.py#L{registering}")
    assert cli("verify")[0] == 0


# ---------------------------------------------------------------------------------------------
# Coverage


def remove_entry(family: str, model: str) -> None:
    path = card_path(family)
    text = path.read_text(encoding="utf-8")
    start = text.index(f"- Name: {model}\n")
    end = text.index("\n- Name: ", start + 1) + 1
    path.write_text(text[:start] + text[end:], encoding="utf-8")


def test_a_registered_model_on_no_card_fails_a_full_run_only(templates_copy, cli):
    remove_entry("resnet", "resnet26")
    code, out, _ = cli("verify")
    assert code == 1
    assert "templates/models/resnet.md: drift: resnet26 (family resnet) is registered but on no card" in out
    assert "hint: run: resfam-cards new resnet --model resnet26" in out
    assert cli("verify", "templates/models/resnet.md")[0] == 0  # single cards: no coverage check
    assert cli("verify", "--without-card", "resnet26")[0] == 0  # left out on purpose, and said so


def test_an_opt_out_of_no_registered_model_is_bad_input(templates_copy, cli):
    code, out, _ = cli("verify", "--without-card", "resnet2")
    assert code == 2
    assert "error: 'resnet2' is left without a card, but no such model is registered" in out
    assert "did you mean resnet26" in out or "did you mean resnet18" in out


def test_a_family_without_a_card_is_named_with_its_models(templates_copy, cli):
    card_path("res2net").unlink()
    code, out, _ = cli("verify")
    assert code == 1
    assert len(re.findall(r"templates/models/res2net\.md: drift: res2net\S+ \(family res2net\) is registered "
                          r"but on no card", out)) == len(resfam.list_models(family="res2net"))


# ---------------------------------------------------------------------------------------------
# How tags are found


class _Declared(nn.Module):
    architecture_tags = {"Test Unit": "a unit the tests declare"}

    def __init__(self, shows: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise: not a grouped convolution
        self.shows = shows

    def shows_architecture_tag(self, tag: str) -> bool:
        return self.shows

    def forward(self, x):
        return F.softmax(self.conv(x), dim=1)


class _Toy(nn.Module):
    def __init__(self, shows: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.unit = _Declared(shows)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)

    def forward(self, x):
        return torch.sigmoid(self.grouped(self.unit(self.stem(x))))


def toy_tags(model: nn.Module) -> list[str]:
    [count] = measure._count_flops(model, [16], in_place=False)
    return architecture.tags_of(model, count.traced_ops)


def test_tags_come_from_layers_traced_operators_and_declaring_classes():
    # the depthwise convolution of _Declared is a generic tag of its own since issue 19
    assert toy_tags(_Toy()) == ["1x1 Convolution", "Convolution", "Depthwise Convolution", "Grouped Convolution",
                                "Sigmoid Activation", "Softmax", "Test Unit"]
    assert "Test Unit" not in toy_tags(_Toy(shows=False))  # the instance says it does not show it
    depthwise_only = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4))  # depthwise, not grouped
    assert toy_tags(depthwise_only) == ["Convolution", "Depthwise Convolution"]


def test_the_vocabulary_refuses_two_definitions_of_one_tag(monkeypatch):
    import sys
    import types

    module = types.ModuleType("resfam._test_tags")
    for name, definition in (("A", "one thing"), ("B", "another thing")):
        cls = type(name, (nn.Module,), {"architecture_tags": {"Shared Unit": definition}})
        cls.__module__ = module.__name__
        setattr(module, name, cls)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(ValueError, match="define the architecture tag 'Shared Unit' differently"):
        architecture.vocabulary()


def test_every_architecture_tag_of_the_zoo_has_a_definition():
    import resfam

    resfam.list_models()  # the zoo, loaded
    vocabulary = architecture.vocabulary()
    assert {"Split Attention", "Res2Net Block", "Blur Pooling", "ResNeXt Block", "Grouped Convolution",
            "Softmax"} <= set(vocabulary)
    assert all(definition and not definition.endswith(".") for definition in vocabulary.values())


# ---------------------------------------------------------------------------------------------
# The table of fields is what every part reads


def test_every_field_of_the_table_is_known_to_the_parser_and_sync():
    for field in FIELDS:
        if field.place == "code":  # shown from the code (features per stage, licence): never a card key
            assert field.name not in KNOWN_METADATA_KEYS | KNOWN_MODEL_KEYS and field.name not in SYNC_FIELDS
            assert field.measured is not None
            continue
        assert field.name in (KNOWN_METADATA_KEYS if field.place == "Metadata" else KNOWN_MODEL_KEYS) \
            or field.place == "Metrics"
        assert (field.name in SYNC_FIELDS) == (field.measured is not None)
    assert [field.name for field in FIELDS if field.compare == TAGS] == ["Architecture"]
