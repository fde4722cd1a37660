"""Write measured figures back into a card template, touching nothing else.

    card = parse_card("templates/models/resnet.md")
    edits = plan_sync(card, {"resnet50": {field_name: measured_value, ...}})
    # or, from a verification: plan_sync(result.card, sync_values(result), ...)
    new_text = apply_edits(card.text, edits)
    print(render_diff(card.path, card.text, new_text))
    write_atomic(card.path, new_text)

`plan_sync` rewrites only the scalar spans of the figures that differ (keeping each scalar's quoting
style) and, with `fill_missing=True`, inserts the fields a model leaves out (Metadata fields at the end
of that model's Metadata, `Weights` at the end of the model entry, with the mapping's indentation and
the file's line endings). Every byte outside those spans is unchanged, and a plan made on the result
is empty. `plan_sync` checks that by parsing its own result before returning the edits.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import yaml

from .card_file import LINE_BREAK
from .claims import Card, Claim, InsertionPoint, ModelClaims
from .fields import BY_NAME, DEFAULT_IMAGE_SIZE, ENTRY, IMAGE_SIZE_FIELD, METADATA, synced_fields
from .findings import CardError, Finding
from .model_index import parse_card
from .verify import CardResult, claimed_image_size

# The fields sync writes, in the order new ones are inserted: those of the table of fields that the
# code gives a value for.
METADATA_SYNC_FIELDS = tuple(field.name for field in synced_fields() if field.place == METADATA)
MODEL_SYNC_FIELDS = tuple(field.name for field in synced_fields() if field.place == ENTRY)
SYNC_FIELDS = tuple(field.name for field in synced_fields())
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:%+~@=?&;-]*\Z")


@dataclass(frozen=True)
class Edit:
    """One change to a card template.

    path: the template; line: 1-based line of the change in the original text (for an insertion, the
        line the new text is inserted before, or the line it extends when the block ends there).
    model, field: which figure.
    span: (start, end) character offsets in the original text; start == end for an insertion.
    old: the original text of the span ('' for an insertion); new: the text that replaces it.
    claimed: the card's value (None for an insertion); measured: the value written.
    """

    path: str
    line: int
    model: str
    field: str
    span: tuple[int, int]
    old: str
    new: str
    claimed: Any = None
    measured: Any = None

    @property
    def is_insertion(self) -> bool:
        return self.span[0] == self.span[1]

    def describe(self) -> str:
        """One line for a report: `path:line: model Field: old -> new`."""
        change = f"(missing) -> {self.measured!r}" if self.is_insertion else f"{self.old} -> {self.new}"
        return f"{self.path}:{self.line}: {self.model} {self.field}: {change}"


def plan_sync(card: Card, measured: Mapping[str, Mapping[str, Any]], fill_missing: bool = False) -> list[Edit]:
    """The edits that make `card` claim the `measured` values, in file order.

    measured: {model Name: {card field name: value}} for fields in SYNC_FIELDS; a value of None is
        skipped (not measured). Values: Parameters/FLOPs/Activations/File Size/Layers ints, Image Size an
        int, Crop Pct a float, Interpolation and Weights strings.
    fill_missing: also insert the measured fields the card leaves out.

    Raises ValueError for a model name the card does not have, a field sync does not handle or a
    value of the wrong type (mistakes of the caller), and CardError if the edited card would not
    parse back to the measured values (which would be a bug here; nothing is written then).
    """
    by_name = {model.name: model for model in card.models}
    unknown = sorted(set(measured) - set(by_name))
    if unknown:
        raise ValueError(f"{card.path} has no model named {', '.join(map(repr, unknown))}; "
                         f"its models are {', '.join(by_name)}")
    newline = "\r\n" if "\r\n" in card.text else "\n"
    edits: list[Edit] = []
    wanted: dict[tuple[str, str], Any] = {}
    for model in card.models:
        values = {field: _checked_measurement(field, value)
                  for field, value in measured.get(model.name, {}).items() if value is not None}
        missing = []
        for field in SYNC_FIELDS:
            claim = model.claim(field)
            if field not in values or (claim is None and not fill_missing):
                continue
            wanted[model.name, field] = values[field]
            if claim is None:
                missing.append((field, values[field]))
            elif (edit := _replacement(card, model, field, claim, values[field])) is not None:
                edits.append(edit)
        edits.extend(_insertions(card, model, missing, newline))
    # File order for reports; the sort is stable, so insertions at one offset keep their order.
    edits.sort(key=lambda edit: edit.span[0])
    if edits:
        _check_result(card, edits, wanted)
    return edits


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with every edit applied (edits at the same offset in the order given).

    Raises CardError when an edit's span no longer holds its `old` text (the file changed since it
    was parsed) or two edits overlap.
    """
    ordered = sorted(enumerate(edits), key=lambda item: (item[1].span[0], item[0]))
    pieces, cursor = [], 0
    for _, edit in ordered:
        start, end = edit.span
        if start < cursor or text[start:end] != edit.old:
            raise CardError([Finding("error", edit.path, edit.line,
                                     f"cannot apply the change to {edit.model} {edit.field}: the file "
                                     "changed since it was read",
                                     hint="run the sync again", model=edit.model, field=edit.field)])
        pieces.append(text[cursor:start])
        pieces.append(edit.new)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def render_diff(path: str | os.PathLike[str], old: str, new: str) -> str:
    """A unified diff (`a/path` -> `b/path`) of two versions of a file; '' when they are equal."""
    shown = os.fspath(path)
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    # autojunk off: a card repeats lines (`Code: ...` in every model), which difflib's heuristic
    # would otherwise ignore as anchors and show as changed.
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    lines = []
    for group in matcher.get_grouped_opcodes(3):
        first, last = group[0], group[-1]
        lines.append(f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [" " + line for line in before[i1:i2]]
                continue
            lines += ["-" + line for line in before[i1:i2]]
            lines += ["+" + line for line in after[j1:j2]]
    if not lines:
        return ""
    # A last line without a newline gets the marker `patch` expects, so the diff stays valid.
    return f"--- a/{shown}\n+++ b/{shown}\n" + "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _hunk_range(start: int, stop: int) -> str:
    """A unified-diff line range: 'first,count', or 'first' for one line ('first-1,0' for none)."""
    count = stop - start
    if count == 1:
        return str(start + 1)
    return f"{start + 1 if count else start},{count}"


def write_atomic(path: str | os.PathLike[str], text: str, *, replace: bool = True,
                 what: str = "the card template") -> None:
    """Replace the file at `path` with `text` (UTF-8, bytes exactly as given) all at once.

    The text goes to a temporary file in the same folder, is flushed to disk, takes the original's
    permissions, and then replaces the original with one `os.replace`. If anything fails (or the
    process is interrupted) before that, the original is untouched and the temporary file removed.
    An OSError becomes a CardError naming the file (`what` it is). With `replace=False` the file must be new: it is
    linked into place, which fails (FileExistsError, a CardError) if a file of that name has appeared.
    """
    shown = os.fspath(path)
    target = os.path.realpath(shown)  # write through a symlink, do not replace the link itself
    folder = os.path.dirname(target)
    data = text.encode("utf-8")
    try:
        mode = _mode_for(target)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                                 dir=folder)
    except OSError as error:
        raise CardError([_write_failure(shown, error, what)]) from None
    try:
        try:
            _write_all(descriptor, data)
            os.chmod(temporary, mode)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # never over an existing file
            os.unlink(temporary)
    except BaseException as error:
        with suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise CardError([_write_failure(shown, error, what)]) from None
        raise
    _fsync_folder(folder)


