"""Markdown text of a page, as the card pages and the Hub export edit it: its headings (outside fenced
code), a section inserted before or after one, and the model-index comment taken out.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from .card_file import find_blocks


def strip_model_index(markdown: str) -> str:
    """The Markdown without its model-index comments (Markdown would pass them into the HTML)."""
    for block in reversed(find_blocks(markdown)):
        end = block.content_end + 3 if block.closed else len(markdown)
        markdown = markdown[:block.comment_start].rstrip() + "\n" + markdown[end:].lstrip("\n")
    return markdown


def _headings(markdown: str) -> Iterator[tuple[int, int]]:
    """(line index, level) of each ATX heading outside fenced code blocks."""
    fence = None
    for index, line in enumerate(markdown.splitlines()):
        stripped = line.lstrip()
        marker = re.match(r"(`{3,}|~{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)
            elif marker.group(1).startswith(fence) and not stripped[len(marker.group(1)):].strip():
                fence = None
            continue
        heading = re.match(r"(#{1,6})\s", line)
        if fence is None and heading:
            yield index, len(heading.group(1))


def insert_before_first(markdown: str, *, level: int, text: str) -> str:
    """`text` before the first heading of `level`, or at the end when there is none."""
    lines = markdown.splitlines(keepends=True)
    index = next((i for i, found in _headings(markdown) if found == level), len(lines))
    return "".join(lines[:index]) + "\n" + text + "\n" + "".join(lines[index:])


def insert_after_first(markdown: str, *, level: int, text: str) -> str:
    """`text` after the first heading of `level`, or at the start when there is none."""
    lines = markdown.splitlines(keepends=True)
    index = next((i + 1 for i, found in _headings(markdown) if found == level), 0)
    return "".join(lines[:index]) + "\n" + text + "\n" + "".join(lines[index:])
