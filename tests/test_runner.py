"""The card engine's code runner, parent side (no torch): which blocks a page has, where each line of them
is written in the templates, the no-run marker, the page's marks and the report's count. Running the
blocks is tested in test_snippets.py (the usage snippets) and test_bad_cards.py (failures, end to end)."""
from __future__ import annotations

from resfam.cards.runner import CodeBlock, CodeRuns, mark_ran, page_blocks, summary

CARD = """# A card

{% include 'code_snippets.md' %}

<!-- no-run: an output sample -->
```python
class 281: 12.5%
```

```bash
pip install resfam
```

```py
print("{{ model_name }}")
x = 1
```
"""
SNIPPETS = """## Use it

```python
import resfam

model = resfam.create_model("{{ model_name }}")
```
"""


def blocks_of(tmp_path, card: str, rendered: str) -> list[CodeBlock]:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet.md").write_text(card, encoding="utf-8")
    (tmp_path / "code_snippets.md").write_text(SNIPPETS, encoding="utf-8")
    return page_blocks(rendered, str(tmp_path / "models" / "resnet.md"), tmp_path)


def test_each_line_of_a_block_is_placed_at_its_template_line_also_in_an_included_file(tmp_path):
    rendered = CARD.replace("{% include 'code_snippets.md' %}", SNIPPETS.rstrip("\n")).replace(
        "{{ model_name }}", "resnet18")
    snippet, output, own = blocks_of(tmp_path, CARD, rendered)
    assert (snippet.path, snippet.lines, snippet.run) == (str(tmp_path / "code_snippets.md"), (4, 5, 6), True)
    assert snippet.code == 'import resfam\n\nmodel = resfam.create_model("resnet18")\n'
    assert snippet.first_line == "import resfam" and snippet.template_line(3) == 6
    assert (output.path, output.lines, output.run) == (str(tmp_path / "models" / "resnet.md"), (7,), False)
    assert (own.lines, own.run, own.template_line(2)) == ((15, 16), True, 16)  # the ```bash block is not Python
    assert own.template_line(None) == 15  # an error outside the lines: the block's first line


def test_a_template_that_writes_its_blocks_in_a_loop_places_them_at_the_card(tmp_path):
    card = "{% for name in model_ids %}\n```python\nprint('{{ name }}')\n```\n{% endfor %}\n"
    rendered = "```python\nprint('a')\n```\n```python\nprint('b')\n```\n"
    blocks = blocks_of(tmp_path, card, rendered)
    assert [(block.path, block.template_line(1)) for block in blocks] == [
        (str(tmp_path / "models" / "resnet.md"), None)] * 2


def test_a_block_that_ran_is_marked_on_the_page_and_counted():
    markdown = "# A\n\n```python\nx = 1\n```\n\n<!-- no-run -->\n```python\ny(\n```\n"
    ran = CodeBlock(0, "x = 1\n", 5, "a.md", (3,))
    marked = CodeBlock(1, "y(\n", 10, "a.md", (9,), run=False)
    page = mark_ran(markdown, [(ran, "ran"), (marked, "marked")], {"torch": "2.13.0", "resfam": "0.1.0"})
    lines = page.splitlines()
    assert lines[4] == "```" and lines[5] == "" and lines[6].startswith('<small class="resfam-ran" title="')
    assert lines[6].endswith("(torch 2.13.0, resfam 0.1.0)\">✓ ran in this build</small>")
    assert page.count("ran in this build") == 1
    runs = CodeRuns({"a.md": [(ran, "cached"), (marked, "marked")]})
    assert summary(runs) == "1 code block ran, 1 marked not to run"
    assert summary(CodeRuns()) is None


def test_a_stand_in_checkpoint_has_the_layout_of_the_model_and_fixed_finite_values(tmp_path):
    """What a page's code loads instead of the published weights (zoos.write_stand_in): every tensor of
    the model's state_dict, 0-dimensional ones too, filled the same way on every run."""
    import torch

    from resfam.cards.zoos import write_stand_in

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)
            self.temperature = torch.nn.Parameter(torch.tensor(0.0))  # a scalar, as some zoos have

    paths = [tmp_path / "a.pth", tmp_path / "b.pth"]
    for path in paths:
        write_stand_in(Scaled(), str(path))
    first, second = (torch.load(path, weights_only=True) for path in paths)
    assert list(first) == list(Scaled().state_dict())
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert all(torch.isfinite(tensor).all() for tensor in first.values() if tensor.is_floating_point())
    assert first["temperature"].item() == 1.0 and first["conv.weight"].std() > 0
