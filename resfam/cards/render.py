"""Render a card template to page Markdown, in a sandbox.

Templates are Jinja2 + Markdown, rendered with Jinja's (immutable) sandbox: `StrictUndefined` (a misspelt
variable is an error, not an empty string), no autoescaping (the output is Markdown), and a loader that
only reads files inside the templates folder. A template cannot reach Python internals (attributes
starting with `_` are refused, so `''.__class__.__mro__` and `cycler.__init__.__globals__` fail), the
file system outside the templates folder, or the network. Every problem is a `CardError` naming the file
and line where it happened: for an error inside an included file, that file and its line.

Nor can a template run without end: rendering happens in a separate process (one per Python process,
started on first use and reused), which may use `RENDER_MEMORY` bytes and `RENDER_SECONDS` per
template. A template over either limit is stopped with an error naming the line it had reached; a
renderer stuck in one long operation is killed. (The sandbox's own limits cannot do this: nested loops,
or text doubled through `namespace`, stay within every per-operation limit.)

Variables every card template and `templates/code_snippets.md` may use (`card_context`):

    model_name   the registry ID (its Metadata `ID`, else its `Name`) of the card's smallest model by
                 measured FLOPs at its image size, then parameters (the first in card order among
                 equals; the card's first model when none was measured), e.g. 'resnet18': what the
                 code snippets create, and so what the build runs them with (`snippet_model`)
    model_ids    the registry IDs of all the card's models, in card order
    family       the family slug, the template file stem, e.g. 'resnet-d'
    collection   the collection name, e.g. 'ResNet-D' (the first `Collections` Name of the block)
    models       {registry ID: what the build measured of that model}, for every model of the card's
                 model-index and every model the template itself names as `models.ID` or
                 `models['ID']` (another card's model, to compare with): `models.resnet50.parameters`

What `models.ID` holds: the figures the card verifies, measured from the code in this build (the same
measurement the card's tables show, from the same cache), at the model's registered image size:

    parameters   Parameters (an int)            flops        FLOPs, fvcore's count (an int)
    activations  Activations, fvcore's (an int) file_size    File Size in bytes (an int)
    layers       Layers, the nominal depth      image_size   Image Size in pixels (an int)
    crop_pct     Crop Pct (a float)             interpolation  Interpolation (a str)

and the stage layout, read from the built model's modules (`measure.stage_layout`):

    blocks       blocks per stage, e.g. [3, 4, 6, 3]
    block        the class of the blocks, e.g. 'Bottleneck' ('BasicBlock', 'Res2NetBottleneck', ...)
    widths       output channels of each stage, e.g. [256, 512, 1024, 2048]
    inner_widths output channels of the first convolution of each stage: a bottleneck's narrow width
    stem_widths  output channels of each convolution of the stem, e.g. [32, 32, 64] for a deep stem

Filters that write a measured number the way cards do (`digits` after the point):

    millions(digits=1)   25557032 -> '25.6'     gflops(digits=2)   4111514624 -> '4.11'
    mb(digits=1)         102530155 -> '102.5'   grouped            19232 -> '19,232'

so prose reads `{{ models.resnet50.parameters | millions }} million parameters`: a figure written
out as a literal (`25.6 million parameters`) is flagged by `verify` (`prose.literal_figures`).

Besides these, the Jinja built-in filters and tests, and the globals `range`, `dict` and `namespace`.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .claims import Card
from .findings import CardError, Finding
from .limits import leave_interrupts_to_parent, limit_memory, pump, time_limit, wait_for

MAX_REPEAT_LENGTH = 1_000_000  # 'x' * n and [..] * n beyond this many items are refused
MAX_EXPONENT = 1_000  # 10 ** 10 ** 10 would never finish
# A card renders in milliseconds and a few MB: these only stop a runaway template.
RENDER_SECONDS = 10.0  # per template, then it is stopped where it is
RENDER_MEMORY = 1 << 30  # bytes of address space for the rendering process (enforced on Linux)
MAX_PAGE_CHARS = 10_000_000  # a rendered page longer than this is refused
_KILL_GRACE = 5.0  # seconds past RENDER_SECONDS before a renderer stuck in one operation is killed
_TEMPLATE_SUFFIXES = (".md", ".html", ".jinja", ".j2", ".txt")  # not the .py frames of Jinja itself


CONTEXT_NAMES = ("model_name", "model_ids", "family", "collection", "models")


def card_context(card: Card, models: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The variables a card template is rendered with (see the module docstring); `models` is
    {registry ID: its measured values}, as `verify` makes them (`MeasuredModel.template_values`)."""
    model_ids = [model.model_id for model in card.models]
    return {
        "model_name": snippet_model(model_ids, models or {}),
        "model_ids": model_ids,
        "family": card.family,
        "collection": card.collection,
        "models": dict(models or {}),
    }


