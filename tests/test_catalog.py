"""The catalog: one list of models that the overview page and models.json are both made from, and
whose statuses say how far each figure is checked."""
import json
from pathlib import Path

from card_entries import RESNET18_MEASURED as MEASURED
from tools import python_module

from resfam.cards import Finding, parse_card
from resfam.cards.catalog import model_catalog, models_json
from resfam.cards.figures import CardPage
from resfam.cards.kinds import plain_value
from resfam.cards.pages import overview_page

REPO = Path(__file__).resolve().parents[1]
# resnet18 with a wrong FLOPs figure (a drift)
CARD = f"""\
# Test

<!--
Type: model-index
Models:
- Name: resnet18
  Metadata:
    ID: resnet18
    Parameters: {MEASURED.parameters}
    FLOPs: 1000
    Epochs: 90
    Image Size: '224'
  Results:
  - Task: Image Classification
    Dataset: ImageNet
    Metrics:
      Top 1 Accuracy: 69.76%
-->
"""
PATH = "templates/models/resnet.md"
VERSIONS = {"python": "3.11.7", "torch": "2.13.0", "fvcore": "0.1.5.post20221221"}


def page() -> CardPage:
    card = parse_card(PATH, CARD)
    findings = [
        Finding("ok", PATH, 9, "ok", model="resnet18", field="Parameters", claimed=MEASURED.parameters,
                measured=MEASURED.parameters),
        Finding("drift", PATH, 10, "drift", model="resnet18", field="FLOPs", claimed=1000,
                measured=MEASURED.flops),
        Finding("ok", PATH, 12, "ok", model="resnet18", field="Image Size", claimed="224", measured=224),
    ]
    measured = {"resnet18": {"ID": "resnet18", "Parameters": MEASURED.parameters, "FLOPs": MEASURED.flops,
                             "File Size": MEASURED.file_size, "Image Size": 224}}
    return CardPage("models/resnet.md", PATH, "resnet", card, CARD, findings, measured)


def test_each_figure_has_its_status_unit_and_convention():
    [model] = model_catalog([page()])
    statuses = {name: (figure.status, figure.unit, figure.value) for name, figure in model.figures.items()}
    assert statuses == {
        "Parameters": ("verified", "count", MEASURED.parameters),
        "FLOPs": ("drift", "FLOPs", 1000),
        "File Size": ("measured", "bytes", MEASURED.file_size),  # not on the card: the measurement
        "Top 1 Accuracy": ("reported", "%", 69.76),
        "Image Size": ("verified", "pixels", 224),
        "Epochs": ("reported", "epochs", 90),  # a training fact: stated, not checked
    }
    assert model.figures["FLOPs"].measured == MEASURED.flops and model.figures["Top 1 Accuracy"].measured is None
    assert "on ImageNet" in model.figures["Top 1 Accuracy"].convention
    assert model.figures["Epochs"].convention == "stated on the card; not checked by the build"
    assert "fvcore" in model.figures["FLOPs"].convention


def test_models_json_of_a_serve_build_with_drift_still_follows_the_schema():
    jsonschema = python_module("jsonschema")
    schema = json.loads((REPO / "docs" / "models.schema.json").read_text(encoding="utf-8"))
    data = models_json(model_catalog([page()]), {"models/resnet.md": "models/resnet/"}, VERSIONS)
    jsonschema.Draft202012Validator(schema).validate(data)
    [model] = data["models"]
    assert model["card_url"] == "models/resnet/#resnet18" and model["measured_with"] == VERSIONS
    broken = json.loads(json.dumps(data))
    del broken["models"][0]["figures"]["Parameters"]["measured"]  # a verified figure says what was measured
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_the_overview_is_made_from_the_catalog():
    catalog = model_catalog([page()])
    text = overview_page(catalog, src_uri="models/index.md", urls={"models/resnet.md": "resnet/"},
                         models_json="models.json")
    # no activations measured here, no top-5 reported, no licence registered
    assert "| [resnet18](resnet.md#resnet18) | resnet | 11.69 | 0.00 | — | 46.8 | 69.76 | — | 224 | — |" in text
    assert "1 models in 1 families" in text and "[models.json](../models.json)" in text


def test_plain_values():
    assert [plain_value(v) for v in ("224", "0.875", "80.53%", "80.5 %", "bicubic", 7, "1e3")] == \
        [224, 0.875, 80.53, 80.5, "bicubic", 7, "1e3"]


def test_the_licence_of_the_weights_is_reported_from_the_registry():
    """Never on the card: the registered config gives the licence, shown as the publisher's statement."""
    base = page()
    registered = {"License": "bsd-3-clause", "License Source": "https://github.com/pytorch/vision/blob/main/LICENSE",
                  "License Note": ""}
    measured = {"resnet18": {**base.measured["resnet18"], **registered}}
    [model] = model_catalog([CardPage(base.src_uri, base.path, base.family, base.card, base.markdown, base.findings,
                                      measured)])
    for name, value in registered.items():
        figure = model.figures[name]
        assert (figure.value, figure.status, figure.unit) == (value, "reported", None)
        assert "publisher" in figure.convention and "ImageNet" not in figure.convention
    text = overview_page([model], src_uri="models/index.md", urls={"models/resnet.md": "resnet/"})
    assert text.splitlines()[[line.startswith("| Model") for line in text.splitlines()].index(True)].endswith(
        "| License |")
    assert "| 224 | bsd-3-clause |" in text