# ---------------------------------------------------------------------------------------------
# What to write: the verifier's findings for a card


def sync_values(result: CardResult, fill_missing: bool = False) -> dict[str, dict[str, Any]]:
    """{model Name: {field: value}}: the figures `sync` writes into the card (`sync.plan_sync`): those
    that drift and, with `fill_missing`, those the card leaves out. A figure within its tolerance stays
    as written (a card may round).

    FLOPs and Activations go with the Image Size the card will claim: the registered one when the card
    states an Image Size (sync corrects it) or when missing fields are filled in, else the default 224;
    figures counted at another size than the card's are rewritten even when they were within tolerance
    there.
    """
    values = {}
    card = result.card
    for model in card.models if card is not None else []:
        measured = result.models.get(model.name)
        if measured is None:
            continue
        states_size = model.claim(IMAGE_SIZE_FIELD.name) is not None or fill_missing
        size = measured.registered.image_size if states_size else DEFAULT_IMAGE_SIZE
        claims = model.claims()
        chosen = {name: BY_NAME[name].kind.in_card_style(claims[name].value if name in claims else None, value,
                                                         measured.registered)
                  for name, value in measured.values(size).items() if name in SYNC_FIELDS}
        if not fill_missing:
            chosen = {name: value for name, value in chosen.items() if name in claims}
        for finding in result.findings:
            if finding.model == model.name and finding.status == "ok" \
                    and not (finding.field in BY_NAME and BY_NAME[finding.field].per_image_size
                             and size != claimed_image_size(model)):
                chosen.pop(finding.field, None)
        values[model.name] = chosen
    return values


