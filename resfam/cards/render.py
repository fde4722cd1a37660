"""Render a card template to page Markdown, in a sandbox.

Templates are Jinja2 + Markdown, rendered with Jinja's (immutable) sandbox: `StrictUndefined` (a misspelt
variable is an error, not an empty string), no autoescaping (the output is Markdown), and a loader that
only reads files inside the templates folder. A template cannot reach Python internals (attributes
starting with `_` are refused, so `''.__class__.__mro__` and `cycler.__init__.__globals__` fail), the
file system outside the templates folder, or the network. Every problem is a `CardError` naming the file
and line where it happened: for an error inside an included file, that file and its line.

Variables every card template and `templates/code_snippets.md` may use (`card_context`):

    model_name   the registry ID of the card's first model (its Metadata `ID`, else its `Name`),
                 e.g. 'resnet50': what the code snippets create
    model_ids    the registry IDs of all the card's models, in card order
    family       the family slug, the template file stem, e.g. 'resnet-d'
    collection   the collection name, e.g. 'ResNet-D' (the first `Collections` Name of the block)

Besides these, the Jinja built-in filters and tests, and the globals `range`, `dict` and `namespace`.
"""
from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .findings import CardError, Finding
from .model_index import Card

MAX_REPEAT_LENGTH = 1_000_000  # 'x' * n and [..] * n beyond this many items are refused
MAX_EXPONENT = 1_000  # 10 ** 10 ** 10 would never finish
_TEMPLATE_SUFFIXES = (".md", ".html", ".jinja", ".j2", ".txt")  # not the .py frames of Jinja itself


def card_context(card: Card) -> dict[str, Any]:
    """The variables a card template is rendered with (see the module docstring)."""
    model_ids = [model.model_id for model in card.models]
    return {
        "model_name": model_ids[0] if model_ids else "",
        "model_ids": model_ids,
        "family": card.family,
        "collection": card.collection,
    }


