"""Sync: planning figure edits, applying them byte-exactly, the diff, and the atomic write."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from resfam.cards import CardError, Edit, apply_edits, parse_card, plan_sync, render_diff, write_atomic
from resfam.cards import sync as sync_module

RESNET_CARD = Path(__file__).parent / "cards" / "models" / "resnet.md"
PATH = "templates/models/resnet.md"

# What the fixture card claims, as the measurement would report it.
MATCHING = {
    "resnet18": {"Parameters": 11689512, "FLOPs": 1819066368, "File Size": 46830571, "Image Size": 224,
                 "Crop Pct": 0.875, "Interpolation": "bilinear",
                 "Weights": "https://download.pytorch.org/models/resnet18-5c106cde.pth"},
    "resnet50": {"Parameters": 25557032, "FLOPs": 4111514624, "Layers": 50, "Image Size": 224,
                 "Crop Pct": 0.875, "Interpolation": "bicubic",
                 "Weights": "https://example.org/weights/resnet50-0676ba61.pth"},
}


def card_text() -> str:
    return RESNET_CARD.read_text()


def sync_once(text: str, measured, fill_missing=False, path=PATH) -> tuple[list[Edit], str]:
    card = parse_card(path, text)
    edits = plan_sync(card, measured, fill_missing=fill_missing)
    return edits, apply_edits(text, edits)


def assert_idempotent(text: str, measured, fill_missing=False) -> None:
    assert plan_sync(parse_card(PATH, text), measured, fill_missing=fill_missing) == []


def outside_spans(text: str, edits: list[Edit]) -> str:
    """`text` with every edited span cut out: what must be identical before and after."""
    kept, cursor = [], 0
    for edit in sorted(edits, key=lambda e: e.span):
        kept.append(text[cursor:edit.span[0]])
        cursor = edit.span[1]
    return "".join(kept) + text[cursor:]


def new_text_only(result: str, edits: list[Edit]) -> str:
    """`result` with the new text of every edit cut out (edits sorted, offsets of the original)."""
    kept, cursor, shift = [], 0, 0
    for edit in sorted(edits, key=lambda e: e.span):
        start = edit.span[0] + shift
        kept.append(result[cursor:start])
        cursor = start + len(edit.new)
        shift += len(edit.new) - (edit.span[1] - edit.span[0])
    return "".join(kept) + result[cursor:]


# ---------------------------------------------------------------------------------------------
# Planning and applying


def test_a_card_that_matches_needs_no_edits():
    card = parse_card(PATH, card_text())
    assert plan_sync(card, MATCHING) == []
    assert plan_sync(card, MATCHING, fill_missing=True) == []
    assert plan_sync(card, {"resnet18": {"Layers": 18}}) == []  # resnet18 has no Layers to rewrite


def test_drifted_figures_are_rewritten_in_place():
    measured = {"resnet18": {"Parameters": 11689513, "Interpolation": "bicubic"},
                "resnet50": {"FLOPs": 4089184256, "Crop Pct": 0.95, "Image Size": 256, "Layers": 50}}
    edits, result = sync_once(card_text(), measured)
    assert [(e.line, e.model, e.field, e.old, e.new) for e in edits] == [
        (28, "resnet18", "Parameters", "11689512", "11689513"),
        (38, "resnet18", "Interpolation", "bilinear", "bicubic"),
        (50, "resnet50", "FLOPs", "4111514624", "4089184256"),
        (54, "resnet50", "Crop Pct", "'0.875'", "'0.95'"),
        (55, "resnet50", "Image Size", "'224'", "'256'"),
    ]
    assert edits[0].describe() == f"{PATH}:28: resnet18 Parameters: 11689512 -> 11689513"
    assert (edits[0].claimed, edits[0].measured) == (11689512, 11689513)
    expected = (card_text().replace("Parameters: 11689512", "Parameters: 11689513")
                .replace("    Crop Pct: '0.875'\n    Image Size: '224'\n    Interpolation: bicubic",
                         "    Crop Pct: '0.95'\n    Image Size: '256'\n    Interpolation: bicubic")
                .replace("Interpolation: bilinear", "Interpolation: bicubic")
                .replace("FLOPs: 4111514624", "FLOPs: 4089184256"))
    assert result == expected
    assert outside_spans(card_text(), edits) == new_text_only(result, edits)
    assert_idempotent(result, measured)


def test_quoting_style_is_kept():
    text = '<!--\nModels:\n- Name: a\n  Metadata:\n    Image Size: "224"\n    Crop Pct: 0.875\n' \
           "    Interpolation: 'bilinear'\n  Weights: \"https://x.org/a.pth\"\n-->\n"
    measured = {"a": {"Image Size": 288, "Crop Pct": 1.0, "Interpolation": "bicubic",
                      "Weights": "https://x.org/b.pth"}}
    edits, result = sync_once(text, measured)
    assert result == ('<!--\nModels:\n- Name: a\n  Metadata:\n    Image Size: "288"\n    Crop Pct: 1.0\n'
                      "    Interpolation: 'bicubic'\n  Weights: \"https://x.org/b.pth\"\n-->\n")
    assert_idempotent(result, measured)


def test_equal_values_in_another_spelling_are_not_rewritten():
    text = "<!--\nModels:\n- Name: a\n  Metadata:\n    Image Size: 224\n    Crop Pct: '0.8750'\n-->\n"
    assert plan_sync(parse_card(PATH, text), {"a": {"Image Size": 224, "Crop Pct": 0.875}}) == []


def test_text_that_would_change_meaning_unquoted_is_quoted():
    text = "<!--\nModels:\n- Name: a\n  Weights: https://x.org/a.pth\n-->\n"
    url = "https://x.org/a,b.pth#frag"
    edits, result = sync_once(text, {"a": {"Weights": url}})
    assert edits[0].new == "'https://x.org/a,b.pth#frag'"
    assert parse_card(PATH, result).models[0].claim("Weights").value == url


def test_comments_and_spacing_around_a_figure_survive():
    text = "<!--\nModels:\n- Name: a\n  Metadata:\n    Parameters:   123   # rounded\n-->\n"
    _, result = sync_once(text, {"a": {"Parameters": 456}})
    assert result == "<!--\nModels:\n- Name: a\n  Metadata:\n    Parameters:   456   # rounded\n-->\n"


def test_missing_fields_are_left_alone_unless_asked():
    text = card_text()
    edits, result = sync_once(text, {"resnet18": {"Layers": 18}})
    assert edits == [] and result == text


def test_none_means_not_measured():
    assert plan_sync(parse_card(PATH, card_text()), {"resnet18": {"Parameters": None}}) == []


# ---------------------------------------------------------------------------------------------
# Filling in missing fields


def test_fill_missing_inserts_into_metadata_and_model():
    text = ("<!--\nModels:\n- Name: a\n  Metadata:\n    ID: a\n    Tasks:\n    - Image Classification\n"
            "  Results:\n  - Task: Image Classification\n    Metrics:\n      Top 1 Accuracy: 70%\n"
            "- Name: b\n  Metadata:\n    ID: b\n-->\n")
    measured = {"a": {"Parameters": 100, "Layers": 18, "Crop Pct": 0.9, "Image Size": 224,
                      "Weights": "https://x.org/a.pth"},
                "b": {"FLOPs": 5}}
    edits, result = sync_once(text, measured, fill_missing=True)
    assert result == ("<!--\nModels:\n- Name: a\n  Metadata:\n    ID: a\n    Tasks:\n    - Image Classification\n"
                      "    Layers: 18\n    Parameters: 100\n    Image Size: '224'\n    Crop Pct: '0.9'\n"
                      "  Results:\n  - Task: Image Classification\n    Metrics:\n      Top 1 Accuracy: 70%\n"
                      "  Weights: https://x.org/a.pth\n"
                      "- Name: b\n  Metadata:\n    ID: b\n    FLOPs: 5\n-->\n")
    assert [(e.line, e.model, e.field, e.is_insertion) for e in edits] == [
        (8, "a", "Layers", True), (8, "a", "Parameters", True), (8, "a", "Image Size", True),
        (8, "a", "Crop Pct", True), (12, "a", "Weights", True), (15, "b", "FLOPs", True)]
    assert edits[4].describe() == f"{PATH}:12: a Weights: (missing) -> 'https://x.org/a.pth'"
    assert outside_spans(text, edits) == text  # insertions only: the original is all still there
    assert new_text_only(result, edits) == text
    assert_idempotent(result, measured, fill_missing=True)


def test_fill_missing_creates_metadata_when_there_is_none():
    text = "<!--\nModels:\n- Name: a\n  In Collection: ResNet\n-->\n"
    _, result = sync_once(text, {"a": {"Parameters": 100, "FLOPs": 200}}, fill_missing=True)
    assert result == ("<!--\nModels:\n- Name: a\n  In Collection: ResNet\n  Metadata:\n"
                      "    Parameters: 100\n    FLOPs: 200\n-->\n")


def test_fill_missing_under_an_empty_metadata_key():
    text = "<!--\nModels:\n- Name: a\n  Metadata:\n  Code: https://x.org\n-->\n"
    _, result = sync_once(text, {"a": {"Layers": 50}}, fill_missing=True)
    assert result == "<!--\nModels:\n- Name: a\n  Metadata:\n    Layers: 50\n  Code: https://x.org\n-->\n"


def test_fill_missing_in_flow_mappings():
    text = "<!--\nModels:\n- {Name: a, Metadata: {ID: a}}\n- {Name: b, Metadata: {}}\n- {Name: c}\n-->\n"
    measured = {"a": {"Layers": 50, "Weights": "https://x.org/a.pth"}, "b": {"Layers": 18},
                "c": {"Layers": 34, "FLOPs": 7}}
    _, result = sync_once(text, measured, fill_missing=True)
    assert result == ("<!--\nModels:\n- {Name: a, Metadata: {ID: a, Layers: 50}, Weights: https://x.org/a.pth}\n"
                      "- {Name: b, Metadata: {Layers: 18}}\n- {Name: c, Metadata: {Layers: 34, FLOPs: 7}}\n-->\n")
    assert_idempotent(result, measured, fill_missing=True)


def test_fill_missing_new_metadata_and_weights_after_a_trailing_comma():
    text = "<!--\nModels:\n- {Name: a, Code: x,}\n-->\n"
    _, result = sync_once(text, {"a": {"Layers": 1, "Weights": "https://x.org/a.pth"}}, fill_missing=True)
    assert result == "<!--\nModels:\n- {Name: a, Code: x,Metadata: {Layers: 1}, Weights: https://x.org/a.pth}\n-->\n"


def test_fill_missing_after_a_flow_mapping_that_spans_lines():
    text = ("<!--\nModels:\n- Name: a\n  Results:\n  - Metrics: {Top 1 Accuracy: 1%,\n      Top 5 Accuracy: 2%\n"
            "    }\n-->\n")
    _, result = sync_once(text, {"a": {"Layers": 1, "Weights": "https://x.org/a.pth"}}, fill_missing=True)
    assert result == ("<!--\nModels:\n- Name: a\n  Results:\n  - Metrics: {Top 1 Accuracy: 1%,\n"
                      "      Top 5 Accuracy: 2%\n    }\n  Metadata:\n    Layers: 1\n  Weights: https://x.org/a.pth\n-->\n")


def test_fill_missing_when_the_comment_closes_on_the_last_line():
    text = "<!--\nModels:\n- Name: a\n  Metadata:\n    ID: a -->\n"
    _, result = sync_once(text, {"a": {"Layers": 50, "Weights": "https://x.org/a.pth"}}, fill_missing=True)
    assert result == "<!--\nModels:\n- Name: a\n  Metadata:\n    ID: a \n    Layers: 50\n  Weights: https://x.org/a.pth\n-->\n"


def test_fill_missing_under_an_empty_metadata_key_on_the_closing_line():
    text = "<!--\nModels:\n- Name: a\n  Metadata: -->\n"
    _, result = sync_once(text, {"a": {"Layers": 2, "Weights": "https://x.org/w.pth"}}, fill_missing=True)
    assert result == "<!--\nModels:\n- Name: a\n  Metadata: \n    Layers: 2\n  Weights: https://x.org/w.pth\n-->\n"


def test_fill_missing_keeps_crlf_line_endings():
    text = "<!--\r\nModels:\r\n- Name: a\r\n  Metadata:\r\n    ID: a\r\n-->\r\n"
    _, result = sync_once(text, {"a": {"Layers": 50, "Parameters": 7}}, fill_missing=True)
    assert result == ("<!--\r\nModels:\r\n- Name: a\r\n  Metadata:\r\n    ID: a\r\n    Layers: 50\r\n"
                      "    Parameters: 7\r\n-->\r\n")


def test_a_lone_carriage_return_ends_a_line_as_it_does_for_yaml():
    text = "<!--\nModels:\n- Name: a\n  Metadata:\n    ID: a\r  Code: https://x.org\n-->\n"
    _, result = sync_once(text, {"a": {"Layers": 2}}, fill_missing=True)
    assert result == "<!--\nModels:\n- Name: a\n  Metadata:\n    ID: a\r    Layers: 2\n  Code: https://x.org\n-->\n"


def test_fill_missing_keeps_a_deeper_indentation():
    text = "<!--\nModels:\n  - Name: a\n    Metadata:\n        ID: a\n-->\n"
    _, result = sync_once(text, {"a": {"Layers": 50, "Weights": "https://x.org/a.pth"}}, fill_missing=True)
    assert result == ("<!--\nModels:\n  - Name: a\n    Metadata:\n        ID: a\n        Layers: 50\n"
                      "    Weights: https://x.org/a.pth\n-->\n")


def test_fill_missing_on_the_fixture_is_idempotent_and_touches_only_inserted_text():
    measured = {name: dict(values, Layers=18 if name == "resnet18" else 50) for name, values in MATCHING.items()}
    edits, result = sync_once(card_text(), measured, fill_missing=True)
    assert [(e.model, e.field, e.new) for e in edits] == [("resnet18", "Layers", "    Layers: 18\n")]
    assert result.splitlines()[38] == "    Layers: 18"  # after Interpolation, the last Metadata line
    assert_idempotent(result, measured, fill_missing=True)


# ---------------------------------------------------------------------------------------------
# Mistakes of the caller and stale text


def test_unknown_model_field_or_value_is_a_programming_error():
    card = parse_card(PATH, card_text())
    with pytest.raises(ValueError, match="has no model named 'resnet152'; its models are resnet18, resnet50"):
        plan_sync(card, {"resnet152": {"Parameters": 1}})
    with pytest.raises(ValueError, match="sync does not write 'Top 1 Accuracy'"):
        plan_sync(card, {"resnet18": {"Top 1 Accuracy": "70%"}})
    for field, value in [("Parameters", -1), ("Parameters", True), ("Parameters", 1.5), ("Image Size", "224"),
                         ("Crop Pct", 1.5), ("Interpolation", "cubic"), ("Weights", "a.pth")]:
        with pytest.raises(ValueError, match=f"measured {field} must be a valid value"):
            plan_sync(card, {"resnet18": {field: value}})


def test_applying_edits_to_changed_text_is_refused():
    text = card_text()
    edits = plan_sync(parse_card(PATH, text), {"resnet18": {"Parameters": 1}})
    changed = text.replace("11689512", "11689999")
    with pytest.raises(CardError) as raised:
        apply_edits(changed, edits)
    assert raised.value.findings[0].format() == (
        f"{PATH}:28: error: cannot apply the change to resnet18 Parameters: the file changed since it was read\n"
        "    hint: run the sync again")


def test_overlapping_edits_are_refused():
    edit = Edit(PATH, 1, "a", "Layers", (0, 3), "abc", "x")
    with pytest.raises(CardError):
        apply_edits("abcdef", [edit, Edit(PATH, 1, "a", "FLOPs", (2, 4), "cd", "y")])
    assert apply_edits("abcdef", [Edit(PATH, 1, "a", "x", (3, 3), "", "1"),
                                  Edit(PATH, 1, "a", "y", (3, 3), "", "2"), edit]) == "x12def"


# ---------------------------------------------------------------------------------------------
# The diff


def test_render_diff():
    old = "a\nb\nc\n"
    assert render_diff(PATH, old, old) == ""
    assert render_diff(PATH, old, "a\nB\nc\n") == (
        f"--- a/{PATH}\n+++ b/{PATH}\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n")


def test_render_diff_marks_a_missing_final_newline():
    assert render_diff(PATH, "a\nb", "a\nc") == (
        f"--- a/{PATH}\n+++ b/{PATH}\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
        "+c\n\\ No newline at end of file\n")


def test_render_diff_shows_only_changed_lines_of_a_repetitive_card():
    old = "".join(f"- Name: m{i}\n  Code: same.py\n  Layers: {i}\n" for i in range(120))
    new = old.replace("  Layers: 60\n", "  Layers: 61\n")
    diff = render_diff(PATH, old, new)
    assert [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("---", "+++"))] == [
        "-  Layers: 60", "+  Layers: 61"]


# ---------------------------------------------------------------------------------------------
# The atomic write

ORIGINAL = "# Card\r\n<!--\r\nModels: []\r\n-->\r\n"
NEW = "# Café card\r\nno final newline"


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "resnet.md"
    path.write_bytes(ORIGINAL.encode())
    path.chmod(0o640)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name != "resnet.md")


def test_write_atomic_writes_exact_bytes_and_keeps_permissions(target):
    write_atomic(target, NEW)
    assert target.read_bytes() == NEW.encode("utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(target.parent) == []


def test_write_atomic_creates_a_new_file(tmp_path):
    write_atomic(tmp_path / "resnet.md", "x\n")
    assert (tmp_path / "resnet.md").read_text() == "x\n" and leftovers(tmp_path) == []


def test_write_atomic_writes_through_a_symlink(target):
    link = target.parent / "link.md"
    link.symlink_to(target)
    write_atomic(link, NEW)
    assert link.is_symlink() and target.read_bytes() == NEW.encode()


def fail(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("step", ["write", "fsync", "chmod", "replace"])
def test_a_failure_at_any_step_leaves_the_original_and_no_temp_file(target, monkeypatch, step):
    monkeypatch.setattr(sync_module.os, step, fail)
    with pytest.raises(CardError) as raised:
        write_atomic(target, NEW)
    monkeypatch.undo()
    assert raised.value.findings[0].format() == (
        f"{target}: error: cannot write the card template: No space left on device; the original is unchanged\n"
        "    hint: check the permissions of the file and its folder, and the free disk space")
    assert target.read_bytes() == ORIGINAL.encode()
    assert leftovers(target.parent) == []


def test_a_crash_half_way_through_the_write(target, monkeypatch):
    real_write = os.write

    def write_half_then_die(descriptor, data):
        real_write(descriptor, bytes(data[: len(data) // 2]))
        raise KeyboardInterrupt  # the process is interrupted mid-write

    monkeypatch.setattr(sync_module.os, "write", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, NEW * 1000)
    assert target.read_bytes() == ORIGINAL.encode()
    assert leftovers(target.parent) == []


def test_an_unwritable_folder_is_a_card_error(tmp_path):
    with pytest.raises(CardError) as raised:
        write_atomic(tmp_path / "no" / "such" / "dir.md", "x")
    assert raised.value.findings[0].message.startswith("cannot write the card template: No such file or directory")


def test_sync_then_write_round_trip(tmp_path):
    path = tmp_path / "resnet.md"
    path.write_bytes(RESNET_CARD.read_bytes())
    card = parse_card(path)
    edits = plan_sync(card, {"resnet50": {"Parameters": 25557033}})
    write_atomic(path, apply_edits(card.text, edits))
    again = parse_card(path)
    assert again.model("resnet50").fields["Parameters"].value == 25557033
    assert plan_sync(again, {"resnet50": {"Parameters": 25557033}}) == []


def test_sync_write_through_the_command_line_keeps_a_crlf_card_crlf(tmp_path, monkeypatch, capsys,
                                                                        tmp_path_factory):
    # Found by the end-to-end property test: the command line compares the card on disk with the text it
    # parsed, and must read it the same way (no newline translation), or a CRLF card is never written.
    from resfam.cards.cli import main

    (tmp_path / "templates" / "models").mkdir(parents=True)
    card = tmp_path / "templates" / "models" / "resnet.md"
    text = b"# ResNet\r\n\r\n<!--\r\nModels:\r\n- Name: resnet18\r\n  Metadata:\r\n    Layers: 19\r\n-->\r\n"
    card.write_bytes(text)
    monkeypatch.chdir(tmp_path)
    cache = tmp_path_factory.getbasetemp() / "shared-resfam-cache"  # the session's, as the other modules
    code = main(["sync", "--write", "templates/models/resnet.md", "--cache-dir", str(cache), "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert card.read_bytes() == text.replace(b"Layers: 19", b"Layers: 18")
