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
"""
from __future__ import annotations

import bisect
import difflib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from .fields import BY_NAME, ENTRY, FIELDS, INTERPOLATIONS, METADATA, METRICS, fields_where
from .findings import CardError, Finding

MAX_CARD_BYTES = 2 * 1024 * 1024  # a real card is ~10 KB; anything this big is the wrong file
SANITY_LIMIT = 10**15  # no count in a model card (params, FLOPs, bytes) comes near this
MAX_IMAGE_SIZE = 4096  # the verifier runs a forward pass at this size: keep it bounded
MAX_DEPTH = 32  # a model-index is 6 levels deep; the limit keeps every tree walk safe
_TOO_DEEP = f"the model-index block is nested more than {MAX_DEPTH} levels deep"
_TOO_DEEP_HINT = "a model-index needs only Models > entry > Metadata/Results > values"

# The keys of a model entry's Metadata, and which of them hold lists (the table of fields, `fields`).
KNOWN_METADATA_KEYS = frozenset(field.name for field in fields_where(place=METADATA))
LIST_FIELDS = tuple(field.name for field in FIELDS if field.kind in ("texts", "tags"))
KNOWN_MODEL_KEYS = frozenset(
    ("Name", "In Collection", "Metadata", "Results", "Paper", "README", "Config", "Image", "Description")
    + tuple(field.name for field in fields_where(place=ENTRY))
)
KNOWN_TOP_KEYS = frozenset(("Type", "Collections", "Models"))
KNOWN_COLLECTION_KEYS = frozenset(("Name", "Paper", "Metadata", "Code", "README", "Description"))
KNOWN_RESULT_KEYS = frozenset(("Task", "Dataset", "Metrics"))

# Implicit tags the safe resolver gives plain scalars, and the standard explicit ones allowed.
ALLOWED_TAGS = frozenset(
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "value", "merge")
)
ALLOWED_EXPLICIT_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("str", "int", "float", "bool", "null", "map", "seq")
)

_BLOCK_MARKER = re.compile(r"^[ \t]*(?:Type[ \t]*:[ \t]*['\"]?model-index|Models[ \t]*:)", re.MULTILINE)
_URL = re.compile(r"https?://[^\s/$.?#][^\s]*\Z")
_NUMERIC_STRING = re.compile(r"[0-9]*\.?[0-9]+\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_PERCENT = re.compile(r"([0-9]*\.?[0-9]+)[ ]?%\Z")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)+\Z")


def _is_import_path(value: str) -> bool:
    """'resfam.models.resnet.resnet18', 'resfam.models.resnet:ResNet', 'torchvision.models.resnet18': a
    module path, not a registry name (which may carry one dot, as in a tag like 'resnet50.a1_in1k')."""
    return bool(_DOTTED.match(value)) and (":" in value or value.count(".") >= 2 or value.startswith("resfam."))


# ---------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True)
class Claim:
    """One scalar of the card, as written.

    value: the YAML value (int, float, str, bool, None, ...).
    line: 1-based line of the scalar in the template file.
    span: (start, end) character offsets of the scalar's source text in the template text, quotes
        included, comments and surrounding spaces excluded: `text[start:end]` is exactly what to
        replace to change the value.
    style: YAML scalar style of the source: None (plain), "'" or '"' (quoted), '|' or '>' (block);
        for a list, "flow" ([a, b]) or None (one '- ' line per item).
    item_lines: for a list, the line of each item.
    """

    value: Any
    line: int
    span: tuple[int, int]
    style: str | None = None
    item_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class InsertionPoint:
    """Where a new key of a mapping goes, for `sync --fill`.

    offset: character offset in the template text where the new text is inserted.
    line: 1-based line of that offset.
    column: indentation (in spaces) of the new key.
    kind: 'block' (insert whole lines `<column spaces>Key: value\\n` at `offset`, a line start or the
        end of the block), 'flow' (insert `, Key: value` before the closing `}` at `offset`), or
        'empty' (the mapping is written as an empty value, `Metadata:`; insert lines after its key).
    """

    offset: int
    line: int
    column: int
    kind: str = "block"


@dataclass
class ModelClaims:
    """One entry of `Models`.

    name: the entry's `Name`; line: the line of its `Name`.
    id: the Metadata `ID` (the registry name of the model), or None when the entry has none.
    fields: every scalar of the entry's Metadata except `ID`, keyed by its card name ('Parameters',
        'FLOPs', 'Activations', 'File Size', 'Layers', 'Image Size', 'Crop Pct', 'Interpolation', 'Epochs',
        ...), unknown keys included, and the `Architecture` list (a Claim whose value is the list of tags and
        whose span covers the whole list). Other lists (Tasks, ...) are only in `raw`.
    weights: the model-level `Weights` URL, or None.
    code: the model-level `Code` path, or None.
    results: the metrics of the ImageNet result (the first result when none names ImageNet), e.g.
        'Top 1 Accuracy', 'Top 5 Accuracy'; results_dataset: that result's Dataset, if it names one.
    metadata_line: line of the `Metadata` key, or None when the entry has no Metadata.
    raw: the whole entry as plain data, unknown keys included.
    metadata_insert: where a missing Metadata field is inserted (None when there is no Metadata).
    model_insert: where a missing model-level key (Weights, or a whole Metadata mapping) is inserted.
    """

    name: str
    line: int
    id: Claim | None = None
    fields: dict[str, Claim] = field(default_factory=dict)
    weights: Claim | None = None
    code: Claim | None = None
    results: dict[str, Claim] = field(default_factory=dict)
    results_dataset: str | None = None
    metadata_line: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    metadata_insert: InsertionPoint | None = None
    model_insert: InsertionPoint | None = None

    @property
    def model_id(self) -> str:
        """The registry name this entry stands for: its ID, else its Name."""
        return self.id.value if self.id is not None else self.name

    def claim(self, name: str) -> Claim | None:
        """What the entry states for the field `name`, wherever the table of fields puts it."""
        place = BY_NAME[name].place if name in BY_NAME else METADATA
        if place == ENTRY:
            return {"Weights": self.weights, "Code": self.code}.get(name)
        return (self.results if place == METRICS else self.fields).get(name)

    def claims(self) -> dict[str, Claim]:
        """Every field the entry states: Metadata, entry-level and ImageNet metrics."""
        entry = {name: claim for name, claim in (("Weights", self.weights), ("Code", self.code)) if claim}
        return {**self.fields, **self.results, **entry}


@dataclass
class Card:
    """A parsed card template.

    path: the template path as given to `parse_card` (used in every finding).
    text: the template text the spans refer to.
    family: the template file stem (`templates/models/resnet-d.md` -> 'resnet-d').
    collection: the first `Collections` Name; else the first model's `In Collection`; else `family`.
    models: the `Models` entries in file order.
    block_start_line, block_end_line: lines of the `<!--` and `-->` around the model-index block.
    warnings: findings with status 'warning' (unknown keys and other things kept but worth a look).
    block_span: (start, end) offsets of the YAML text between `<!--` and `-->`.
    raw: the whole block as plain data.
    """

    path: str
    text: str
    family: str
    collection: str
    models: list[ModelClaims]
    block_start_line: int
    block_end_line: int
    warnings: list[Finding] = field(default_factory=list)
    block_span: tuple[int, int] = (0, 0)
    raw: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> ModelClaims:
        """The entry named `name` (KeyError when the card has none)."""
        for entry in self.models:
            if entry.name == name:
                return entry
        raise KeyError(name)


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
        text = _read_card_text(shown_path)
    elif len(text) > MAX_CARD_BYTES:
        raise CardError([_too_big(shown_path, len(text.encode("utf-8", "surrogatepass")))])
    return _CardParser(shown_path, text).parse()


def family_of(path: str | os.PathLike[str]) -> str:
    """The family slug of a card template: its file stem."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


