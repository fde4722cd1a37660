"""An unfinished card is not publishable: the placeholders `resfam-cards new` writes, a model without
Results and a collection named by its slug are strict warnings, each at its line (read without measuring)."""
from card_entries import RESNET18, card_text, with_results

from resfam.cards.cli import card_template
from resfam.cards.model_index import parse_card
from resfam.cards.unfinished import display_name, unfinished_findings

PATH = "templates/models/wide-resnet.md"


def findings_of(text: str) -> list[str]:
    found = unfinished_findings(parse_card(PATH, text))
    assert all(finding.status == "warning" and finding.strict for finding in found)
    return [f"{finding.line}: {finding.message}" for finding in found]


def test_a_card_straight_from_new_is_unfinished_at_each_placeholder_and_model():
    weights = "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth"  # published: it has an accuracy
    text = card_template("wide-resnet", {"wide_resnet50_2": {"Layers": 50, "Weights": weights}})
    lines = text.splitlines()
    assert findings_of(text) == [
        f"{lines.index(line) + 1}: placeholder left in the card: {line}" for line in lines if line.startswith("TODO:")
    ] + [f"{lines.index('- Name: wide_resnet50_2') + 1}: wide_resnet50_2 states no accuracy: the entry has no Results",
         f"{lines.index('- Name: wide-resnet') + 1}: the collection is named 'wide-resnet', a slug: the overview, "
         "the chart's legend and the navigation show this name"]


def test_a_finished_card_has_none():
    text = card_template(display_name("wide-resnet"), {"resnet18": {"Layers": 18}})
    finished = "\n".join(line for line in text.splitlines() if not line.startswith("TODO:"))
    finished = finished.replace("  Metadata:\n", "  Results:\n  - Task: Image Classification\n    Dataset: ImageNet\n"
                                "    Metrics:\n      Top 1 Accuracy: 69.74%\n  Metadata:\n")
    assert findings_of(finished) == []
    assert findings_of(card_text(with_results(RESNET18, "resnet18"))) == []  # no collection named: not flagged
    line = card_text(RESNET18).splitlines().index("- Name: resnet18") + 1
    assert findings_of(card_text(RESNET18)) == [f"{line}: resnet18 states no accuracy: the entry has no Results"]


def test_a_model_without_weights_states_no_accuracy_and_is_finished_without_one():
    """An untrained model (a zoo's example) has no accuracy to state: no Results is not a placeholder."""
    text = card_template("Wide ResNet", {"wide_resnet50_2": {"Layers": 50}})
    finished = "\n".join(line for line in text.splitlines() if not line.startswith("TODO:"))
    assert findings_of(finished) == []


def test_the_display_name_of_a_family():
    assert [display_name(family) for family in ("wide-resnet", "resnet-d", "res2net", "big-transfer", "b")] == [
        "Wide ResNet", "ResNet-D", "Res2Net", "Big Transfer", "B"]
