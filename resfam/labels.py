"""The names of the 1000 ImageNet-1k classes, in the index order of every resfam model's outputs.

One list, shipped with the package (`resfam/data/imagenet_classes.txt`; its header names its source).
Imports nothing but the standard library, so `resfam.imagenet_labels()` does not load torch.
"""
from __future__ import annotations

import functools
from importlib import resources

NUM_CLASSES = 1000


@functools.cache
def _classes() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(WordNet ID, its lemmas) per class, in index order."""
    text = resources.files(__package__).joinpath("data", "imagenet_classes.txt").read_text(encoding="utf-8")
    classes = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            wordnet_id, lemmas = line.split("\t")
            classes.append((wordnet_id, tuple(lemma.strip() for lemma in lemmas.split(","))))
    if len(classes) != NUM_CLASSES:
        raise RuntimeError(f"resfam/data/imagenet_classes.txt lists {len(classes)} classes, not {NUM_CLASSES}: "
                           "the installed package is damaged; reinstall resfam")
    return tuple(classes)


def imagenet_labels(full: bool = False) -> list[str]:
    """The ImageNet-1k class names by output index: `imagenet_labels()[207]` is 'golden retriever'.

    Each name is the first WordNet lemma of its class; `full=True` gives all of them ('tench, Tinca
    tinca'), which tells apart the few classes sharing a first lemma (the two 'crane's: bird and machine).
    """
    return [", ".join(lemmas) if full else lemmas[0] for _, lemmas in _classes()]
