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
import socket
from pathlib import Path

import pytest
import torch
from PIL import Image

import resfam
from resfam.cards import card_context, parse_card, render_template
from resfam.hub import cached_path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
CARDS = sorted((TEMPLATES / "models").glob("*.md"))
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TOPICS = ("Create", "Preprocess", "top-5", "Fine-tune", "features")


def snippets_for(card_path: Path) -> str:
    card = parse_card(card_path)
    return render_template(TEMPLATES / "code_snippets.md", TEMPLATES, card_context(card))


@pytest.fixture
def offline(monkeypatch):
    """No connection to anything but the local machine's own sockets."""
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_every_card_has_snippets():
    assert len(CARDS) == 5
    for card_path in CARDS:
        assert "{% include 'code_snippets.md' %}" in card_path.read_text(encoding="utf-8"), card_path


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_snippets_run(card_path, tmp_path, monkeypatch, offline):
    name = card_context(parse_card(card_path))["model_name"]
    markdown = snippets_for(card_path)
    for topic in TOPICS:
        assert re.search(rf"^### .*{re.escape(topic)}", markdown, re.MULTILINE), topic
    blocks = CODE_BLOCK.findall(markdown)
    assert len(blocks) == 5
    assert all(f'"{name}"' in block for block in blocks if "create_model" in block)

    # the reader's setup: a photo in the working directory, the weights already in torch.hub's cache
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    Image.effect_noise((320, 240), 64).convert("RGB").save("image.jpg")
    torch.manual_seed(0)
    weights = resfam.create_model(name).state_dict()
    checkpoint = Path(cached_path(resfam.get_model_config(name).url))
    checkpoint.parent.mkdir(parents=True)
    torch.save(weights, checkpoint)

    namespace: dict = {"__name__": "__main__"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for block in blocks:
            exec(compile(block, f"<{card_path.stem} snippet>", "exec"), namespace)
    printed = output.getvalue()

    config = resfam.get_model_config(name)
    size = config.input_size[-1]
    # create: the listing of the family, and the model with the checkpoint's weights
    assert name in printed.splitlines()[0]
    # preprocess: the model's input size, and normalization with its mean and std
    assert namespace["batch"].shape == (1, 3, size, size)
    grey = namespace["preprocess"](Image.new("RGB", (300, 200), (128, 128, 128)))
    expected = (128 / 255 - torch.tensor(config.mean)) / torch.tensor(config.std)
    torch.testing.assert_close(grey[0, :, size // 2, size // 2], expected, rtol=1e-4, atol=1e-4)
    # top-5: five classes, most likely first, as the loaded model predicts them
    top5 = namespace["top5"]
    assert len(re.findall(r"^class +\d+: +[\d.]+%$", printed, re.MULTILINE)) == 5
    assert top5.values.tolist() == sorted(top5.values.tolist(), reverse=True)
    reference = resfam.create_model(name).eval()
    reference.load_state_dict(weights)
    with torch.inference_mode():
        expected_probabilities = reference(namespace["batch"]).softmax(dim=-1)[0]
    torch.testing.assert_close(namespace["probabilities"], expected_probabilities)
    assert top5.values.tolist() == expected_probabilities.topk(5).values.tolist()
    # fine-tune: a 10-class head, the backbone from the checkpoint, one step taken
    tuned = namespace["model"]
    assert tuned.get_classifier().out_features == 10
    assert re.search(r"^loss \d+\.\d{3}$", printed, re.MULTILINE)
    # features: a headless model with the checkpoint's weights; the feature map and its average
    backbone = namespace["backbone"]
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key
    features = backbone.num_features
    assert namespace["feature_map"].shape == (1, features, size // 32, size // 32)
    assert namespace["embedding"].shape == (1, features)
    torch.testing.assert_close(namespace["embedding"], namespace["feature_map"].mean(dim=(2, 3)))
