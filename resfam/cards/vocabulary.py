"""Architecture tags for classes a zoo owns but does not declare (timm's squeeze-and-excitation module):
a vocabulary file of the docs project, the plugin's `vocabulary` setting (`--vocabulary FILE`).

    - class: timm.layers.squeeze_excite.SEModule
      tag: Squeeze-and-Excitation
      definition: each channel scaled by a weight computed from the channel means (a gating layer)

A model shows the tag when one of its modules is of that class or a subclass of it (the measuring
worker reports the classes, `measure.ModelMeasurement.classes`); the tag joins the vocabulary of the
measurement page. The rules are those of declared tags (`architecture.py`): one definition per tag,
no generic tag's name, and one entry per class. docs/architecture.md describes the pipeline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from .architecture import GENERIC_TAGS
from .findings import CardError, Finding

_KEYS = ("class", "tag", "definition")
_EXAMPLE = "write a list of entries: '- class: package.module.Class', 'tag: Name', 'definition: one line'"


@dataclass(frozen=True)
class ClassTag:
    tag: str
    definition: str


def read_vocabulary(path: str | os.PathLike[str] | None) -> dict[str, ClassTag]:
    """{qualified class name: ClassTag} of the file (none: {}); CardError naming every problem's line."""
    if path is None:
        return {}
    shown = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            nodes = yaml.compose(handle)
    except OSError as error:
        raise CardError([Finding("error", shown, None, f"cannot read the vocabulary file: {error.strerror or error}",
                                 hint="check the plugin's vocabulary setting (relative to mkdocs.yml)")]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise CardError([Finding("error", shown, mark.line + 1 if mark else None, f"not valid YAML: {error}",
                                 hint=_EXAMPLE)]) from None
    if nodes is None:
        return {}
    if not isinstance(nodes, yaml.SequenceNode):
        raise CardError([Finding("error", shown, nodes.start_mark.line + 1, "the vocabulary is not a list",
                                 hint=_EXAMPLE)])
    found: dict[str, ClassTag] = {}
    defined_at: dict[str, tuple[str, int]] = {}  # tag -> (definition, line)
    problems = []
    for node in nodes.value:
        line = node.start_mark.line + 1
        entry = _plain(node)
        if not isinstance(entry, dict) or set(entry) != set(_KEYS) \
                or not all(isinstance(entry[key], str) and entry[key].strip() for key in _KEYS):
            problems.append(Finding("error", shown, line, "an entry needs exactly class, tag and definition, "
                                                          "each a line of text", hint=_EXAMPLE))
            continue
        name, tag, definition = (entry[key].strip() for key in _KEYS)
        if tag in GENERIC_TAGS:
            problems.append(Finding("error", shown, line, f"{tag!r} is a generic tag: the engine finds it in any "
                                                          "network", hint="remove the entry, or choose another tag"))
        elif tag in defined_at and defined_at[tag][0] != definition:
            problems.append(Finding("error", shown, line, f"the tag {tag!r} is defined differently at line "
                                                          f"{defined_at[tag][1]}",
                                    hint="give a tag one definition: copy it to every class that shows the tag"))
        elif name in found:
            problems.append(Finding("error", shown, line, f"the class {name} has an entry already",
                                    hint="one entry per class"))
        else:
            found[name] = ClassTag(tag, definition)
            defined_at.setdefault(tag, (definition, line))
    if problems:
        raise CardError(problems)
    return found


def _plain(node: Any) -> Any:
    """A mapping node of scalars as a dict of strings (anything else as None)."""
    if not isinstance(node, yaml.MappingNode):
        return None
    entry = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
            return None
        entry[key.value] = value.value
    return entry