# ---------------------------------------------------------------------------------------------
# Reading the file


def _read_card_text(path: str) -> str:
    try:
        size = os.path.getsize(path)
        if size > MAX_CARD_BYTES:
            raise CardError([_too_big(path, size)])
        with open(path, "rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CardError([Finding("error", path, None, f"cannot read the card template: {reason}",
                                 hint="check the path; card templates live in templates/models/")]) from None
    if len(data) > MAX_CARD_BYTES:  # the file grew between stat and read, or is a device: size unknown
        raise CardError([_too_big(path, None)])
    return decode_utf8(path, data)


def decode_utf8(path: str, data: bytes) -> str:
    """`data` as text; a CardError naming the line and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        byte = data[error.start]
        raise CardError([Finding(
            "error", path, line,
            f"the file is not valid UTF-8: byte 0x{byte:02x} at column {column} cannot be decoded",
            hint="save the file with UTF-8 encoding")]) from None


def _too_big(path: str, size: int | None) -> Finding:
    limit = f"{MAX_CARD_BYTES / 1e6:.1f} MB"
    return Finding("error", path, None,
                   f"the file is {size / 1e6:.1f} MB; a card template may be at most {limit}" if size is not None
                   else f"the file is larger than {limit}, the most a card template may be",
                   hint="check that this is the card template you meant; a card is a page of text")


# ---------------------------------------------------------------------------------------------
# Finding the block


@dataclass(frozen=True)
class IndexBlock:
    """Where a model-index comment is in a text (character offsets)."""

    comment_start: int  # offset of '<!--'
    content_start: int  # just after '<!--'
    content_end: int  # offset of '-->' (or the end of the text when the comment is never closed)
    closed: bool  # False when the '<!--' is never closed: the block then runs to the end of the text


def find_blocks(text: str) -> list[IndexBlock]:
    """Every HTML comment of `text` that holds a model-index block (starts with `Type: model-index`
    or has a top-level `Models:` line), in order."""
    blocks = []
    position = 0
    while (start := text.find("<!--", position)) != -1:
        content_start = start + 4
        end = text.find("-->", content_start)
        closed = end != -1
        content_end = end if closed else len(text)
        if _BLOCK_MARKER.search(text, content_start, content_end):
            blocks.append(IndexBlock(start, content_start, content_end, closed))
        if not closed:
            break
        position = end + 3
    return blocks


LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # the line breaks YAML knows


class _Lines:
    """Offset <-> 1-based line number. Lines end where YAML ends them (a lone '\\r' too), so the
    structure the parser sees and the lines reported and edited always agree."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [match.end() for match in LINE_BREAK.finditer(text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def column(self, offset: int) -> int:
        """0-based column of `offset` in its line."""
        return offset - self.starts[self.line(offset) - 1]

    def is_line_start(self, offset: int) -> bool:
        index = bisect.bisect_left(self.starts, offset)
        return index < len(self.starts) and self.starts[index] == offset

    def next_line_start(self, offset: int) -> int:
        """The start of the line after the one holding `offset` (the end of the text if none)."""
        line = self.line(offset)
        return self.starts[line] if line < len(self.starts) else len(self.text)


