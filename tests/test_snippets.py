"""The usage snippets of every card, executed as a reader would run them, by the engine's runner.

For each family, `templates/code_snippets.md` is rendered with that card's context and its Python code
blocks are run in order in one namespace by `resfam.cards.runner.CodeRun`, the runner the build uses:
offline, in a temporary working folder with a sample photo, with a stand-in checkpoint written where
torch.hub's download would land. Then the results are checked, not just the absence of an exception.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

import resfam
from resfam.cards import card_context, parse_card, render_template
from resfam.cards.runner import CodeRun, page_blocks
from resfam.hub import cached_path
from resfam.registry import get_model_entry

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
SNIPPETS = TEMPLATES / "code_snippets.md"
CARDS = sorted((TEMPLATES / "models").glob("*.md"))
TOPICS = ("Create", "Preprocess", "top-5", "Fine-tune", "features")


def snippets_for(card_path: Path) -> str:
    card = parse_card(card_path)
    return render_template(SNIPPETS, TEMPLATES, card_context(card))


def test_every_card_has_snippets():
    # one card per family of the zoo
    assert {path.stem for path in CARDS} == {get_model_entry(name).family for name in resfam.list_models()}
    for card_path in CARDS:
        assert "{% include 'code_snippets.md' %}" in card_path.read_text(encoding="utf-8"), card_path


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_snippets_run(card_path):
    name = card_context(parse_card(card_path))["model_name"]
    markdown = snippets_for(card_path)
    for topic in TOPICS:
        assert re.search(rf"^### .*{re.escape(topic)}", markdown, re.MULTILINE), topic
    blocks = page_blocks(markdown, str(SNIPPETS), TEMPLATES)
    assert len(blocks) == 5 and all(block.run for block in blocks)
    assert all(f'"{name}"' in block.code for block in blocks if "create_model" in block.code)
    # every line of a block is placed at its line of the template (a Jinja expression stays on its line)
    template = SNIPPETS.read_text(encoding="utf-8").splitlines()
    for block in blocks:
        for number, line in enumerate(block.code.splitlines(), 1):
            written = template[block.template_line(number) - 1]
            assert line == written or "{{" in written, (block.template_line(number), line)

    with CodeRun() as code_run:
        namespace = code_run.namespace

        def run(index: int) -> str:
            outcome = code_run.run(index, blocks[index].code)
            assert outcome.ok, outcome.error
            return outcome.output

        # create: the family's models listed, the model made with the stand-in checkpoint's weights
        assert name in run(0)
        # the reader's setup: a photo in the working directory, the weights in torch.hub's cache
        assert Image.open("image.jpg").size == (320, 240)
        config = resfam.get_model_config(name)
        weights = torch.load(cached_path(config.url), weights_only=True)
        assert cached_path(config.url).startswith(code_run.folder)

        def assert_loaded(model: torch.nn.Module) -> None:
            for key, value in model.state_dict().items():
                assert torch.equal(value, weights[key]), key

        size = config.input_size[-1]
        assert_loaded(namespace["model"])
        assert not namespace["model"].training

        # preprocess: the model's input size, normalized with its mean and std
        run(1)
        assert namespace["batch"].shape == (1, 3, size, size)
        grey = namespace["preprocess"](Image.new("RGB", (300, 200), (128, 128, 128)))
        expected = (128 / 255 - torch.tensor(config.mean)) / torch.tensor(config.std)
        torch.testing.assert_close(grey[0, :, size // 2, size // 2], expected, rtol=1e-4, atol=1e-4)

        # top-5: five class names printed, most likely first
        printed = run(2)
        probabilities, top5 = namespace["probabilities"], namespace["top5"]
        assert probabilities.shape == (1000,)
        torch.testing.assert_close(probabilities.sum(), torch.tensor(1.0))
        assert top5.values.tolist() == probabilities.topk(5).values.tolist()
        names = [resfam.imagenet_labels()[index] for index in top5.indices.tolist()]
        assert re.findall(r"^ *(.+?): +[\d.]+%$", printed, re.MULTILINE) == names

        # fine-tune: a new 10-class head on the checkpoint's backbone, and one step taken
        assert re.fullmatch(r"loss \d+\.\d{3}\n", run(3))
        assert namespace["model"].get_classifier().out_features == 10

        # features: a headless model with the checkpoint's weights; the feature map and its average
        run(4)
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


def test_the_runner_refuses_the_network_and_names_the_failing_statement():
    with CodeRun() as code_run:
        refused = code_run.run(0, "import socket\n\nsocket.create_connection(('192.0.2.1', 80), 1)\n")
        assert code_run.run(1, "def check(x):\n    assert x > 0, 'x must be positive'\n").ok
        failed = code_run.run(2, "y = 1\ncheck(-y)\n")  # fails in the function block 2 defined, at its line 2
    assert refused.error == "OSError: network access is refused while a card's code runs in the build"
    assert (refused.block, refused.line) == (0, 3)
    assert (failed.error, failed.block, failed.line) == ("AssertionError: x must be positive", 1, 2)


def test_the_runner_leaves_the_project_and_the_process_as_they_were(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "mine"))
    with CodeRun() as code_run:
        outcome = code_run.run(0, "import os\nopen('out.txt', 'w').write(os.environ['HOME'])\nprint(os.getcwd())\n")
        folder = code_run.folder
    assert outcome.ok and outcome.output == f"{folder}\n"
    assert list(tmp_path.iterdir()) == [] and not Path(folder).exists()
    assert Path.cwd() == tmp_path and torch.hub.get_dir() == str(tmp_path / "mine" / "hub")