def snippet_model(model_ids: list[str], models: Mapping[str, Mapping[str, Any]]) -> str:
    """The model a card's code snippets use: every model of a card works the same way, and the build
    runs the snippets, so the smallest makes the shortest run: the fewest measured FLOPs at its image
    size, then the fewest measured parameters, then the first in card order (a model without counted
    FLOPs after those with, one not measured after all); "" for a card without models."""
    def size(position: int) -> tuple[bool, bool, int, int, int]:
        values = models.get(model_ids[position]) or {}
        flops, parameters = values.get("flops"), values.get("parameters")
        counted = isinstance(flops, int)
        measured = isinstance(parameters, int)
        return (not measured, not counted, flops if counted else 0, parameters if measured else 0, position)

    return model_ids[min(range(len(model_ids)), key=size)] if model_ids else ""


def cited_models(source: str) -> dict[str, int]:
    """{registry ID: line of its first use} for every `models.ID` and `models['ID']` in a template's
    source, read from Jinja's syntax tree (nothing runs); {} when the source does not parse (rendering
    reports why)."""
    try:
        tree = _PARSER.parse(source)
    except jinja2.TemplateSyntaxError:
        return {}
    cited: dict[str, int] = {}
    for node in tree.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "models":
            name = node.attr if isinstance(node, jinja2.nodes.Getattr) else getattr(node.arg, "value", None)
            if isinstance(name, str):
                cited.setdefault(name, node.lineno)
    return cited


# Number filters: how cards write measured figures.
def _millions(value: Any, digits: int = 1) -> str:
    return f"{float(value) / 1e6:.{int(digits)}f}"


def _gflops(value: Any, digits: int = 2) -> str:
    return f"{float(value) / 1e9:.{int(digits)}f}"


def _megabytes(value: Any, digits: int = 1) -> str:
    return f"{float(value) / 1e6:.{int(digits)}f}"


def _grouped(value: Any) -> str:
    return f"{int(value):,}"


NUMBER_FILTERS = {"millions": _millions, "gflops": _gflops, "mb": _megabytes, "grouped": _grouped}


def render_template(path: str | os.PathLike[str], templates_dir: str | os.PathLike[str],
                    context: dict[str, Any], compiled_dir: str | os.PathLike[str] | None = None) -> str:
    """The Markdown of the template at `path` (a file inside `templates_dir`) rendered with `context`.

    Includes are looked up relative to `templates_dir` (`{% include 'code_snippets.md' %}` is
    `templates_dir/code_snippets.md`). `context` is plain JSON data (the renderer is another process).
    compiled_dir: a folder where the compiled templates are kept between runs (Jinja's bytecode cache,
    checked against each template's source); None compiles them anew.
    Raises CardError for a Jinja syntax error, an undefined variable, a missing include, an unsafe
    operation, a template over the time or memory limit, or any error raised while rendering.
    """
    shown_path = os.fspath(path)
    shown_root = os.fspath(templates_dir)
    _template_name(shown_path, shown_root)  # a template outside the folder is refused here already
    request = {"cwd": os.getcwd(), "path": shown_path, "templates_dir": shown_root, "context": context,
               "seconds": RENDER_SECONDS, "compiled": os.fspath(compiled_dir) if compiled_dir is not None else None}
    reply = _RENDERER.render(request, RENDER_SECONDS + _KILL_GRACE)
    if "findings" in reply:
        raise CardError([Finding(**finding) for finding in reply["findings"]])
    return reply["markdown"]