# ---------------------------------------------------------------------------------------------
# The parser


class _CardParser:
    """Collects every error and warning of one card while building its `Card`."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.lines = _Lines(text)
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
        composed = _compose_with_libyaml(source)
        if composed is not None:
            root, refused = composed
        else:
            root, refused = self.compose_in_python(source)
            if root is None and self.errors:
                return None
        self.report_refused(refused)
        deepest = _deepest_node(root) if root is not None else None
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
            loader = _CheckingLoader(source)
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
                shown = _short_tag(event.tag)
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
        problem = _plain_yaml_problem(error.problem or error.context or "")
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
                                           f"list, got {_kind(root)}",
                       hint="start the block with 'Type: model-index' and 'Models:'")
            return None
        collections: list[str] = []
        collection_lines: dict[str, int] = {}
        models: list[ModelClaims] = []
        models_seen = False
        for key, key_node, value in self.entries(root, "the model-index block"):
            if key == "Type":
                if _scalar(value) != "model-index":
                    self.error(self.line_of(value), f"'Type' must be 'model-index', got "
                                                    f"{_shown_node(value)}",
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
                    raw=_plain(root))

    def collection_lines(self, node: yaml.Node) -> dict[str, int]:
        """{collection Name: its line}, for the collections `read_collections` reads."""
        lines = {}
        for item in node.value if isinstance(node, yaml.SequenceNode) else ():
            for key, value in item.value if isinstance(item, yaml.MappingNode) else ():
                if _key_text(key) == "Name" and isinstance(_scalar(value), str):
                    lines.setdefault(_scalar(value), self.line_of(value))
        return lines

    def read_collections(self, node: yaml.Node) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.line_of(node), f"'Collections' must be a list, got {_kind(node)}",
                       hint="write '- Name: <collection>' under 'Collections:'")
            return []
        names = []
        for item in node.value:
            if not isinstance(item, yaml.MappingNode):
                self.error(self.line_of(item), f"each collection must be a mapping with a 'Name', got "
                                               f"{_kind(item)}", hint="write '- Name: <collection>'")
                continue
            name = None
            for key, key_node, value in self.entries(item, "a collection"):
                if key == "Name":
                    name = _scalar(value)
                    if not isinstance(name, str) or not name:
                        self.error(self.line_of(value), f"a collection 'Name' must be text, got "
                                                        f"{_shown_node(value)}", hint="write the name")
                        name = None
                elif key not in KNOWN_COLLECTION_KEYS:
                    self.unknown_key(key_node, key, KNOWN_COLLECTION_KEYS, "a collection")
            if name is None and not any(_key_text(k) == "Name" for k, _ in item.value):
                self.error(self.line_of(item), "a collection has no 'Name'", hint="add 'Name: <collection>'")
            if name is not None:
                names.append(name)
        return names

    def read_models(self, node: yaml.Node) -> list[ModelClaims]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.line_of(node), f"'Models' must be a list, got {_kind(node)}",
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
            self.error(self.line_of(node), f"each entry of 'Models' must be a mapping, got {_kind(node)}",
                       hint="start the entry with '- Name: <model>'")
            return None
        entries = list(self.entries(node, "a model entry"))
        name_node = next((value for key, _, value in entries if key == "Name"), None)
        if name_node is None:
            self.error(self.line_of(node), "a model entry has no 'Name'",
                       hint="add 'Name: <model>' as the first key of the entry")
            return None
        name = _scalar(name_node)
        if not isinstance(name, str) or not name.strip():
            read_as_other = isinstance(name_node, yaml.ScalarNode) and name_node.style is None and name_node.value
            hint = (f"YAML reads {name_node.value} as {_yaml_kind(name)}: quote it, Name: '{name_node.value}'"
                    if read_as_other else "write the model's name, e.g. 'Name: resnet50'")
            self.error(self.line_of(name_node), f"a model 'Name' must be text, got {_shown_node(name_node)}",
                       hint=hint)
            return None
        model = ModelClaims(name=name, line=self.line_of(name_node), raw=_plain(node),
                            model_insert=self.insertion_point(node))
        where = dict(model=name)
        for key, key_node, value in entries:
            if key == "Name":
                continue
            elif key == "Metadata":
                model.metadata_line = self.line_of(key_node)
                self.read_metadata(model, key_node, value)
            elif key == "Weights":
                model.weights = self.check_field(model, "Weights", value, _check_url)
            elif key == "Code":
                model.code = self.check_field(model, "Code", value, _check_text)
            elif key == "Results":
                self.read_results(model, value)
            elif key in ("In Collection", "README", "Description"):
                if not isinstance(_scalar(value), str):
                    self.error(self.line_of(value), f"'{key}' of {name} must be text, got {_shown_node(value)}",
                               hint=f"write the {key.lower()} as text", field=key, **where)
            elif key not in KNOWN_MODEL_KEYS:
                self.unknown_key(key_node, key, KNOWN_MODEL_KEYS, name, **where)
        metadata = model.raw.get("Metadata")
        has_id = isinstance(metadata, dict) and "ID" in metadata  # (a bad ID is reported on its own)
        if not has_id and _is_import_path(name):  # without an ID, the Name is the registry name
            self.error(model.line, f"{name}: an entry without an 'ID' names its model by its 'Name', which must "
                                   "be the model's registered name, not an import path",
                       hint="a card names a model only through the resfam registry: add 'ID: <registered name>' "
                            "under 'Metadata' (resfam.list_models() lists the names)", **where)
        return model

    def read_metadata(self, model: ModelClaims, key_node: yaml.Node, node: yaml.Node) -> None:
        if _is_empty(node):  # `Metadata:` with nothing under it yet: sync can fill it
            offset = self.after_line(self.offset + key_node.end_mark.index)
            model.metadata_insert = InsertionPoint(offset=offset, line=self.lines.line(offset),
                                                   column=key_node.start_mark.column + 2, kind="empty")
            return
        if not isinstance(node, yaml.MappingNode):
            self.error(self.line_of(node), f"'Metadata' of {model.name} must be a mapping, got {_kind(node)}",
                       hint="indent the fields under 'Metadata:'", model=model.name, field="Metadata")
            return
        model.metadata_insert = self.insertion_point(node)
        for key, key_node, value in self.entries(node, f"the Metadata of {model.name}"):
            check = _FIELD_CHECKS.get(key)
            if key in LIST_FIELDS:
                if self.check_text_list(model, key, value) and BY_NAME[key].kind == "tags":
                    model.fields[key] = Claim(value=[_scalar(item) for item in value.value], line=self.line_of(value),
                                              span=(self.offset + value.start_mark.index,
                                                    self.offset + _content_end(value)),
                                              style="flow" if value.flow_style else None,
                                              item_lines=tuple(self.line_of(item) for item in value.value))
                continue
            if key not in KNOWN_METADATA_KEYS:
                self.unknown_key(key_node, key, KNOWN_METADATA_KEYS, f"the Metadata of {model.name}",
                                 model=model.name)
            if not isinstance(value, yaml.ScalarNode):
                if key in KNOWN_METADATA_KEYS:
                    self.error(self.line_of(value), f"'{key}' of {model.name} must be a single value, got "
                                                    f"{_kind(value)}",
                               hint=self.hint_for(key, "write one value"), model=model.name, field=key)
                continue
            claim = self.check_field(model, key, value, check)
            if key == "ID":
                model.id = claim
            elif claim is not None:
                model.fields[key] = claim

    def read_results(self, model: ModelClaims, node: yaml.Node) -> None:
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.line_of(node), f"'Results' of {model.name} must be a list, got {_kind(node)}",
                       hint="write '- Task: ...' entries with 'Dataset' and 'Metrics'", model=model.name,
                       field="Results")
            return
        chosen: dict[str, Claim] | None = None
        chosen_dataset = None
        for item in node.value:
            if not isinstance(item, yaml.MappingNode):
                self.error(self.line_of(item), f"each result of {model.name} must be a mapping, got "
                                               f"{_kind(item)}",
                           hint="write 'Task', 'Dataset' and 'Metrics' keys", model=model.name)
                continue
            metrics: dict[str, Claim] = {}
            dataset = None
            for key, key_node, value in self.entries(item, f"a result of {model.name}"):
                if key == "Metrics":
                    metrics = self.read_metrics(model, value)
                elif key == "Dataset":
                    dataset = _scalar(value)
                elif key not in KNOWN_RESULT_KEYS:
                    self.unknown_key(key_node, key, KNOWN_RESULT_KEYS, f"a result of {model.name}",
                                     model=model.name)
            if chosen is None or (dataset == "ImageNet" and chosen_dataset != "ImageNet"):
                chosen, chosen_dataset = metrics, dataset
        model.results = chosen or {}
        model.results_dataset = chosen_dataset if isinstance(chosen_dataset, str) else None

    def read_metrics(self, model: ModelClaims, node: yaml.Node) -> dict[str, Claim]:
        if not isinstance(node, yaml.MappingNode):
            self.error(self.line_of(node), f"'Metrics' of {model.name} must be a mapping, got {_kind(node)}",
                       hint="write one 'Top 1 Accuracy: 76.13%' line per metric", model=model.name)
            return {}
        metrics = {}
        for key, _, value in self.entries(node, f"the Metrics of {model.name}"):
            if not isinstance(value, yaml.ScalarNode):
                self.error(self.line_of(value), f"'{key}' of {model.name} must be a single value, got "
                                                f"{_kind(value)}",
                           hint="write a number or a percentage", model=model.name, field=key)
                continue
            check = _check_percentage if "accuracy" in key.lower() else None
            claim = self.check_field(model, key, value, check)
            if claim is not None:
                metrics[key] = claim
        return metrics

    def check_text_list(self, model: ModelClaims, key: str, node: yaml.Node) -> bool:
        """Whether `node` is a list of names; reports it when not."""
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if items is None or any(not isinstance(_scalar(item), str) for item in items):
            bad = node if items is None else next(i for i in items if not isinstance(_scalar(i), str))
            self.error(self.line_of(bad), f"'{key}' of {model.name} must be a list of names, got "
                                          f"{_kind(bad) if items is None else _shown_node(bad)}",
                       hint=f"write one '- <name>' line per item under '{key}:'", model=model.name, field=key)
            return False
        return True

    def check_field(self, model: ModelClaims, key: str, node: yaml.Node, check) -> Claim | None:
        """A Claim for the scalar `node`, or None after reporting why its value is not acceptable."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(self.line_of(node), f"'{key}' of {model.name} must be a single value, got {_kind(node)}",
                       hint=self.hint_for(key, "write one value"), model=model.name, field=key)
            return None
        value = _scalar(node)
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
        return _FIELD_HINTS.get(key, default).format(path=self.path)

    def unknown_key(self, key_node: yaml.Node, key: str, known: frozenset, where: str, **extra: Any) -> None:
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f"did you mean '{close[0]}'?" if close else "it is kept as written and not checked"
        self.warning(self.line_of(key_node), f"unknown key '{key}' in {where}", hint=hint, field=key, **extra)

    # -- mappings ----------------------------------------------------------------------------

    def entries(self, node: yaml.MappingNode, where: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; reports keys that are not text and duplicates."""
        first_line: dict[str, int] = {}
        for key_node, value in node.value:
            key = _key_text(key_node)
            if key is None:
                self.error(self.line_of(key_node), f"a key in {where} must be text, got {_shown_node(key_node)}",
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
        offset = self.after_line(self.offset + _content_end(node))
        return InsertionPoint(offset=offset, line=self.lines.line(offset), column=column, kind="block")


class _RefusingComposer(yaml.composer.Composer):
    """PyYAML's composer, refusing aliases and non-standard explicit tags in one pass: each is
    recorded in `refused`, and an alias stands in as an empty value instead of being resolved."""

    refused: list[yaml.Event]

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.refused.append(self.get_event())
            return yaml.ScalarNode("tag:yaml.org,2002:null", "", event.start_mark, event.end_mark)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in ALLOWED_EXPLICIT_TAGS:
            self.refused.append(event)
        return super().compose_node(parent, index)


class _CheckingLoader(_RefusingComposer, yaml.SafeLoader):
    """The safe loader, all in Python, with the refusing composer."""

    def __init__(self, source: str):
        super().__init__(source)
        self.refused = []


try:
    from yaml.cyaml import CParser as _LibyamlParser
except ImportError:  # PyYAML built without libyaml
    _LibyamlParser = None

if _LibyamlParser is not None:
    class _LibyamlCheckingLoader(_RefusingComposer, _LibyamlParser, yaml.constructor.SafeConstructor,
                                 yaml.resolver.Resolver):
        """The same composer over libyaml's scanner and parser (events from C): the same nodes, about
        a ninth of the time (docs/performance.md)."""

        def __init__(self, source: str):
            _LibyamlParser.__init__(self, source)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)
            self.refused = []

        def compose_node(self, parent, index):
            node = super().compose_node(parent, index)
            if isinstance(node, yaml.ScalarNode):
                node.style = node.style or None  # libyaml says '' where PyYAML says None: plain
            return node


# Where libyaml and PyYAML read a text differently (found by tests/test_sync_properties.py): libyaml
# takes a tab for a space where PyYAML refuses it, counts positions after a lone CR differently, and
# resolves some values tagged '!' to another type; and the rare line breaks NEL, LS and PS. Nor do they
# agree on the line of an empty value at the very end of a text without a final line break.
_LIBYAML_DIFFERS = re.compile("[\t!\x85\u2028\u2029]|\r(?!\n)")


def _compose_with_libyaml(source: str) -> tuple[yaml.Node | None, list[yaml.Event]] | None:
    """The node tree and the refused events, parsed by libyaml; None when PyYAML has no libyaml, the
    text has a character where the two differ or that PyYAML's reader refuses, or libyaml finds any
    problem: PyYAML's own parser then decides, and says what is wrong in the words of the findings."""
    if _LibyamlParser is None or not source.endswith("\n") or _LIBYAML_DIFFERS.search(source) \
            or yaml.reader.Reader.NON_PRINTABLE.search(source):
        return None
    loader = _LibyamlCheckingLoader(source)
    try:
        return loader.get_single_node(), loader.refused
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------------------------
# Values


def _plain_yaml_problem(problem: str) -> str:
    """PyYAML's wording, with its parser jargon said plainly where it is common."""
    if problem.startswith("expected <block end>"):
        return "inconsistent indentation: this line does not line up with the lines above it"
    if problem == "but found another document":
        return "a second YAML document ('---'); the block holds one"
    if problem == "mapping values are not allowed here":
        return ("a ':' where no key can start: quote a value that contains ': ', or give the line above "
                "its missing ':'")
    return problem


def _short_tag(tag: str) -> str:
    """A tag the way it is written in YAML: 'tag:yaml.org,2002:python/name:x' is '!!python/name:x'."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _scalar(node: yaml.Node) -> Any:
    """The value of a scalar node as the safe loader would build it; the source text when it cannot
    (an impossible date, a 5000-digit integer); a sentinel for non-scalars."""
    if not isinstance(node, yaml.ScalarNode):
        return _NOT_SCALAR
    if node.tag not in ALLOWED_TAGS or node.tag.endswith((":value", ":merge")):
        return node.value
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except (ValueError, OverflowError, yaml.YAMLError):
        return node.value


class _NotScalar:
    def __repr__(self) -> str:
        return "<not a scalar>"


_NOT_SCALAR = _NotScalar()
_CONSTRUCTOR = yaml.SafeLoader("")


def _key_text(node: yaml.Node) -> str | None:
    value = _scalar(node)
    return value if isinstance(value, str) else (str(value) if isinstance(value, (int, float)) and not
                                                 isinstance(value, bool) else None)


def _is_empty(node: yaml.Node) -> bool:
    """A key written with no value at all (`Parameters:`), as opposed to an explicit `null`."""
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value == ""


def _plain(node: yaml.Node) -> Any:
    """Plain Python data of a node tree (the first value wins for a duplicate key)."""
    if isinstance(node, yaml.MappingNode):
        data: dict[Any, Any] = {}
        for key_node, value in node.value:
            key = _key_text(key_node)
            if key is not None and key not in data:
                data[key] = _plain(value)
        return data
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    return _scalar(node)


def _deepest_node(root: yaml.Node) -> yaml.Node | None:
    """A node nested deeper than MAX_DEPTH, or None (walked without recursion)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
    return None


def _content_end(node: yaml.Node) -> int:
    """Offset (in the block) just past the last character of `node`'s own text. A block collection's
    end mark lies at the next token, possibly lines later, so it is found from its last child; a
    flow collection ends at its closing bracket, wherever its last scalar is."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        if isinstance(node, yaml.MappingNode):
            key, value = node.value[-1]
            if _is_empty(value):  # `Key:` with nothing after it ends with the key
                return key.end_mark.index
            node = value
        else:
            node = node.value[-1]
    return node.end_mark.index


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _shown_node(node)


def _shown_node(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return _kind(node)
    if _is_empty(node):
        return "nothing"
    return _shown(_scalar(node), node.value)


def _shown(value: Any, source: str) -> str:
    """A value as the message shows it: text quoted, anything else as written, long ones cut."""
    shown = repr(value) if isinstance(value, str) else source
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _yaml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number" if _is_number(value) else f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Each check returns None when the value is acceptable, else the end of the sentence
# "'<field>' of <model> ..." (or that and a hint of its own, when the field's usual hint does not fit).


def _check_count(value: Any, node: yaml.ScalarNode) -> str | None:
    if _is_empty(node):
        return "has no value"
    if not isinstance(value, int) or isinstance(value, bool):
        quoted = isinstance(value, str) and _DIGITS.match(value) and node.style in ("'", '"')
        suffix = " (a quoted string: remove the quotes)" if quoted else ""
        return f"must be an integer, got {_shown(value, node.value)}{suffix}"
    if value < 0:
        return f"must be a non-negative integer, got {node.value}"
    if value > SANITY_LIMIT:
        return f"is implausibly large: {_shown(value, node.value)} (more than 10^15)"
    return None


def _check_rate(value: Any, node: yaml.ScalarNode) -> str | None:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        return f"must be a non-negative number, got {_shown_node(node)}"
    return None


def _check_image_size(value: Any, node: yaml.ScalarNode) -> str | None:
    number = int(value) if isinstance(value, str) and _DIGITS.match(value) else value
    if not isinstance(number, int) or isinstance(number, bool):
        return f"must be a whole number of pixels such as '224', got {_shown_node(node)}"
    if not 0 < number <= MAX_IMAGE_SIZE:
        return f"must be between 1 and {MAX_IMAGE_SIZE} pixels, got {node.value}"
    return None


def _check_crop_pct(value: Any, node: yaml.ScalarNode) -> str | None:
    number = float(value) if isinstance(value, str) and _NUMERIC_STRING.match(value) else value
    if not _is_number(number) or not math.isfinite(number):
        return f"must be a fraction such as '0.875', got {_shown_node(node)}"
    if not 0 < number <= 1:
        return f"must be a fraction in (0, 1], got {node.value}"
    return None


def _check_interpolation(value: Any, node: yaml.ScalarNode) -> str | None:
    if value not in INTERPOLATIONS:
        return f"must be one of {', '.join(INTERPOLATIONS)}, got {_shown_node(node)}"
    return None


def _check_url(value: Any, node: yaml.ScalarNode) -> str | None:
    if not isinstance(value, str) or not _URL.match(value):
        return f"must be an http(s) URL, got {_shown_node(node)}"
    return None


def _check_model_id(value: Any, node: yaml.ScalarNode) -> str | tuple[str, str] | None:
    if isinstance(value, str) and _is_import_path(value):
        # A card names a model only through the registry: nothing in a card is ever imported.
        last = re.split(r"[.:]", value)[-1]
        example = last if last.islower() else "resnet50"
        return (f"must be the model's registered name, not an import path: got {_shown_node(node)}",
                f"a card names a model only through the resfam registry: write 'ID: {example}' "
                "(resfam.list_models() lists the names)")
    if not isinstance(value, str) or not _MODEL_ID.match(value):
        return f"must be a registered model name such as 'resnet50', got {_shown_node(node)}"
    return None


def _check_text(value: Any, node: yaml.ScalarNode) -> str | None:
    if not isinstance(value, str):
        return f"must be text, got {_shown_node(node)}"
    return None


def _check_percentage(value: Any, node: yaml.ScalarNode) -> str | None:
    match = _PERCENT.match(value) if isinstance(value, str) else None
    number = float(match.group(1)) if match else value
    if not _is_number(number) or not math.isfinite(number):
        return f"must be a percentage such as 76.13%, got {_shown_node(node)}"
    if not 0 <= number <= 100:
        return f"must be between 0 and 100%, got {node.value}"
    return None


def percentage_value(value: Any) -> float | None:
    """An accuracy claim ('76.13%' or 76.13) as a number of percent; None when it is neither."""
    if isinstance(value, str):
        match = _PERCENT.match(value)
        return float(match.group(1)) if match else None
    return float(value) if _is_number(value) else None


# How each kind of value of the table of fields is checked; a kind not here takes any scalar.
_CHECKS_BY_KIND = {
    "count": _check_count,
    "rate": _check_rate,
    "text": _check_text,
    "source": _check_text,  # which file it names is the verifier's question
    "model_id": _check_model_id,
    "image_size": _check_image_size,
    "crop_pct": _check_crop_pct,
    "interpolation": _check_interpolation,
    "url": _check_url,
    "percentage": _check_percentage,
}
_FIELD_CHECKS = {field.name: _CHECKS_BY_KIND[field.kind] for field in FIELDS if field.kind in _CHECKS_BY_KIND}
_FIELD_HINTS = {field.name: field.hint for field in FIELDS if field.hint}
