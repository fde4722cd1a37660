"""Reading a card template file and finding its model-index block: the text, with every problem of the
file itself (unreadable, not UTF-8, too big) as a `CardError`, and the lines as YAML counts them.
"""
from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass

from .findings import CardError, Finding

MAX_CARD_BYTES = 2 * 1024 * 1024  # a real card is ~10 KB; anything this big is the wrong file
_BLOCK_MARKER = re.compile(r"^[ \t]*(?:Type[ \t]*:[ \t]*['\"]?model-index|Models[ \t]*:)", re.MULTILINE)


def read_card_text(path: str) -> str:
    """The text of the card template at `path`; a CardError when it cannot be read, is bigger than
    MAX_CARD_BYTES or is not UTF-8."""
    try:
        size = os.path.getsize(path)
        if size > MAX_CARD_BYTES:
            raise CardError([too_big(path, size)])
        with open(path, "rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CardError([Finding("error", path, None, f"cannot read the card template: {reason}",
                                 hint="check the path; card templates live in templates/models/")]) from None
    if len(data) > MAX_CARD_BYTES:  # the file grew between stat and read, or is a device: size unknown
        raise CardError([too_big(path, None)])
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


def too_big(path: str, size: int | None) -> Finding:
    limit = f"{MAX_CARD_BYTES / 1e6:.1f} MB"
    return Finding("error", path, None,
                   f"the file is {size / 1e6:.1f} MB; a card template may be at most {limit}" if size is not None
                   else f"the file is larger than {limit}, the most a card template may be",
                   hint="check that this is the card template you meant; a card is a page of text")


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


class Lines:
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
