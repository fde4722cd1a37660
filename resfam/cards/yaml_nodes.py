"""The YAML of a model-index block as a node tree: composed safely (aliases and non-standard tags refused
in one pass, libyaml where it reads the text as PyYAML does) and read node by node (values, keys, where a
node's own text ends), so that every value keeps its line and span.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from .kinds import is_number, shown

MAX_DEPTH = 32  # a model-index is 6 levels deep; the limit keeps every tree walk safe

# Implicit tags the safe resolver gives plain scalars, and the standard explicit ones allowed.
ALLOWED_TAGS = frozenset(
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "value", "merge")
)
ALLOWED_EXPLICIT_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("str", "int", "float", "bool", "null", "map", "seq")
)


class RefusingComposer(yaml.composer.Composer):
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


class CheckingLoader(RefusingComposer, yaml.SafeLoader):
    """The safe loader, all in Python, with the refusing composer."""

    def __init__(self, source: str):
        super().__init__(source)
        self.refused = []


try:
    from yaml.cyaml import CParser as _LibyamlParser
except ImportError:  # PyYAML built without libyaml
    _LibyamlParser = None

if _LibyamlParser is not None:
    class LibyamlCheckingLoader(RefusingComposer, _LibyamlParser, yaml.constructor.SafeConstructor,
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


def compose_with_libyaml(source: str) -> tuple[yaml.Node | None, list[yaml.Event]] | None:
    """The node tree and the refused events, parsed by libyaml; None when PyYAML has no libyaml, the
    text has a character where the two differ or that PyYAML's reader refuses, or libyaml finds any
    problem: PyYAML's own parser then decides, and says what is wrong in the words of the findings."""
    if _LibyamlParser is None or not source.endswith("\n") or _LIBYAML_DIFFERS.search(source) \
            or yaml.reader.Reader.NON_PRINTABLE.search(source):
        return None
    loader = LibyamlCheckingLoader(source)
    try:
        return loader.get_single_node(), loader.refused
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()


def plain_yaml_problem(problem: str) -> str:
    """PyYAML's wording, with its parser jargon said plainly where it is common."""
    if problem.startswith("expected <block end>"):
        return "inconsistent indentation: this line does not line up with the lines above it"
    if problem == "but found another document":
        return "a second YAML document ('---'); the block holds one"
    if problem == "mapping values are not allowed here":
        return ("a ':' where no key can start: quote a value that contains ': ', or give the line above "
                "its missing ':'")
    return problem


def short_tag(tag: str) -> str:
    """A tag the way it is written in YAML: 'tag:yaml.org,2002:python/name:x' is '!!python/name:x'."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def scalar(node: yaml.Node) -> Any:
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


def key_text(node: yaml.Node) -> str | None:
    value = scalar(node)
    return value if isinstance(value, str) else (str(value) if isinstance(value, (int, float)) and not
                                                 isinstance(value, bool) else None)


def is_empty(node: yaml.Node) -> bool:
    """A key written with no value at all (`Parameters:`), as opposed to an explicit `null`."""
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value == ""


def plain(node: yaml.Node) -> Any:
    """Plain Python data of a node tree (the first value wins for a duplicate key)."""
    if isinstance(node, yaml.MappingNode):
        data: dict[Any, Any] = {}
        for key_node, value in node.value:
            key = key_text(key_node)
            if key is not None and key not in data:
                data[key] = plain(value)
        return data
    if isinstance(node, yaml.SequenceNode):
        return [plain(item) for item in node.value]
    return scalar(node)


def deepest_node(root: yaml.Node) -> yaml.Node | None:
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


def content_end(node: yaml.Node) -> int:
    """Offset (in the block) just past the last character of `node`'s own text. A block collection's
    end mark lies at the next token, possibly lines later, so it is found from its last child; a
    flow collection ends at its closing bracket, wherever its last scalar is."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        if isinstance(node, yaml.MappingNode):
            key, value = node.value[-1]
            if is_empty(value):  # `Key:` with nothing after it ends with the key
                return key.end_mark.index
            node = value
        else:
            node = node.value[-1]
    return node.end_mark.index


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return shown_node(node)


def shown_node(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return node_kind(node)
    if is_empty(node):
        return "nothing"
    return shown(scalar(node), node.value)


def yaml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number" if is_number(value) else f"a {type(value).__name__}"