def start_renderer() -> None:
    """Start the rendering process now, if it is not running, without waiting for it: it starts up
    (~0.1 s, docs/performance.md) while the caller does other work (MkDocs reading its theme) instead of at
    the first card."""
    _RENDERER.start()


def _render_here(path: str, templates_dir: str, context: dict[str, Any], seconds: float | None,
                 compiled_dir: str | None = None) -> str:
    """Render in this process (the renderer's side of `render_template`)."""
    name = _template_name(path, templates_dir)
    environment = make_environment(templates_dir)
    if compiled_dir is not None:
        environment.bytecode_cache = _compiled_templates(compiled_dir)
    try:
        with time_limit(seconds, lambda: _RenderTimeout(seconds)):
            page = environment.get_template(name).render(context)
    except Exception as error:  # every failure becomes a finding: a card never crashes the build
        raise CardError([_finding_for(error, path, templates_dir)]) from None
    if len(page) > MAX_PAGE_CHARS:
        raise CardError([Finding("error", path, None, f"the rendered page has {len(page):,} characters; a "
                                                      f"card page may have at most {MAX_PAGE_CHARS:,}",
                                 hint=_RUNAWAY_HINT)])
    return page


@functools.lru_cache(maxsize=4)
def _compiled_templates(folder: str) -> jinja2.FileSystemBytecodeCache:
    """Jinja's bytecode cache in `folder`, for the card templates only: Jinja checks each entry against
    the template's source and its own version; the file names carry a digest of this module, which
    defines the environment the code is compiled for (the sandbox's intercepted operators). Compiling
    the templates (code_snippets.md once per card) took 0.09 s of a warm build (docs/performance.md)."""
    with open(__file__, "rb") as source:
        digest = hashlib.sha256(source.read()).hexdigest()[:16]
    return jinja2.FileSystemBytecodeCache(folder, f"__card_{digest}_%s.cache")


class _RenderTimeout(Exception):
    """Raised inside the template code when its time is up (so the traceback says where it was)."""

    def __init__(self, seconds: float):
        super().__init__(f"more than {seconds:g} s")
        self.seconds = seconds


# ---------------------------------------------------------------------------------------------
# The rendering process

_RUNAWAY_HINT = "a card renders in milliseconds and is a page of text: look for a loop or a text that grows " \
                "without end"
_STDERR_LINES_KEPT = 20


