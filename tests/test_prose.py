"""Literal figures in a card's prose: flagged at their line with what the code measures and the expression
to write instead; ordinary numbers are not flagged."""
from __future__ import annotations

from dataclasses import asdict

import pytest
from card_entries import RESNET18_MEASURED, RESNET50_MEASURED

from resfam.cards import parse_card
from resfam.cards.prose import literal_figures

FACTS = {
    "resnet50": {**asdict(RESNET50_MEASURED), "layers": 50, "image_size": 224},
    "resnet18": {**asdict(RESNET18_MEASURED), "layers": 18, "image_size": 224},
}
BLOCK = "<!--\nType: model-index\nModels:\n- Name: resnet50\n  Metadata:\n    ID: resnet50\n    Layers: 50\n-->\n"


def findings(prose: str):
    card = parse_card("templates/models/resnet.md", "# ResNet\n\n" + prose + "\n\n" + BLOCK)
    return literal_figures(card, FACTS)


@pytest.mark.parametrize("sentence, field, expression", [
    ("resnet50 has 23.0 million parameters.", "Parameters", "{{ models.resnet50.parameters | millions }}"),
    ("`resnet50` has 25.6M params.", "Parameters", "{{ models.resnet50.parameters | millions }}"),
    ("`resnet50` has 25,557,032 parameters.", "Parameters", "{{ models.resnet50.parameters | grouped }}"),
    ("It costs about 1 GFLOP more than `resnet50`.", "FLOPs", "{{ models.resnet50.flops | gflops }}"),
    ("`resnet50` needs 4.1 GMACs.", "FLOPs", "{{ models.resnet50.flops | gflops }}"),
    ("`resnet50` takes 4,111,512,576 FLOPs.", "FLOPs", "{{ models.resnet50.flops | grouped }}"),
    ("`resnet50` has 11.1M activations.", "Activations", "{{ models.resnet50.activations | millions }}"),
    ("The `resnet50` checkpoint is 102.5 MB.", "File Size", "{{ models.resnet50.file_size | mb }} MB"),
    ("`resnet50` has 50 layers.", "Layers", "{{ models.resnet50.layers }}"),
    ("The 50-layer `resnet50`.", "Layers", "{{ models.resnet50.layers }}"),
    ("`resnet18` has 11.7 million parameters.", "Parameters", "{{ models.resnet18.parameters | millions }}"),
])
def test_a_literal_figure_is_flagged_with_what_the_code_measures_and_what_to_write(sentence, field, expression):
    [finding] = findings(sentence)
    model = "resnet18" if "resnet18" in sentence else "resnet50"
    assert (finding.status, finding.path, finding.line, finding.field) == ("warning", "templates/models/resnet.md",
                                                                          3, field)
    assert finding.model == model and finding.measured == FACTS[model][
        {"File Size": "file_size"}.get(field, field.lower())]
    assert f"the code measures {model} {field}: " in finding.message
    assert finding.hint.startswith(f"write {expression} instead")


def test_the_issues_sentence_names_the_measured_figure():
    [finding] = findings("Some text.\n\nresnet50 has 23.0 million parameters.")
    assert finding.format() == (
        "templates/models/resnet.md:5: warning: the prose writes '23.0 million parameters' as a literal figure, "
        "which the build does not check; the code measures resnet50 Parameters: 25,557,032 (25.6 million)\n"
        "    hint: write {{ models.resnet50.parameters | millions }} instead (the template's variables: "
        "resfam/cards/render.py)")


def test_a_figure_in_a_sentence_that_names_no_model_still_says_what_to_write():
    [finding] = findings("Models like these have about 25 million parameters.")
    assert finding.model is None and finding.measured is None
    assert "the sentence names no model of this card" in finding.message
    assert finding.hint.startswith("write {{ models.resnet50.parameters | millions }}")


@pytest.mark.parametrize("prose", [
    "He et al. (2016) introduced residual learning in 2015; a 3x3 convolution, a 7x7 stem and 1x1 shortcuts.",
    "Trained for 90 epochs with batch size 256 on 8 GPUs, learning rate 0.1, stride 2, 64 channels, 4x wider.",
    "`resnet50` has {{ models.resnet50.parameters | millions }} million parameters and "
    "{{ models.resnet50.layers }} layers.",
    "```BibTeX\n@article{he, year = {2015}, pages = {770--778}, note = {50 layers, 25.6M params}}\n```",
    "The snippet `model(torch.zeros(1, 3, 224, 224))` and `2 layers` in code.",
    "See https://example.org/resnet50-50-layers-25MB.pth for the weights.",
    "<!-- a note: 50 layers -->",
    "{% raw %}50 layers{% endraw %} and {# 25.6 million parameters #}",
    "Four stages of residual blocks, and the layers of a block; parameters are counted by the build.",
    "`res2net50_26w_4s` reads: 26w x 4, 48w x 2; resnet50d_ra2-464e36ba.pth; version 1.2.3 layers",
])
def test_ordinary_numbers_and_non_prose_are_not_flagged(prose):
    assert findings(prose) == []


STAGES = {"resnet50": {**FACTS["resnet50"], "blocks": [3, 4, 6, 3], "widths": [256, 512, 1024, 2048],
                       "inner_widths": [64, 128, 256, 512], "stem_widths": [64]}}


@pytest.mark.parametrize("sentence, literal, expression", [
    ("`resnet50` stacks 3, 4, 6, 3 blocks.", "3, 4, 6, 3 blocks", "{{ models.resnet50.blocks | join(', ') }}"),
    ("`resnet50` stacks 3-4-6-3 bottleneck blocks.", "3-4-6-3 bottleneck blocks",
     "{{ models.resnet50.blocks | join(', ') }}"),
    ("`resnet50` has 3, 4, 6 and 3 blocks per stage.", "3, 4, 6 and 3 blocks",
     "{{ models.resnet50.blocks | join(', ') }}"),
    ("Its stages end in [256, 512, 1024, 2048] channels.", "[256, 512, 1024, 2048] channels",
     "{{ models.resnet50.widths | join(', ') }}"),
    ("Its bottlenecks are 64, 128, 256, 512 channels wide.", "64, 128, 256, 512 channels",
     "{{ models.resnet50.inner_widths | join(', ') }}"),
])
def test_a_stage_layout_written_by_hand_is_flagged_with_the_expression_to_write(sentence, literal, expression):
    card = parse_card("templates/models/resnet.md", "# ResNet\n\n" + sentence + "\n\n" + BLOCK)
    [finding] = literal_figures(card, STAGES)
    assert (finding.status, finding.line, finding.model, finding.strict) == ("warning", 3, "resnet50", True)
    assert f"the prose writes the stage layout {literal!r} by hand" in finding.message
    assert finding.hint.startswith(f"write {expression} instead")


@pytest.mark.parametrize("prose", [
    "a fixed blur (the 3x3 binomial filter [1, 2, 1] x [1, 2, 1] / 16, as blocks downsample)",
    "`resnet50` uses {{ models.resnet50.blocks | join(', ') }} blocks.",
    "Trained in 3 stages: 10, 20, 30 epochs.",
])
def test_other_number_lists_are_not_stage_layouts(prose):
    card = parse_card("templates/models/resnet.md", "# ResNet\n\n" + prose + "\n\n" + BLOCK)
    assert literal_figures(card, STAGES) == []