def render_template(path: str | os.PathLike[str], templates_dir: str | os.PathLike[str],
                    context: dict[str, Any]) -> str:
    """The Markdown of the template at `path` (a file inside `templates_dir`) rendered with `context`.

    Includes are looked up relative to `templates_dir` (`{% include 'code_snippets.md' %}` is
    `templates_dir/code_snippets.md`). Raises CardError for a Jinja syntax error, an undefined
    variable, a missing include, an unsafe operation or any error raised while rendering.
    """
    shown_path = os.fspath(path)
    shown_root = os.fspath(templates_dir)
    name = _template_name(shown_path, shown_root)
    environment = make_environment(shown_root)
    try:
        template = environment.get_template(name)
        return template.render(context)
    except Exception as error:  # every failure becomes a finding: a card never crashes the build
        raise CardError([_finding_for(error, shown_path, shown_root)]) from None


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The Jinja sandbox (which also keeps templates from changing the lists and dicts they are
    given), plus limits on the two operators that can exhaust memory or time."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(right) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and _is_int(times) \
                        and len(sequence) * times > MAX_REPEAT_LENGTH:
                    raise SecurityError(f"repeating a sequence {times} times makes it too long")
        return super().call_binop(context, operator, left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _ConfinedLoader(jinja2.FileSystemLoader):
    """A file loader that refuses any file whose real path (symlinks resolved) leaves the root."""

    def __init__(self, root: str):
        # An absolute search path makes Jinja's rewritten traceback frames carry absolute file
        # names, which is how errors are located in the template files.
        super().__init__(os.path.abspath(root), encoding="utf-8", followlinks=False)
        self.root = os.path.realpath(root)

    def get_source(self, environment: jinja2.Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        real = os.path.realpath(filename)
        if os.path.commonpath([real, self.root]) != self.root:
            raise jinja2.TemplateNotFound(template, f"{template!r} resolves outside the templates folder")
        return source, filename, uptodate


def make_environment(templates_dir: str | os.PathLike[str]) -> ImmutableSandboxedEnvironment:
    """The sandboxed, strict Jinja environment card templates are rendered in."""
    environment = _BoundedSandbox(
        loader=_ConfinedLoader(os.fspath(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    # Only the harmless globals stay; cycler/joiner/lipsum are not needed by cards.
    environment.globals = {name: environment.globals[name] for name in ("range", "dict", "namespace")}
    return environment


def _template_name(path: str, templates_dir: str) -> str:
    """The loader name of `path` (relative to `templates_dir`, '/'-separated)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(templates_dir))
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        raise CardError([Finding("error", path, None,
                                 f"the template is not inside the templates folder {templates_dir!r}",
                                 hint="card templates live in templates/models/")])
    return relative.replace(os.sep, "/")


# ---------------------------------------------------------------------------------------------
# Turning exceptions into findings


def _finding_for(error: BaseException, path: str, templates_dir: str) -> Finding:
    where_path, where_line = _template_location(error, path, templates_dir)
    if isinstance(error, jinja2.TemplateSyntaxError):
        if error.name:
            where_path = _shown_template_path(error.name, path, templates_dir)
        where_line = error.lineno
        return Finding("error", where_path, where_line, f"Jinja syntax error: {error.message}",
                       hint="check the '{% ... %}' and '{{ ... }}' tags on this line; each block tag "
                            "needs its matching end tag")
    if isinstance(error, jinja2.TemplateNotFound):
        missing = error.name if isinstance(error.name, str) else ", ".join(map(str, error.name or []))
        if missing == _template_name(path, templates_dir):
            return Finding("error", path, None, "cannot read the card template: no such file",
                           hint="check the path")
        return Finding("error", where_path, where_line,
                       f"included template {missing!r} not found in {templates_dir}/",
                       hint=f"check the name; includes are looked up relative to {templates_dir}/")
    if isinstance(error, jinja2.UndefinedError):
        if "has no attribute" in (error.message or ""):
            return Finding("error", where_path, where_line, f"undefined attribute: {error.message}",
                           hint="check the name after the '.'")
        return Finding("error", where_path, where_line, f"undefined variable: {error.message}",
                       hint="card templates may use: model_name, model_ids, family, collection "
                            "(see resfam/cards/render.py)")
    if isinstance(error, SecurityError):
        return Finding("error", where_path, where_line, f"unsafe template: {error}",
                       hint="templates run in a sandbox: no attributes starting with '_', no file "
                            "or network access")
    if isinstance(error, UnicodeDecodeError):
        return Finding("error", where_path, where_line, "a template is not valid UTF-8",
                       hint="save the file with UTF-8 encoding")
    if isinstance(error, RecursionError):
        return Finding("error", where_path, where_line, "the template includes itself without end",
                       hint="remove the include cycle")
    return Finding("error", where_path, where_line,
                   f"error while rendering: {type(error).__name__}: {error}",
                   hint="check the expression on this line")


def _template_location(error: BaseException, path: str, templates_dir: str) -> tuple[str, int | None]:
    """The template file and line where `error` was raised: Jinja rewrites the traceback so that
    template frames carry the template's file name and line; the innermost such frame wins."""
    root = os.path.realpath(templates_dir)
    found: tuple[str, int | None] = (path, None)
    traceback: TracebackType | None = error.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        real = os.path.realpath(filename) if os.path.isabs(filename) else ""
        if real and os.path.commonpath([real, root]) == root and filename.endswith(_TEMPLATE_SUFFIXES):
            name = os.path.relpath(real, root).replace(os.sep, "/")
            found = (_shown_template_path(name, path, templates_dir), traceback.tb_lineno)
        traceback = traceback.tb_next
    return found


def _shown_template_path(name: str, path: str, templates_dir: str) -> str:
    """The template `name` as a path the way the caller spelt paths: `path` itself for the card."""
    if name == _template_name(path, templates_dir):
        return path
    return os.path.join(templates_dir, *name.split("/"))
