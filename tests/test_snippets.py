"""The usage snippets of every card, executed as a reader would run them.

For each family, `templates/code_snippets.md` is rendered with that card's context, its Python code
blocks are run in order in one namespace, with a local checkpoint standing in for the download
(torch.hub uses a file already in $TORCH_HOME/hub/checkpoints without fetching it) and the network
switched off. Then the results are checked, not just the absence of an exception.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from sitebuild import refuse_network

import resfam
from resfam.cards import card_context, parse_card, render_template
from resfam.hub import cached_path
from resfam.registry import get_model_entry

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
CARDS = sorted((TEMPLATES / "models").glob("*.md"))
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TOPICS = ("Create", "Preprocess", "top-5", "Fine-tune", "features")


def snippets_for(card_path: Path) -> str:
    card = parse_card(card_path)
    return render_template(TEMPLATES / "code_snippets.md", TEMPLATES, card_context(card))


def test_every_card_has_snippets():
    # one card per family of the zoo
    assert {path.stem for path in CARDS} == {get_model_entry(name).family for name in resfam.list_models()}
    for card_path in CARDS:
        assert "{% include 'code_snippets.md' %}" in card_path.read_text(encoding="utf-8"), card_path


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_snippets_run(card_path, tmp_path, monkeypatch):
    name = card_context(parse_card(card_path))["model_name"]
    markdown = snippets_for(card_path)
    for topic in TOPICS:
        assert re.search(rf"^### .*{re.escape(topic)}", markdown, re.MULTILINE), topic
    blocks = CODE_BLOCK.findall(markdown)
    assert len(blocks) == 5
    assert all(f'"{name}"' in block for block in blocks if "create_model" in block)

    # the reader's setup, offline: a photo in the working directory, the weights in torch.hub's cache
    refuse_network(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    Image.effect_noise((320, 240), 64).convert("RGB").save("image.jpg")
    torch.manual_seed(0)
    weights = resfam.create_model(name).state_dict()
    checkpoint = Path(cached_path(resfam.get_model_config(name).url))
    checkpoint.parent.mkdir(parents=True)
    torch.save(weights, checkpoint)

    namespace: dict = {"__name__": "__main__"}

    def run(block: str) -> str:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(block, f"<{card_path.stem} snippet>", "exec"), namespace)
        return output.getvalue()

    def assert_loaded(model: torch.nn.Module) -> None:
        for key, value in model.state_dict().items():
            assert torch.equal(value, weights[key]), key

    create, preprocess, predict, fine_tune, extract = blocks
    config = resfam.get_model_config(name)
    size = config.input_size[-1]

    # create: the family's models listed, the model made with the checkpoint's weights
    assert name in run(create)
    assert_loaded(namespace["model"])
    assert not namespace["model"].training

    # preprocess: the model's input size, normalized with its mean and std
    run(preprocess)
    assert namespace["batch"].shape == (1, 3, size, size)
    grey = namespace["preprocess"](Image.new("RGB", (300, 200), (128, 128, 128)))
    expected = (128 / 255 - torch.tensor(config.mean)) / torch.tensor(config.std)
    torch.testing.assert_close(grey[0, :, size // 2, size // 2], expected, rtol=1e-4, atol=1e-4)

    # top-5: five class names printed, most likely first
    printed = run(predict)
    probabilities, top5 = namespace["probabilities"], namespace["top5"]
    assert probabilities.shape == (1000,)
    torch.testing.assert_close(probabilities.sum(), torch.tensor(1.0))
    assert top5.values.tolist() == probabilities.topk(5).values.tolist()
    names = [resfam.imagenet_labels()[index] for index in top5.indices.tolist()]
    assert re.findall(r"^ *(.+?): +[\d.]+%$", printed, re.MULTILINE) == names

    # fine-tune: a new 10-class head on the checkpoint's backbone, and one step taken
    assert re.fullmatch(r"loss \d+\.\d{3}\n", run(fine_tune))
    assert namespace["model"].get_classifier().out_features == 10

    # features: a headless model with the checkpoint's weights; the feature map and its average
    run(extract)
    backbone = namespace["backbone"]
    assert_loaded(backbone)
    features = backbone.num_features
    assert namespace["feature_map"].shape == (1, features, size // 32, size // 32)
    assert namespace["embedding"].shape == (1, features)
    torch.testing.assert_close(namespace["embedding"], namespace["feature_map"].mean(dim=(2, 3)))
    # the stage outputs, named as the card names them; the last one is the feature map
    assert len(namespace["stages"]) == 4
    torch.testing.assert_close(namespace["stages"][-1], namespace["feature_map"])
    assert namespace["feature_channels"][-1] == features and namespace["feature_reduction"] == [4, 8, 16, 32]
