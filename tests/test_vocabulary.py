"""The vocabulary file of a docs project (resfam/cards/vocabulary.py): tags for classes a zoo owns, under
the rules of declared tags; examples/timm/architecture-tags.yml reads."""
from __future__ import annotations

from pathlib import Path

import pytest

from resfam.cards.findings import CardError
from resfam.cards.vocabulary import ClassTag, read_vocabulary

REPO = Path(__file__).resolve().parents[1]
SE = "each channel scaled by a weight computed from the channel means"


def read(tmp_path: Path, text: str) -> dict[str, ClassTag]:
    path = tmp_path / "architecture-tags.yml"
    path.write_text(text, encoding="utf-8")
    return read_vocabulary(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(CardError) as caught:
        read(tmp_path, text)
    return [finding.format() for finding in caught.value.findings]


def test_the_timm_example_s_vocabulary_reads():
    vocabulary = read_vocabulary(REPO / "examples" / "timm" / "architecture-tags.yml")
    assert vocabulary["timm.layers.squeeze_excite.SEModule"].tag == "Squeeze-and-Excitation"
    assert vocabulary["timm.models._efficientnet_blocks.SqueezeExcite"] == \
        vocabulary["timm.layers.squeeze_excite.SEModule"]


def test_one_tag_may_name_several_classes_with_one_definition(tmp_path):
    vocabulary = read(tmp_path, f"- class: a.A\n  tag: Gate\n  definition: {SE}\n"
                                f"- class: b.B\n  tag: Gate\n  definition: {SE}\n")
    assert vocabulary == {"a.A": ClassTag("Gate", SE), "b.B": ClassTag("Gate", SE)}


def test_two_definitions_of_one_tag_are_refused_with_the_line(tmp_path):
    [problem] = problems(tmp_path, f"- class: a.A\n  tag: Gate\n  definition: {SE}\n"
                                   "- class: b.B\n  tag: Gate\n  definition: something else\n")
    assert "architecture-tags.yml:4: error: the tag 'Gate' is defined differently at line 1" in problem


@pytest.mark.parametrize(("text", "message"), [
    ("- class: a.A\n  tag: ReLU\n  definition: x\n", "'ReLU' is a generic tag"),
    ("- class: a.A\n  tag: Gate\n  definition: x\n- class: a.A\n  tag: Other\n  definition: y\n",
     "the class a.A has an entry already"),
    ("- class: a.A\n  tag: Gate\n", "an entry needs exactly class, tag and definition"),
    ("class: a.A\n", "the vocabulary is not a list"),
    ("- class: [a\n", "not valid YAML"),
])
def test_a_bad_vocabulary_names_what_is_wrong(tmp_path, text, message):
    assert any(message in problem for problem in problems(tmp_path, text))
