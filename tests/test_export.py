"""`resfam-cards export hub OUT`: every card of the repository exported, each README.md read back by
huggingface_hub itself (offline) with its figures equal to the verified ones; a card that drifts is
not exported at all."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
from sitebuild import REPO, refuse_network
from tools import python_module

import resfam
from resfam.cards.cli import main
from resfam.cards.kinds import percentage_value
from resfam.cards.verify import verify
from resfam.config import LICENSE_NOT_STATED


def as_card_writes(field: str, value):
    """A verified claim as plain data: the card quotes Image Size and Crop Pct."""
    return int(value) if field == "Image Size" else float(value) if field == "Crop Pct" else value


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_cache):
    """The repository's cards exported once (through the session's measurement cache) and verified."""
    out = tmp_path_factory.mktemp("hub")
    cache = shared_cache
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        code = main(["export", "hub", str(out), "-q", "--cache-dir", str(cache)])
        report = verify(cache_dir=cache)
    assert code == 0 and report.ok
    return out, report


def test_every_model_gets_a_folder_with_a_card_and_its_config(exported):
    out, report = exported
    names = sorted(model.name for card in report.cards for model in card.card.models)
    assert sorted(path.name for path in out.iterdir()) == names
    for result in report.cards:
        for model in result.card.models:
            assert sorted(path.name for path in (out / model.name).iterdir()) == ["README.md", "config.json"]
            config = json.loads((out / model.name / "config.json").read_text(encoding="utf-8"))
            registered = json.loads(json.dumps(dataclasses.asdict(resfam.get_model_config(model.model_id))))
            assert config == {"architecture": model.model_id, "family": result.card.family,
                              "image_size": registered["input_size"][-1], **registered}


def test_huggingface_hub_reads_every_card_with_the_verified_figures(exported, monkeypatch):
    out, report = exported
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refuse_network(monkeypatch)
    hub = python_module("huggingface_hub")
    for result in report.cards:
        citation = re.search(r"```BibTeX\n.*?```", result.markdown, re.DOTALL).group()
        for model in result.card.models:
            card = hub.ModelCard.load(out / model.name / "README.md")
            data = card.data
            assert (data.library_name, data.pipeline_tag) == ("resfam", "image-classification")
            # the licence of the checkpoint as the registry records it from its publisher, none assumed
            stated = resfam.get_model_config(model.model_id).license
            assert data.license == ("unknown" if stated == LICENSE_NOT_STATED else stated), model.name
            assert data.datasets == ["imagenet-1k"] and result.card.family in data.tags
            accuracies = {name: percentage_value(claim.value) for name, claim in model.results.items()}
            assert {r.metric_name: r.metric_value for r in data.eval_results} == accuracies
            assert {r.dataset_name for r in data.eval_results} == {"ImageNet"}

            verified = {f.field: as_card_writes(f.field, f.claimed) for f in result.findings
                        if f.model == model.name and f.status == "ok" and f.field != "ID"}
            assert len(verified) == 11  # Activations too
            assert data.to_dict()["resfam"]["verified"] == verified
            table = card.text[card.text.index("## Figures"):]
            for field, value in verified.items():
                shown = f"{value:,}" if isinstance(value, int) else ", ".join(value) if isinstance(value, list) \
                    else str(value)
                assert f"| {field} | {shown} |" in table and "| verified |" in table
            # the card's own text, rendered for this model: the usage snippets create it, then the citation
            assert f'resfam.create_model("{model.model_id}", pretrained=True)' in card.text
            assert card.text.index("## How do I use this model?") < card.text.index("## Citation")
            assert citation in card.text
            assert "Type: model-index" not in card.text and "<!--" not in card.text


def test_a_card_that_drifts_is_not_exported(tmp_path, shared_cache, monkeypatch, capsys):
    project = tmp_path / "project"
    shutil.copytree(REPO / "templates", project / "templates")
    card = project / "templates" / "models" / "resnet.md"
    card.write_text(card.read_text(encoding="utf-8").replace("Layers: 18\n", "Layers: 19\n", 1), encoding="utf-8")
    monkeypatch.chdir(project)
    code = main(["export", "hub", "out", "templates/models/resnet.md", "-q", "--cache-dir", str(shared_cache)])
    err = capsys.readouterr().err
    assert code == 1 and not (project / "out").exists()
    assert re.search(r"templates/models/resnet\.md:\d+: drift: resnet18 Layers: card says 19", err)
    assert "nothing written" in err


def test_an_out_folder_that_cannot_be_made_is_bad_input(tmp_path, shared_cache, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    code = main(["export", "hub", str(blocker), "templates/models/resnet.md", "-q", "--cache-dir", str(shared_cache)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot make the folder" in err and "Traceback" not in err
    assert blocker.read_text(encoding="utf-8") == "not a folder\n"



def test_the_licences_are_each_publishers_and_the_option_only_overrides(exported, tmp_path, shared_cache,
                                                                       monkeypatch):
    out, _ = exported
    hub = python_module("huggingface_hub")
    licences = {name: hub.ModelCard.load(out / name / "README.md").data.license
                for name in ("tv_resnet50", "resnet50d", "resnest50d", "res2net50_26w_4s")}
    assert licences == {"tv_resnet50": "bsd-3-clause", "resnet50d": "apache-2.0", "resnest50d": "apache-2.0",
                        "res2net50_26w_4s": "unknown"}
    monkeypatch.chdir(REPO)
    code = main(["export", "hub", str(tmp_path), "templates/models/res2net.md", "--license", "other", "-q",
                 "--cache-dir", str(shared_cache)])
    assert code == 0
    assert hub.ModelCard.load(tmp_path / "res2net50_26w_4s" / "README.md").data.license == "other"