class _Renderer:
    """The parent's side: one rendering process, started when first needed, asked one template at a
    time (one JSON line each way), killed and replaced when it runs past its time or dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
        self._owner = os.getpid()

    def render(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        line = json.dumps(request) + "\n"
        with self._lock:
            try:
                process = self._running()
            except OSError as error:
                return self._failure(request, f"cannot start the template renderer: {error}")
            try:
                process.stdin.write(line)
                process.stdin.flush()
                reply = wait_for(self._replies, timeout)
            except queue.Empty:
                self._stop()
                return self._failure(request, f"the template ran for more than {timeout:g} s and was stopped")
            except OSError:
                reply = None
            except BaseException:  # interrupted: its late reply must not answer the next request
                self._stop()
                raise
            if reply is None:
                return self._failure(request, f"the template renderer stopped ({self._death()})")
            return json.loads(reply)

    def start(self) -> None:
        with self._lock:
            try:
                self._running()
            except OSError:
                pass  # the first render reports it

    def _running(self) -> subprocess.Popen:
        if self._owner != os.getpid():  # a forked copy of this object: the process is the parent's
            self._process, self._owner = None, os.getpid()
        if self._process is not None and self._process.poll() is not None:
            self._stop()
        if self._process is None:
            self._start()
        return self._process

    def _start(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                "from resfam.cards.render import _serve; _serve()")
        # -P: a module in the working folder must not shadow jinja2 or resfam in the renderer
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
        self._replies = replies = queue.Queue()
        self._stderr.clear()
        # readers that never block the renderer; None in the queue says it has gone
        threading.Thread(target=pump, args=(self._process.stdout, replies.put, lambda: replies.put(None)),
                         daemon=True).start()
        threading.Thread(target=pump, args=(self._process.stderr, self._stderr.append), daemon=True).start()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.kill()
        process.wait()

    def _death(self) -> str:
        process, self._process = self._process, None
        code = process.wait() if process is not None else None
        last = next((line for line in reversed(self._stderr) if line.strip()), "")
        return f"exit code {code}" + (f": {last.strip()}" if last else "")

    @staticmethod
    def _failure(request: dict[str, Any], message: str) -> dict[str, Any]:
        finding = Finding("error", request["path"], None, message, hint=_RUNAWAY_HINT)
        return {"findings": [asdict(finding)]}

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is None or self._owner != os.getpid():
            return
        with contextlib.suppress(OSError):
            process.stdin.close()  # end of requests: the renderer exits
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_RENDERER = _Renderer()
atexit.register(_RENDERER.close)


def _serve() -> None:
    """The renderer's side: one JSON request per line on stdin, one JSON reply per line on stdout."""
    leave_interrupts_to_parent()
    limit_memory(RENDER_MEMORY)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            os.chdir(request["cwd"])  # paths are shown as the caller gave them
            page = _render_here(request["path"], request["templates_dir"], request["context"], request["seconds"],
                                request.get("compiled"))
            reply = json.dumps({"markdown": page})
        except CardError as error:
            reply = json.dumps({"findings": [asdict(finding) for finding in error.findings]})
        except BaseException as error:  # (out of memory in json.dumps, say) an answer, never a dead renderer
            finding = Finding("error", request.get("path", "?"), None,
                              f"error while rendering: {type(error).__name__}: {error}", hint=_RUNAWAY_HINT)
            reply = json.dumps({"findings": [asdict(finding)]})
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The Jinja sandbox (which also keeps templates from changing the lists and dicts they are
    given), plus limits on the two operators that can exhaust memory or time."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(right) and abs(right) > MAX_EXPONENT:
            raise _TooLarge(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and _is_int(times) \
                        and len(sequence) * times > MAX_REPEAT_LENGTH:
                    raise _TooLarge(f"repeating a sequence {times} times makes it too long")
        return super().call_binop(context, operator, left, right)


class _TooLarge(SecurityError):
    """An operation over the sandbox's size limits (fails fast; the process limits catch the rest)."""


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
    environment.filters.update(NUMBER_FILTERS)
    return environment


_PARSER = jinja2.Environment()  # for reading a template's syntax tree only: nothing is rendered with it


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
        name = error.name
        if name and os.path.isabs(name):  # Jinja's lexer passes some errors the file name as the name
            name = os.path.relpath(name, os.path.abspath(templates_dir)).replace(os.sep, "/")
        if name:
            where_path = _shown_template_path(name, path, templates_dir)
        line, message, hint = _syntax_problem(error)
        return Finding("error", where_path, line, f"Jinja syntax error: {message}", hint=hint)
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
            models_hint = ("; models.ID has every model of the card and every model the template names, when "
                           "it is registered (python -m resfam lists them) and could be measured"
                           if "'dict object'" in (error.message or "") else "")
            return Finding("error", where_path, where_line, f"undefined attribute: {error.message}",
                           hint="check the name after the '.'" + models_hint)
        return Finding("error", where_path, where_line, f"undefined variable: {error.message}",
                       hint=f"card templates may use: {', '.join(CONTEXT_NAMES)} "
                            "(see resfam/cards/render.py)")
    here = " here" if where_line is not None else ""  # None: outside the template's own code (joining its output)
    if isinstance(error, _RenderTimeout):
        return Finding("error", where_path, where_line, f"the template ran for {error} and was stopped{here}",
                       hint=_RUNAWAY_HINT)
    if isinstance(error, MemoryError):
        return Finding("error", where_path, where_line, f"the template ran out of memory{here} (the renderer may "
                                                        f"use {RENDER_MEMORY / 2**30:g} GB)", hint=_RUNAWAY_HINT)
    if isinstance(error, _TooLarge):
        return Finding("error", where_path, where_line, f"unsafe template: {error}", hint=_RUNAWAY_HINT)
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


_SYNTAX_HINT = ("check the '{% ... %}' and '{{ ... }}' tags on this line; each block tag needs its matching "
                "end tag")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}