# ---------------------------------------------------------------------------------------------
# Planning


def _checked_measurement(field: str, value: Any) -> Any:
    """The measured `value` in the type sync writes, or ValueError for the wrong field or type."""
    if field not in SYNC_FIELDS:
        raise ValueError(f"sync does not write {field!r}; it writes {', '.join(SYNC_FIELDS)}")
    try:
        return BY_NAME[field].kind.for_card(value)
    except (TypeError, ValueError):
        raise ValueError(f"measured {field} must be a valid value for the card, got {value!r}") from None


def _same(field: str, claimed: Any, measured: Any) -> bool:
    """Whether the card's value already says what was measured ('224' is 224, '0.875' is 0.875)."""
    return BY_NAME[field].kind.already_says(claimed, measured)


def _replacement(card: Card, model: ModelClaims, field: str, claim: Claim, value: Any) -> Edit | None:
    if _same(field, claim.value, value):
        return None
    start, end = claim.span
    if isinstance(value, list):  # a list: its items at the column of the first, or in the brackets
        newline = "\r\n" if "\r\n" in card.text else "\n"
        column = start - card.text.rfind("\n", 0, start) - 1
        new = _list_text(value, claim.style, newline + " " * column)
    else:
        new = _scalar_text(value, claim.style)
    return Edit(path=card.path, line=claim.line, model=model.name, field=field, span=claim.span,
                old=card.text[start:end], new=new, claimed=claim.value, measured=value)


def _list_text(items: list[str], style: str | None, separator: str) -> str:
    """YAML source for a list of names: `[a, b]` in flow style, else `- a` items joined by `separator`
    (a line break and the items' indentation)."""
    texts = [item if _plain_item_reads_back(item) else _scalar_text(item, "'") for item in items]
    if style == "flow":
        return "[" + ", ".join(texts) + "]"
    return separator.join(f"- {text}" for text in texts)


def _scalar_text(value: Any, style: str | None) -> str:
    """YAML source for `value`: numbers plain, or quoted the way the original was; text plain when
    it reads back as itself, else single-quoted."""
    text = repr(value) if isinstance(value, float) else str(value)
    if style == '"':
        return json.dumps(text)
    if style == "'" or (isinstance(value, str) and not _plain_reads_back(text)):
        return "'" + text.replace("'", "''") + "'"
    return text


def _plain_reads_back(text: str) -> bool:
    """Whether `text` as a plain scalar is read back as the same string, in block and flow context."""
    if not _PLAIN_SAFE.match(text) or text.endswith(":"):
        return False
    try:
        return yaml.safe_load(f"key: {text}\n") == {"key": text}
    except yaml.YAMLError:
        return False


def _plain_item_reads_back(text: str) -> bool:
    """Whether `text`, unquoted, is read back as itself as a list item, in block and flow style (a tag
    such as `1x1 Convolution` is; `Yes`, `a: b` or `[x]` are not)."""
    if text != text.strip() or not text or any(char in text for char in "#,[]{}\r\n"):
        return False
    try:
        return yaml.safe_load(f"- {text}\n") == [text] and yaml.safe_load(f"[{text}]") == [text]
    except yaml.YAMLError:
        return False


def _insertions(card: Card, model: ModelClaims, missing: list[tuple[str, Any]], newline: str) -> list[Edit]:
    """Edits that add the `missing` (field, value) pairs to `model`: Metadata fields first (into its
    Metadata mapping, or a new one), then model-level fields. Groups that land on the same offset
    follow each other: only the first opens a line or adds no separator."""
    metadata_pairs = [(f, v) for f, v in missing if f in METADATA_SYNC_FIELDS]
    model_pairs = [(f, v) for f, v in missing if f in MODEL_SYNC_FIELDS]
    groups: list[tuple[InsertionPoint, list[tuple[str, Any]], str | None]] = []
    if metadata_pairs and model.metadata_insert is not None:
        groups.append((model.metadata_insert, metadata_pairs, None))
    elif metadata_pairs:
        groups.append((model.model_insert, metadata_pairs, "Metadata"))
    if model_pairs:
        groups.append((model.model_insert, model_pairs, None))
    edits: list[Edit] = []
    for point, pairs, header in groups:
        continuing = bool(edits) and edits[-1].span[0] == point.offset
        in_flow = point.kind == "flow"
        key_column = point.column + (2 if header and not in_flow else 0)
        texts = [field_line(field, value, None if in_flow else key_column, newline) for field, value in pairs]
        if point.kind == "flow":
            pieces = _flow_pieces(card.text, point, texts, header, continuing)
        else:
            pieces = _block_pieces(card.text, point, texts, header, continuing, newline)
        edits += [Edit(path=card.path, line=point.line, model=model.name, field=field,
                       span=(point.offset, point.offset), old="", new=piece, claimed=None, measured=value)
                  for (field, value), piece in zip(pairs, pieces, strict=False)]
    return edits


