"""Find, parse and validate the model-index block of a card template, keeping where every value is.

A card template (`templates/models/<family>.md`) carries its models in one paperswithcode-style
`model-index` YAML block inside an HTML comment:

    <!--
    Type: model-index
    Collections:
    - Name: ResNet
    Models:
    - Name: resnet50
      In Collection: ResNet
      Metadata:
        Parameters: 25557032
        ID: resnet50
        Image Size: '224'
      Weights: https://...
      Results:
      - Task: Image Classification
        Dataset: ImageNet
        Metrics:
          Top 1 Accuracy: 80.37%
    -->

`parse_card` returns a `Card`: every scalar a `Claim` with its value, its 1-based line in the template and
the exact character span of its source text (so `sync` can rewrite one figure and nothing else). It
checks syntax and schema only; whether an `ID` is registered is the verifier's job.

Every problem of a file is collected and raised together as one `CardError`; unknown keys are kept (in
`raw`, and in `fields` when they are Metadata scalars) and reported as warnings in `Card.warnings`.
The YAML is read with the safe loader, through the node tree so that line numbers come from the parser
itself; explicit non-standard tags (`!!python/object`, `!foo`) and aliases are refused.

This module walks the schema; the parts it uses read on their own: `card_file` (reading the file, finding
the block, its lines), `yaml_nodes` (composing the YAML safely, reading nodes), `kinds` (the values of each
kind of field) and `claims` (the `Card` it returns).
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from typing import Any

import yaml

from .card_file import MAX_CARD_BYTES, IndexBlock, Lines, find_blocks, read_card_text, too_big
from .claims import Card, Claim, InsertionPoint, ModelClaims
from .fields import BY_NAME, ENTRY, FIELDS, IDENTITY, METADATA, fields_where
from .findings import CardError, Finding
from .kinds import PERCENTAGE, is_import_path
from .yaml_nodes import (
    MAX_DEPTH,
    CheckingLoader,
    compose_with_libyaml,
    content_end,
    deepest_node,
    is_empty,
    key_text,
    node_kind,
    plain,
    plain_yaml_problem,
    scalar,
    short_tag,
    shown_node,
    yaml_kind,
)

_TOO_DEEP = f"the model-index block is nested more than {MAX_DEPTH} levels deep"
_TOO_DEEP_HINT = "a model-index needs only Models > entry > Metadata/Results > values"

# The keys of a model entry's Metadata, and which of them hold lists (the table of fields, `fields`).
KNOWN_METADATA_KEYS = frozenset(field.name for field in fields_where(place=METADATA))
ENTRY_FIELDS = tuple(field.name for field in fields_where(place=ENTRY))  # keys of the entry itself (Weights, ...)
LIST_FIELDS = tuple(field.name for field in FIELDS if field.kind.listed)
KNOWN_MODEL_KEYS = frozenset(
    ("Name", "In Collection", "Metadata", "Results", "Paper", "README", "Config", "Image", "Description")
    + ENTRY_FIELDS
)
KNOWN_TOP_KEYS = frozenset(("Type", "Collections", "Models"))
KNOWN_COLLECTION_KEYS = frozenset(("Name", "Paper", "Metadata", "Code", "README", "Description"))
KNOWN_RESULT_KEYS = frozenset(("Task", "Dataset", "Metrics"))


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_card(path: str | os.PathLike[str], text: str | None = None) -> Card:
    """Parse and validate the card template at `path` (read from disk unless `text` is given).

    Raises CardError with every error of the file (no block, two blocks, an unclosed comment, Jinja
    inside the block, tabs, malformed YAML, unsafe tags, aliases, missing or mistyped keys, duplicate
    keys or model names, unreadable / non-UTF-8 / empty / oversized file). Warnings go to
    `Card.warnings`.
    """
    shown_path = os.fspath(path)
    if text is None:
        text = read_card_text(shown_path)
    elif len(text) > MAX_CARD_BYTES:
        raise CardError([too_big(shown_path, len(text.encode("utf-8", "surrogatepass")))])
    return _CardParser(shown_path, text).parse()


def family_of(path: str | os.PathLike[str]) -> str:
    """The family slug of a card template: its file stem."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


