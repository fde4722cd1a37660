"""The card entries and measured figures that several test modules share.

resnet18, resnet26 and resnest14d are the zoo's smallest models, quick to measure: the session's cache
(conftest.py's `shared_cache`) holds them. A test that needs an entry laid out otherwise, or a wrong figure,
derives it from these (`RESNET18.replace(...)`) or keeps its own, saying why.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    """What resfam measures of a model at 224 px: parameters, fvcore FLOPs, activations, checkpoint bytes."""

    parameters: int
    flops: int
    file_size: int
    activations: int | None = None  # left out where no test needs it


RESNET18_MEASURED = Measured(parameters=11689512, flops=1819065856, file_size=46835595, activations=2484712)
RESNET26_MEASURED = Measured(parameters=15995176, flops=2357058560, file_size=64160415, activations=7351784)
RESNEST14D_MEASURED = Measured(parameters=10611688, flops=2764157888, file_size=42585231)
RESNET50_MEASURED = Measured(parameters=25557032, flops=4111512576, file_size=102542847, activations=11114984)

# Entries of a model-index block that match the code: every field the card engine checks, right.
RESNET18 = f"""\
- Name: resnet18
  Metadata:
    FLOPs: {RESNET18_MEASURED.flops}
    Parameters: {RESNET18_MEASURED.parameters}
    File Size: {RESNET18_MEASURED.file_size}
    ID: resnet18
    Layers: 18
    Crop Pct: '0.875'
    Image Size: '224'
    Interpolation: bilinear
  Weights: https://download.pytorch.org/models/resnet18-5c106cde.pth
"""
RESNET26 = f"""\
- Name: resnet26
  Metadata:
    FLOPs: {RESNET26_MEASURED.flops}
    Parameters: {RESNET26_MEASURED.parameters}
    File Size: {RESNET26_MEASURED.file_size}
    ID: resnet26
    Layers: 26
    Crop Pct: '0.875'
    Image Size: '224'
    Interpolation: bicubic
  Weights: https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/resnet26-9aa10e23.pth
"""
RESNEST14D = f"""\
- Name: resnest14d
  Metadata:
    FLOPs: {RESNEST14D_MEASURED.flops}
    Parameters: {RESNEST14D_MEASURED.parameters}
    File Size: {RESNEST14D_MEASURED.file_size}
    ID: resnest14d
    Layers: 14
    Image Size: '224'
  Weights: https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/gluon_resnest14-9c8fe254.pth
"""


# The published ImageNet accuracies of these models, as the repository's cards give them
ACCURACIES = {"resnet18": ("69.74%", "89.09%"), "resnet26": ("75.29%", "92.57%"), "resnest14d": ("75.51%", "92.52%")}


def with_results(entry: str, model: str) -> str:
    """`entry` with the Results of `model` at its end: a finished card states every model's accuracy (the
    strict checks flag an entry without one)."""
    top1, top5 = ACCURACIES[model]
    return (entry + "  Results:\n  - Task: Image Classification\n    Dataset: ImageNet\n    Metrics:\n"
            f"      Top 1 Accuracy: {top1}\n      Top 5 Accuracy: {top5}\n")


def card_text(*entries: str) -> str:
    """A card template: a summary, the code snippet, and a model-index block of `entries`."""
    return ("# Test card\n\nWritten for the tests.\n\n{% include 'code_snippets.md' %}\n\n<!--\n"
            "Type: model-index\nModels:\n" + "".join(entries) + "-->\n")


def make_templates(root: Path, **cards: str) -> Path:
    """A templates folder with the shared snippet and one card per `family=text`."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "code_snippets.md").write_text("model = resfam.create_model('{{ model_name }}')\n")
    for family, text in cards.items():
        (root / "models" / f"{family.replace('_', '-')}.md").write_text(text)
    return root