_DELIMITER = re.compile(r"\{\{|\{%|\{#|\}\}|%\}|#\}")
_RAW_OR_COMMENT = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\}|\{#.*?#\}", re.DOTALL)
_BLOCK_TAG = re.compile(r"\{%[-+]?\s*(\w+)(.*?)[-+]?%\}", re.DOTALL)
_BLOCK_TAGS = frozenset(("for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans"))
_INNERMOST_BLOCK = re.compile(r"The innermost block that needs to be closed is '(\w+)'")


def _syntax_problem(error: jinja2.TemplateSyntaxError) -> tuple[int | None, str, str]:
    """(line, message, hint) of a Jinja syntax error. Jinja reports where it gave up; a tag or a block
    left open is reported where it opens, which is where the fix goes."""
    message = re.sub(r" at \d+$", "", error.message or "")  # a character offset means nothing to a reader
    source = error.source or ""
    line = error.lineno
    opened = _unclosed_tag(source, line) if line else None
    if opened is not None:
        opener, opened_line = opened
        closer = _CLOSERS[opener]
        return (opened_line, f"the tag '{opener}' opened on this line is never closed with '{closer}' "
                             f"(Jinja stopped at line {line}: {message})", f"end the tag with '{closer}'")
    innermost = _INNERMOST_BLOCK.search(message)
    opened_line = _unclosed_block_line(source, innermost.group(1)) if innermost else None
    if opened_line is not None:
        name = innermost.group(1)
        return opened_line, message, f"add '{{% end{name} %}}' where the '{name}' block ends"
    return line, message, _SYNTAX_HINT


def _blank(match: re.Match) -> str:
    """The matched text as spaces, its line breaks kept: offsets and line numbers stay as they were."""
    return re.sub(r"[^\n]", " ", match.group())


def _unclosed_tag(source: str, line: int) -> tuple[str, int] | None:
    """The opening delimiter ('{{', '{%' or '{#') still open at the end of `line`, and its line, when it
    opened on an earlier line."""
    end = source.find("\n", _line_start(source, line))
    end = len(source) if end == -1 else end
    opener: tuple[str, int] | None = None
    for match in _DELIMITER.finditer(re.sub(_RAW_OR_COMMENT, _blank, source), 0, end):
        token = match.group()
        if opener is None and token in _CLOSERS:
            opener = (token, match.start())
        elif opener is not None and token == _CLOSERS[opener[0]]:
            opener = None
    if opener is None:
        return None
    opened_line = source.count("\n", 0, opener[1]) + 1
    return (opener[0], opened_line) if opened_line < line else None


def _unclosed_block_line(source: str, name: str) -> int | None:
    """The line of the innermost '{% name %}' block tag that has no end tag."""
    stack: list[tuple[str, int]] = []
    for match in _BLOCK_TAG.finditer(re.sub(_RAW_OR_COMMENT, _blank, source)):
        tag, rest = match.group(1), match.group(2)
        if tag in _BLOCK_TAGS or (tag == "set" and "=" not in rest):  # `{% set x %}...{% endset %}`
            stack.append((tag, match.start()))
        elif tag.startswith("end"):
            for index in range(len(stack) - 1, -1, -1):
                if stack[index][0] == tag[3:]:
                    del stack[index:]
                    break
    for tag, offset in reversed(stack):
        if tag == name:
            return source.count("\n", 0, offset) + 1
    return None


def _line_start(source: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        offset = source.find("\n", offset) + 1
        if offset == 0:
            return len(source)
    return offset


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