# ---------------------------------------------------------------------------------------------
# The parser


class _CardParser:
    """Collects every error and warning of one card while building its `Card`."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.lines = Lines(text)
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []
        self.offset = 0  # where the YAML text starts in the template
        self.block_end = 0  # where it ends (the '-->')

    # -- reporting ---------------------------------------------------------------------------

    def error(self, line: int | None, message: str, hint: str = "", **where: Any) -> None:
        self.errors.append(Finding("error", self.path, line, message, hint, **where))

    def warning(self, line: int | None, message: str, hint: str = "", **where: Any) -> None:
        self.warnings.append(Finding("warning", self.path, line, message, hint, **where))

    def fail_if_errors(self) -> None:
        if self.errors:
            raise CardError(self.errors)

    def line_of(self, node: yaml.Node) -> int:
        return self.lines.line(self.offset + node.start_mark.index)

    def span_of(self, node: yaml.Node) -> tuple[int, int]:
        return (self.offset + node.start_mark.index, self.offset + node.end_mark.index)

    # -- the pipeline ------------------------------------------------------------------------

    def parse(self) -> Card:
        scaffold_hint = "add one, or scaffold a card with 'resfam-cards new FAMILY --model ID'"
        if not self.text.strip():
            self.error(None, "the file is empty: a card template needs a summary and a model-index block",
                       hint=scaffold_hint)
            self.fail_if_errors()
        blocks = find_blocks(self.text)
        if not blocks:
            self.error(None, "no model-index block: the models must be listed in an HTML comment "
                             "'<!-- Type: model-index ... -->'", hint=scaffold_hint)
            self.fail_if_errors()
        block = blocks[0]
        for extra in blocks[1:]:
            self.error(self.lines.line(extra.comment_start),
                       f"a second model-index block (the first starts at line "
                       f"{self.lines.line(block.comment_start)}); a card has exactly one",
                       hint="move its models into the first block and delete this one")
        if not block.closed:
            self.error(self.lines.line(block.comment_start),
                       "the HTML comment holding the model-index block is never closed",
                       hint="end the block with '-->' on a line of its own")
        # `<!-- Type: model-index`: the spaces after '<!--' are not indentation of the first key.
        first_key = block.content_start
        while first_key < block.content_end and self.text[first_key] == " ":
            first_key += 1
        self.offset, self.block_end = first_key, block.content_end
        source = self.text[first_key:block.content_end]
        self.check_plain_text(source)
        self.fail_if_errors()
        root = self.compose(source)
        self.fail_if_errors()
        card = self.build_card(root, block)
        self.fail_if_errors()
        return card

    def check_plain_text(self, source: str) -> None:
        """Jinja and tab indentation: refused before YAML sees them, with a clearer message."""
        for match in re.finditer(r"\{[{%#]", source):
            self.error(self.lines.line(self.offset + match.start()),
                       f"Jinja syntax '{match.group()}' inside the model-index block; its values must "
                       "be written out so the build can check them",
                       hint="replace the expression with the literal value")
        for match in re.finditer(r"^[ ]*\t", source, re.MULTILINE):
            offset = self.offset + match.end() - 1
            self.error(self.lines.line(offset),
                       f"tab character in the indentation (column {self.lines.column(offset) + 1}); "
                       "YAML indents with spaces only",
                       hint="replace the tab with spaces")

    def compose(self, source: str) -> yaml.Node:
        """The YAML node tree; aliases and unsafe tags are reported as it is built (so a
        billion-laughs block is never expanded and no tag ever reaches a constructor)."""
        composed = compose_with_libyaml(source)
        if composed is not None:
            root, refused = composed
        else:
            root, refused = self.compose_in_python(source)
            if root is None and self.errors:
                return None
        self.report_refused(refused)
        deepest = deepest_node(root) if root is not None else None
        if deepest is not None:
            self.error(self.line_of(deepest), _TOO_DEEP, hint=_TOO_DEEP_HINT)
        if root is None and not self.errors:
            self.error(self.lines.line(self.offset), "the model-index block is empty",
                       hint="list the models under 'Models:'")
        return root

    def compose_in_python(self, source: str) -> tuple[yaml.Node | None, list[yaml.Event]]:
        """PyYAML's own parser: slower than libyaml's, but its error messages are the ones this
        module turns into findings."""
        loader = None
        try:
            loader = CheckingLoader(source)
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            self.report_refused(loader.refused if loader else [])
            self.report_yaml_error(error)
            return None, []
        except RecursionError:  # PyYAML composes recursively: [[[[...]]]] thousands deep
            self.error(self.lines.line(self.offset), _TOO_DEEP, hint=_TOO_DEEP_HINT)
            return None, []
        except yaml.YAMLError as error:  # ReaderError: a character YAML does not accept
            position = getattr(error, "position", 0)
            character = getattr(error, "character", "")
            code = ord(character) if isinstance(character, str) else int(character or 0)
            self.error(self.lines.line(self.offset + position),
                       f"malformed YAML in the model-index block: character #x{code:04x} is not allowed",
                       hint="delete the control character")
            return None, []
        finally:
            if loader is not None:
                loader.dispose()
        return root, loader.refused

    def report_refused(self, refused: list[yaml.Event]) -> None:
        for event in refused:
            line = self.lines.line(self.offset + event.start_mark.index)
            if isinstance(event, yaml.AliasEvent):
                self.error(line, f"alias '*{event.anchor}' in the model-index block; anchors and aliases "
                                 "are not supported",
                           hint="write the value out in full where it is used")
            else:
                shown = short_tag(event.tag)
                self.error(line, f"YAML tag '{shown}' is not allowed in a model-index block; only plain "
                                 "values, lists and mappings are read (the YAML is loaded safely)",
                           hint=f"remove '{shown}' and write a plain value")

    def report_yaml_error(self, error: yaml.MarkedYAMLError) -> None:
        mark = error.problem_mark or error.context_mark
        line = self.lines.line(self.offset + mark.index) if mark is not None else None
        context_line = (self.lines.line(self.offset + error.context_mark.index)
                        if error.context_mark is not None else None)
        hint = ("check the indentation and the ':' after each key; quote values that contain "
                "': ', ' #', or start with a special character")
        # Two scanner errors are noticed lines after the mistake, which is where the token began.
        if error.context == "while scanning a simple key" and error.problem == "could not find expected ':'":
            self.error(context_line, "malformed YAML in the model-index block: no ':' after the key on this line",
                       hint="write the line as 'Key: value'")
            return
        if error.context in ("while scanning a quoted scalar", "while scanning a double-quoted scalar",
                             "while scanning a single-quoted scalar") \
                and error.problem == "found unexpected end of stream":
            self.error(context_line, "malformed YAML in the model-index block: the quote opened on this line "
                                     "is never closed", hint="add the closing quote at the end of the value")
            return
        problem = plain_yaml_problem(error.problem or error.context or "")
        message = f"malformed YAML in the model-index block: {problem}"
        if error.context and error.problem and context_line is not None:
            message += f" ({error.context} at line {context_line})"
        if "\t" in message or "'\\t'" in message:
            hint = "replace tabs with spaces"
        self.error(line, message, hint=hint)

    # -- the schema --------------------------------------------------------------------------

    def build_card(self, root: yaml.Node, block: IndexBlock) -> Card:
        start_line = self.lines.line(block.comment_start)
        end_line = self.lines.line(block.content_end)
        if not isinstance(root, yaml.MappingNode):
            self.error(self.line_of(root), f"the model-index block must be a mapping with a 'Models' "
                                           f"list, got {node_kind(root)}",
                       hint="start the block with 'Type: model-index' and 'Models:'")
            return None
        collections: list[str] = []
        collection_lines: dict[str, int] = {}
        models: list[ModelClaims] = []
        models_seen = False
        for key, key_node, value in self.entries(root, "the model-index block"):
            if key == "Type":
                if scalar(value) != "model-index":
                    self.error(self.line_of(value), f"'Type' must be 'model-index', got "
                                                    f"{shown_node(value)}",
                               hint="write 'Type: model-index'")
            elif key == "Collections":
                collections, collection_lines = self.read_collections(value), self.collection_lines(value)
            elif key == "Models":
                models_seen = True
                models = self.read_models(value)
            else:
                self.unknown_key(key_node, key, KNOWN_TOP_KEYS, "the model-index block")
        if not models_seen:
            self.error(self.line_of(root), "the model-index block has no 'Models' list",
                       hint="add 'Models:' with one '- Name: <model>' entry per model")
        known_collections = set(collections)
        for entry in models:
            in_collection = entry.raw.get("In Collection")
            if known_collections and isinstance(in_collection, str) and in_collection not in known_collections:
                self.error(entry.line, f"{entry.name} is 'In Collection' {in_collection!r}, which the "
                                       f"'Collections' list does not define",
                           hint=f"use one of: {', '.join(sorted(known_collections))}", model=entry.name)
        used = {entry.raw.get("In Collection") for entry in models}
        for name in collections:
            if name not in used:
                self.warning(collection_lines.get(name), f"the collection {name!r} has no model: no entry is "
                                                         f"'In Collection' {name!r}",
                             hint=f"add 'In Collection: {name}' to its models, or remove the collection")
        first_in_collection = next((m.raw.get("In Collection") for m in models
                                    if isinstance(m.raw.get("In Collection"), str)), None)
        collection = (collections[0] if collections else first_in_collection) or family_of(self.path)
        return Card(path=self.path, text=self.text, family=family_of(self.path), collection=collection,
                    models=models, block_start_line=start_line, block_end_line=end_line,
                    warnings=self.warnings, block_span=(block.content_start, block.content_end),
                    raw=plain(root))

    def collection_lines(self, node: yaml.Node) -> dict[str, int]:
        """{collection Name: its line}, for the collections `read_collections` reads."""
        lines = {}
        for item in node.value if isinstance(node, yaml.SequenceNode) else ():
            for key, value in item.value if isinstance(item, yaml.MappingNode) else ():
                if key_text(key) == "Name" and isinstance(scalar(value), str):
                    lines.setdefault(scalar(value), self.line_of(value))
        return lines

    def read_collections(self, node: yaml.Node) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.line_of(node), f"'Collections' must be a list, got {node_kind(node)}",
                       hint="write '- Name: <collection>' under 'Collections:'")
            return []
        names = []
        for item in node.value:
            if not isinstance(item, yaml.MappingNode):
                self.error(self.line_of(item), f"each collection must be a mapping with a 'Name', got "
                                               f"{node_kind(item)}", hint="write '- Name: <collection>'")
                continue
            name = None
            for key, key_node, value in self.entries(item, "a collection"):
                if key == "Name":
                    name = scalar(value)
                    if not isinstance(name, str) or not name:
                        self.error(self.line_of(value), f"a collection 'Name' must be text, got "
                                                        f"{shown_node(value)}", hint="write the name")
                        name = None
                elif key not in KNOWN_COLLECTION_KEYS:
                    self.unknown_key(key_node, key, KNOWN_COLLECTION_KEYS, "a collection")
            if name is None and not any(key_text(k) == "Name" for k, _ in item.value):
                self.error(self.line_of(item), "a collection has no 'Name'", hint="add 'Name: <collection>'")
            if name is not None:
                names.append(name)
        return names

    def read_models(self, node: yaml.Node) -> list[ModelClaims]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.line_of(node), f"'Models' must be a list, got {node_kind(node)}",
                       hint="write one '- Name: <model>' entry per model under 'Models:'")
            return []
        if not node.value:
            self.error(self.line_of(node), "'Models' lists no models",
                       hint="add one '- Name: <model>' entry per model")
        models: list[ModelClaims] = []
        first_line: dict[str, int] = {}
        for item in node.value:
            entry = self.read_model(item)
            if entry is None:
                continue
            if entry.name in first_line:
                self.error(entry.line, f"model {entry.name!r} is listed twice (first at line "
                                       f"{first_line[entry.name]})",
                           hint="delete one of the two entries or rename it", model=entry.name)
                continue
            first_line[entry.name] = entry.line
            models.append(entry)
        return models

    def read_model(self, node: yaml.Node) -> ModelClaims | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(self.line_of(node), f"each entry of 'Models' must be a mapping, got {node_kind(node)}",
                       hint="start the entry with '- Name: <model>'")
            return None
        entries = list(self.entries(node, "a model entry"))
        name_node = next((value for key, _, value in entries if key == "Name"), None)
        if name_node is None:
            self.error(self.line_of(node), "a model entry has no 'Name'",
                       hint="add 'Name: <model>' as the first key of the entry")
            return None
        name = scalar(name_node)
        if not isinstance(name, str) or not name.strip():
            read_as_other = isinstance(name_node, yaml.ScalarNode) and name_node.style is None and name_node.value
            hint = (f"YAML reads {name_node.value} as {yaml_kind(name)}: quote it, Name: '{name_node.value}'"
                    if read_as_other else "write the model's name, e.g. 'Name: resnet50'")
            self.error(self.line_of(name_node), f"a model 'Name' must be text, got {shown_node(name_node)}",
                       hint=hint)
            return None
        model = ModelClaims(name=name, line=self.line_of(name_node), raw=plain(node),
                            model_insert=self.insertion_point(node))
        where = dict(model=name)
        for key, key_node, value in entries:
            if key == "Name":
                continue
            elif key == "Metadata":
                model.metadata_line = self.line_of(key_node)
                self.read_metadata(model, key_node, value)
            elif key in ENTRY_FIELDS:
                claim = self.check_field(model, key, value, BY_NAME[key].kind.check)
                if claim is not None:
                    model.entry[key] = claim
            elif key == "Results":
                self.read_results(model, value)
            elif key in ("In Collection", "README", "Description"):
                if not isinstance(scalar(value), str):
                    self.error(self.line_of(value), f"'{key}' of {name} must be text, got {shown_node(value)}",
                               hint=f"write the {key.lower()} as text", field=key, **where)
            elif key not in KNOWN_MODEL_KEYS:
                self.unknown_key(key_node, key, KNOWN_MODEL_KEYS, name, **where)
        metadata = model.raw.get("Metadata")
        has_id = isinstance(metadata, dict) and IDENTITY.name in metadata  # (a bad ID is reported on its own)
        if not has_id and is_import_path(name):  # without an ID, the Name is the registry name
            self.error(model.line, f"{name}: an entry without an '{IDENTITY.name}' names its model by its 'Name', "
                                   "which must be the model's registered name, not an import path",
                       hint="a card names a model only through the resfam registry: add 'ID: <registered name>' "
                            "under 'Metadata' (resfam.list_models() lists the names)", **where)
        return model

    def read_metadata(self, model: ModelClaims, key_node: yaml.Node, node: yaml.Node) -> None:
        if is_empty(node):  # `Metadata:` with nothing under it yet: sync can fill it
            offset = self.after_line(self.offset + key_node.end_mark.index)
            model.metadata_insert = InsertionPoint(offset=offset, line=self.lines.line(offset),
                                                   column=key_node.start_mark.column + 2, kind="empty")
            return
        if not isinstance(node, yaml.MappingNode):
            self.error(self.line_of(node), f"'Metadata' of {model.name} must be a mapping, got {node_kind(node)}",
                       hint="indent the fields under 'Metadata:'", model=model.name, field="Metadata")
            return
        model.metadata_insert = self.insertion_point(node)
        for key, key_node, value in self.entries(node, f"the Metadata of {model.name}"):
            check = BY_NAME[key].kind.check if key in BY_NAME else None
            if key in LIST_FIELDS:
                if self.check_text_list(model, key, value) and BY_NAME[key].kind.list_claim:
                    model.fields[key] = Claim(value=[scalar(item) for item in value.value], line=self.line_of(value),
                                              span=(self.offset + value.start_mark.index,
                                                    self.offset + content_end(value)),
                                              style="flow" if value.flow_style else None,
                                              item_lines=tuple(self.line_of(item) for item in value.value))
                continue
            if key not in KNOWN_METADATA_KEYS:
                self.unknown_key(key_node, key, KNOWN_METADATA_KEYS, f"the Metadata of {model.name}",
                                 model=model.name)
            if not isinstance(value, yaml.ScalarNode):
                if key in KNOWN_METADATA_KEYS:
                    self.error(self.line_of(value), f"'{key}' of {model.name} must be a single value, got "
                                                    f"{node_kind(value)}",
                               hint=self.hint_for(key, "write one value"), model=model.name, field=key)
                continue
            claim = self.check_field(model, key, value, check)
            if key == IDENTITY.name:
                model.id = claim
            elif claim is not None:
                model.fields[key] = claim

    def read_results(self, model: ModelClaims, node: yaml.Node) -> None:
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.line_of(node), f"'Results' of {model.name} must be a list, got {node_kind(node)}",
                       hint="write '- Task: ...' entries with 'Dataset' and 'Metrics'", model=model.name,
                       field="Results")
            return
        chosen: dict[str, Claim] | None = None
        chosen_dataset = None
        for item in node.value:
            if not isinstance(item, yaml.MappingNode):
                self.error(self.line_of(item), f"each result of {model.name} must be a mapping, got "
                                               f"{node_kind(item)}",
                           hint="write 'Task', 'Dataset' and 'Metrics' keys", model=model.name)
                continue
            metrics: dict[str, Claim] = {}
            dataset = None
            for key, key_node, value in self.entries(item, f"a result of {model.name}"):
                if key == "Metrics":
                    metrics = self.read_metrics(model, value)
                elif key == "Dataset":
                    dataset = scalar(value)
                elif key not in KNOWN_RESULT_KEYS:
                    self.unknown_key(key_node, key, KNOWN_RESULT_KEYS, f"a result of {model.name}",
                                     model=model.name)
            if chosen is None or (dataset == "ImageNet" and chosen_dataset != "ImageNet"):
                chosen, chosen_dataset = metrics, dataset
        model.results = chosen or {}
        model.results_dataset = chosen_dataset if isinstance(chosen_dataset, str) else None

    def read_metrics(self, model: ModelClaims, node: yaml.Node) -> dict[str, Claim]:
        if not isinstance(node, yaml.MappingNode):
            self.error(self.line_of(node), f"'Metrics' of {model.name} must be a mapping, got {node_kind(node)}",
                       hint="write one 'Top 1 Accuracy: 76.13%' line per metric", model=model.name)
            return {}
        metrics = {}
        for key, _, value in self.entries(node, f"the Metrics of {model.name}"):
            if not isinstance(value, yaml.ScalarNode):
                self.error(self.line_of(value), f"'{key}' of {model.name} must be a single value, got "
                                                f"{node_kind(value)}",
                           hint="write a number or a percentage", model=model.name, field=key)
                continue
            check = PERCENTAGE.check if "accuracy" in key.lower() else None
            claim = self.check_field(model, key, value, check)
            if claim is not None:
                metrics[key] = claim
        return metrics

    def check_text_list(self, model: ModelClaims, key: str, node: yaml.Node) -> bool:
        """Whether `node` is a list of names; reports it when not."""
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if items is None or any(not isinstance(scalar(item), str) for item in items):
            bad = node if items is None else next(i for i in items if not isinstance(scalar(i), str))
            self.error(self.line_of(bad), f"'{key}' of {model.name} must be a list of names, got "
                                          f"{node_kind(bad) if items is None else shown_node(bad)}",
                       hint=f"write one '- <name>' line per item under '{key}:'", model=model.name, field=key)
            return False
        return True

    def check_field(self, model: ModelClaims, key: str, node: yaml.Node, check) -> Claim | None:
        """A Claim for the scalar `node`, or None after reporting why its value is not acceptable."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(self.line_of(node), f"'{key}' of {model.name} must be a single value, got {node_kind(node)}",
                       hint=self.hint_for(key, "write one value"), model=model.name, field=key)
            return None
        value = scalar(node)
        claim = Claim(value=value, line=self.line_of(node), span=self.span_of(node), style=node.style)
        problem = check(value, node) if check is not None else None
        if problem is not None:
            hint = self.hint_for(key, "write a valid value")
            if isinstance(problem, tuple):  # a check with a hint of its own for this mistake
                problem, hint = problem
            self.error(claim.line, f"'{key}' of {model.name} {problem}", hint=hint, model=model.name,
                       field=key, claimed=value)
            return None
        return claim

    def hint_for(self, key: str, default: str) -> str:
        hint = BY_NAME[key].hint if key in BY_NAME else ""
        return (hint or default).format(path=self.path)

    def unknown_key(self, key_node: yaml.Node, key: str, known: frozenset, where: str, **extra: Any) -> None:
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f"did you mean '{close[0]}'?" if close else "it is kept as written and not checked"
        self.warning(self.line_of(key_node), f"unknown key '{key}' in {where}", hint=hint, field=key, **extra)

    # -- mappings ----------------------------------------------------------------------------

    def entries(self, node: yaml.MappingNode, where: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; reports keys that are not text and duplicates."""
        first_line: dict[str, int] = {}
        for key_node, value in node.value:
            key = key_text(key_node)
            if key is None:
                self.error(self.line_of(key_node), f"a key in {where} must be text, got {shown_node(key_node)}",
                           hint="write keys as plain names, e.g. 'Parameters:'")
                continue
            if key in first_line:
                self.error(self.line_of(key_node), f"duplicate key '{key}' in {where} (first at line "
                                                   f"{first_line[key]})",
                           hint="keep one of the two lines; YAML would silently use the last one",
                           field=key)
                continue
            first_line[key] = self.line_of(key_node)
            yield key, key_node, value

    def after_line(self, end: int) -> int:
        """Where the line holding the text that ends at template offset `end` is over: the start of the
        next line, or the block's end when the comment closes on that line."""
        if self.lines.is_line_start(end):  # block scalars end after their line break
            return min(end, self.block_end)
        return min(self.lines.next_line_start(end), self.block_end)

    def insertion_point(self, node: yaml.MappingNode) -> InsertionPoint:
        """Where a new key of the mapping `node` goes: after the line of its last scalar."""
        if node.flow_style:
            closing = self.offset + node.end_mark.index - 1  # the '}'
            return InsertionPoint(offset=closing, line=self.lines.line(closing),
                                  column=node.start_mark.column, kind="flow")
        column = node.value[0][0].start_mark.column if node.value else node.start_mark.column
        offset = self.after_line(self.offset + content_end(node))
        return InsertionPoint(offset=offset, line=self.lines.line(offset), column=column, kind="block")