def field_line(field: str, value: Any, key_column: int | None, newline: str = "\n") -> str:
    """`Field: value` as a card writes a new field (a block list on the lines after `Field:`)."""
    text = _value_text(field, value, key_column, newline)
    return f"{field}:{text}" if text.startswith(newline) else f"{field}: {text}"


def _value_text(field: str, value: Any, key_column: int | None, newline: str = "\n") -> str:
    """A new field's value as YAML source: quoted as the table of fields says; a list as block items on
    the lines after the key, at the key's column (as upstream cards write them), or in flow style
    when `key_column` is None (inside a flow mapping)."""
    if isinstance(value, list):
        if key_column is None:
            return _list_text(value, "flow", "")
        indent = newline + " " * key_column
        return indent + _list_text(value, None, indent)
    return _scalar_text(value, BY_NAME[field].kind.insert_style)


def _block_pieces(text: str, point: InsertionPoint, texts: list[str], header: str | None, continuing: bool,
                  newline: str) -> list[str]:
    """One line per entry at the mapping's indentation (under a new `header:` line when given)."""
    indent = " " * point.column
    child_indent = indent + "  " if header else indent
    pieces = [f"{child_indent}{entry}{newline}" for entry in texts]
    if header:
        pieces[0] = f"{indent}{header}:{newline}" + pieces[0]
    if not continuing and not _at_line_start(text, point.offset):  # the '-->' shares the last line
        pieces[0] = newline + pieces[0]
    return pieces


def _flow_pieces(text: str, point: InsertionPoint, texts: list[str], header: str | None,
                 continuing: bool) -> list[str]:
    """`, entry` pieces before the mapping's closing brace (inside a new `header: {...}` when given)."""
    opens_empty = text[:point.offset].rstrip().endswith(("{", ","))
    separator = "" if opens_empty and not continuing else ", "
    if header:
        pieces = [f"{separator}{header}: {{{texts[0]}"] + [", " + entry for entry in texts[1:]]
        pieces[-1] += "}"
        return pieces
    return [separator + texts[0]] + [", " + entry for entry in texts[1:]]


def _at_line_start(text: str, offset: int) -> bool:
    return offset == 0 or LINE_BREAK.match(text, offset - 1) is not None


def _check_result(card: Card, edits: list[Edit], wanted: dict[tuple[str, str], Any]) -> None:
    """Parse the edited text and confirm it claims exactly the measured values."""
    try:
        result = parse_card(card.path, apply_edits(card.text, edits))
    except CardError as error:
        problems = "; ".join(finding.message for finding in error.findings)
        raise CardError([Finding("error", card.path, None,
                                 f"sync would leave the card unreadable ({problems}); nothing was written",
                                 hint="please report this as a bug, with the card")]) from None
    for (name, field), value in wanted.items():
        model = result.model(name)
        claim = model.claim(field)
        if claim is None or not _same(field, claim.value, value):
            raise CardError([Finding("error", card.path, claim.line if claim else model.line,
                                     f"sync could not write {field} of {name} as {value!r}; nothing was "
                                     "written", hint="please report this as a bug, with the card",
                                     model=name, field=field)])


# ---------------------------------------------------------------------------------------------
# Writing


def _mode_for(target: str) -> int:
    """The permissions the new file gets: the original's, or the usual ones for a new file."""
    try:
        return os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _fsync_folder(folder: str) -> None:
    """Make the rename durable too; not every platform can open a folder, which is fine."""
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _write_failure(path: str, error: OSError, what: str) -> Finding:
    return Finding("error", path, None, f"cannot write {what}: {error.strerror or error}; "
                                        "the original is unchanged",
                   hint="check the permissions of the file and its folder, and the free disk space")
