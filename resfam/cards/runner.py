"""The code on a card page, run in the build as a reader would run it.

Every fenced Python block of a rendered card page (the included usage snippets and any block the card
writes itself) runs, in page order, in one namespace per page:

- in a measuring worker (`worker.py`, asked through `pool.WorkerPool` with a `RunJob`), bounded in time
  per block and in memory like measuring; each page starts from a process that has run nothing, as a
  reader's script does: a child the worker forks for the page after importing torch and the zoo (where
  the worker does not fork, on other systems than Linux: the worker itself, retired after the page);
- in a temporary working folder holding a sample photo, `image.jpg`, with HOME and TORCH_HOME inside it
  (nothing a block writes lands in the project), the network refused;
- with the zoo's real API, registry and loading code. The one thing replaced is the download: a
  checkpoint the code asks for is stood in by a file of that model's own layout (its state_dict,
  deterministically filled, in the format asked for), written where the download would land; the
  worker's zoo says how (`stand_in_downloads` of the zoo interface, zoos.py).

A block that must not run (shell commands, an output sample, deliberately partial code) is marked by
the HTML comment `<!-- no-run -->` (or `<!-- no-run: why -->`) on the line before its fence; it is
counted, never skipped silently. A failure (an exception, the time limit, a crashed worker) is an error
finding at the template file and line of the failing statement (`page_blocks` maps each line of a
rendered block back to its template: the card, or an included file such as
`templates/code_snippets.md`), with the exception's message and the block's first line.

Cached like measurements (`cache.MeasurementCache`, kind "code"): a block's entry is keyed by its text,
the text of the page's earlier blocks, the versions (Python, torch, fvcore, resfam, numpy, Pillow) and
the runner's own code, and trusted while every resfam source file the run used (every file whose code
ran, and what those import) has the hash it had. A page whose blocks are all cached starts no worker.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .findings import Finding
from .zoos import ResfamZoo

if TYPE_CHECKING:
    from .zoo import ZooMeasurer

NO_RUN = re.compile(r"^[ \t]*<!--\s*no-run\b(?P<reason>.*?)-->[ \t]*$")
NO_RUN_MARKER = "<!-- no-run -->"
PYTHON_INFO = frozenset(("python", "py", "python3"))
SAMPLE_IMAGE = "image.jpg"
RUNNER_CODE = ("cards/runner.py", "cards/worker.py", "cards/zoos.py")  # the code whose change re-runs every block
MAX_OUTPUT = 20_000  # characters of a block's printed output kept
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*?)[ \t]*$")
_INCLUDE = re.compile(r"\{%-?\s*include\s+(['\"])(?P<name>[^'\"]+)\1.*?-?%\}")
_HINT = (f"fix the code (or the template that writes it); a block that must not run is marked by {NO_RUN_MARKER} "
         "on the line before its fence (docs/measurement.md)")


# ---------------------------------------------------------------------------------------------
# The blocks of a page, and where each line of them is written


@dataclass(frozen=True)
class CodeBlock:
    """One fenced Python block of a rendered page.

    index: its place among the page's Python blocks (0-based); code: its text; end_line: the page
    line of its closing fence (1-based; where the "ran" mark goes); path and lines: the template file
    that writes it and, per line of the code, the template line (None when it cannot be told).
    """

    index: int
    code: str
    end_line: int
    path: str
    lines: tuple[int | None, ...]
    run: bool = True

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    def template_line(self, line: int | None) -> int | None:
        """The template line of line `line` (1-based) of the code; its first line when out of range."""
        if not self.lines:
            return None
        if line is None or not 1 <= line <= len(self.lines):
            return self.lines[0]
        return self.lines[line - 1]


@dataclass(frozen=True)
class _Fence:
    info: str
    first: int  # 0-based index of the first code line
    code: list[str]
    closing: int  # 0-based index of the closing fence line (len(lines) when never closed)


def _fences(lines: Sequence[str]) -> Iterator[_Fence]:
    """The fenced blocks of Markdown `lines`, in order (a fence ends at one of its kind, as long or longer)."""
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or (opening.group("fence")[0] == "`" and "`" in opening.group("info")):
            index += 1
            continue
        fence = opening.group("fence")
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if closing and closing.group("fence")[0] == fence[0] and len(closing.group("fence")) >= len(fence) \
                    and not closing.group("info"):
                break
            end += 1
        yield _Fence(opening.group("info"), index + 1, list(lines[index + 1:end]), end)
        index = end + 1


def _is_python(info: str) -> bool:
    words = info.lstrip("{").replace(".", " ").split()
    return bool(words) and words[0].lower() in PYTHON_INFO


def _template_fences(path: str, templates_dir: str, depth: int = 0) -> list[tuple[str, int, int]]:
    """(template file, line of its first code line, number of code lines) of every Python fence the
    template writes, includes expanded in place, in page order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines = text.splitlines()
    found: list[tuple[str, int, int]] = []
    fences = {fence.first - 1: fence for fence in _fences(lines)}
    index = 0
    while index < len(lines):
        fence = fences.get(index)
        if fence is not None:
            if _is_python(fence.info):
                found.append((path, fence.first + 1, len(fence.code)))
            index = fence.closing + 1
            continue
        for include in _INCLUDE.finditer(lines[index]):
            if depth < 10:  # an include cycle is the renderer's error to report
                found += _template_fences(os.path.join(templates_dir, *include.group("name").split("/")),
                                          templates_dir, depth + 1)
        index += 1
    return found


def page_blocks(markdown: str, path: str, templates_dir: str | os.PathLike[str]) -> list[CodeBlock]:
    """The Python blocks of a card's rendered page, each line mapped back to its template line.

    The n-th Python fence of the page is the n-th of the template, includes expanded in place; a block
    with as many lines as its template fence maps line by line (a Jinja expression stays on its line),
    any other to its fence's first code line. Where a template writes its fences in a loop (the counts
    differ), a block is placed at the card's file only."""
    lines = markdown.splitlines()
    written = _template_fences(path, os.fspath(templates_dir))
    blocks: list[CodeBlock] = []
    python = [fence for fence in _fences(lines) if _is_python(fence.info)]
    for index, fence in enumerate(python):
        previous = _previous_text_line(lines, fence.first - 1)
        marked = previous is not None and NO_RUN.match(previous) is not None
        if len(written) == len(python):
            where, start, count = written[index]
            mapped = tuple(range(start, start + count)) if count == len(fence.code) else (start,) * len(fence.code)
        else:
            where, mapped = path, ()
        blocks.append(CodeBlock(index, "\n".join(fence.code) + "\n", fence.closing + 1, where, mapped or (None,),
                                run=not marked))
    return blocks


def _previous_text_line(lines: Sequence[str], fence_line: int) -> str | None:
    """The last non-blank line before the fence on line index `fence_line`."""
    for line in reversed(lines[:fence_line]):
        if line.strip():
            return line
    return None


# ---------------------------------------------------------------------------------------------
# Running a page's blocks (in the worker; the tests use it in their own process)


@dataclass
class BlockOutcome:
    """What running one block gave: its printed output, and for a failure the error, the block and line
    of the failing statement (the innermost frame in the page's code) and the exception itself."""

    output: str = ""
    error: str | None = None
    block: int | None = None
    line: int | None = None
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def block_filename(index: int) -> str:
    return f"<card code block {index + 1}>"


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise OSError("network access is refused while a card's code runs in the build")


class CodeRun:
    """One page's run: a temporary working folder with the sample photo, HOME and TORCH_HOME inside it,
    the network refused, downloads stood in by `zoo` (a loaded zoo, zoos.py; resfam's by default), one
    namespace; `run(index, code)` runs a block. Everything is put back on leaving; `used_files` are the
    source files whose code ran."""

    _SOCKET = ((socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "create_connection"),
               (socket, "getaddrinfo"))

    def __init__(self, zoo: Any = None):
        self.zoo = zoo if zoo is not None else ResfamZoo()
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        self.used_files: set[str] = set()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> CodeRun:
        stack = self._stack
        self.folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="resfam-code-"))
        home = os.path.join(self.folder, "home")
        os.makedirs(home)
        for name, value in (("HOME", home), ("TORCH_HOME", os.path.join(home, ".cache", "torch"))):
            stack.callback(_restore_environment, name, os.environ.get(name))
            os.environ[name] = value
        previous = os.getcwd()
        os.chdir(self.folder)
        stack.callback(os.chdir, previous)
        for owner, name in self._SOCKET:
            stack.callback(setattr, owner, name, getattr(owner, name))
            setattr(owner, name, _refused)
        stand_in_downloads = getattr(self.zoo, "stand_in_downloads", None)  # a zoo may leave it out
        if callable(stand_in_downloads):
            stack.enter_context(stand_in_downloads(home))
        _sample_image(os.path.join(self.folder, SAMPLE_IMAGE))
        import torch

        torch.manual_seed(0)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stack.close()

    def run(self, index: int, code: str) -> BlockOutcome:
        output = io.StringIO()
        files = self.used_files

        def record(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                files.add(frame.f_code.co_filename)

        try:
            compiled = compile(code, block_filename(index), "exec")
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                previous = sys.getprofile()
                sys.setprofile(record)
                try:
                    exec(compiled, self.namespace)
                finally:
                    sys.setprofile(previous)
        except BaseException as error:  # noqa: BLE001 - whatever a block raises (exit() too) is its failure
            block, line = _failing_statement(error, index)
            return BlockOutcome(output.getvalue()[:MAX_OUTPUT], _one_line(error), block, line, error)
        return BlockOutcome(output.getvalue()[:MAX_OUTPUT])


def _restore_environment(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _sample_image(path: str) -> None:
    """A photo-sized JPEG of noise: what "any photo of yours" stands for."""
    from PIL import Image

    Image.effect_noise((320, 240), 64).convert("RGB").save(path)


def _failing_statement(error: BaseException, index: int) -> tuple[int, int | None]:
    """(block index, line in it) of the innermost frame in the page's code; a syntax error's own line."""
    if isinstance(error, SyntaxError) and error.filename == block_filename(index):
        return index, error.lineno
    found: tuple[int, int | None] = (index, None)
    names = {}
    for frame, line in traceback.walk_tb(error.__traceback__):
        name = frame.f_code.co_filename
        if name.startswith("<card code block "):
            block = names.setdefault(name, int(name[len("<card code block "):-1]) - 1)
            found = (block, line)
    return found


def describe_failure(error: BaseException, where: str | None = None) -> str:
    """A block's failure in one line: the exception and its message, and where in the zoo's sources it
    was raised (`where`, e.g. 'resfam/hub.py:120') when that is not the page's own code."""
    return _one_line(error) + (f" (raised at {where})" if where else "")


def _one_line(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"the code called exit({error.code!r})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def block_step(index: int) -> str:
    return f"running code block {index + 1}"


# ---------------------------------------------------------------------------------------------
# The parent's side: which pages to run, the cache, the findings


@dataclass(frozen=True)
class RunJob:
    """Run the code blocks of one page in a worker (a pool job, like `pool.MeasureJob`)."""

    page: str
    blocks: list[CodeBlock]
    # a worker that ran a page's code itself is not reused: the next page starts afresh (a forking worker
    # runs each page in a child of its own, worker.py, and stays as it started)
    retire_worker = True

    @property
    def model_id(self) -> str:  # what the pool's progress lines and failures name
        return self.page

    def request(self) -> dict[str, Any]:
        return {"op": "run", "model": self.page, "blocks": [block.code for block in self.blocks]}


@dataclass
class CodeRuns:
    """What running the code of the cards gave: per card path, the state of each Python block
    ("ran", "cached", "marked", "failed" or "not run": after a failure), and the counts."""

    states: dict[str, list[tuple[CodeBlock, str]]] = field(default_factory=dict)
    seconds: float = 0.0  # the time workers spent running the pages (alongside measuring: verify.py)

    def count(self, *states: str) -> int:
        return sum(1 for blocks in self.states.values() for _, state in blocks if state in states)


def code_versions(versions: Mapping[str, str]) -> dict[str, str]:
    """The versions a code run depends on: the measurement's, and the libraries the snippets use."""
    found = dict(versions)
    for distribution in ("numpy", "pillow"):
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[distribution] = "not installed"
    return found


class PageRuns:
    """The pages' runs of one verification: `job(page, blocks)` looks a page up in the cache and returns
    the `RunJob` for the workers when it is not all there (None when it is); `on_result` takes the
    worker's reply. `runs` and `findings` ({card path: error findings}) collect the outcomes;
    `runs.seconds` adds up the time the workers spent on the pages."""

    def __init__(self, zoo: ZooMeasurer):
        self.zoo = zoo
        self.runs = CodeRuns()
        self.findings: dict[str, list[Finding]] = {}
        self.versions = code_versions(zoo.cache.versions)
        self.code = {name: zoo.sources.engine.digest(name) for name in RUNNER_CODE}  # resfam's, whatever the zoo
        self.pages: dict[str, list[CodeBlock]] = {}

    def job(self, page: str, blocks: list[CodeBlock]) -> RunJob | None:
        self.pages[page] = blocks
        runnable = [block for block in blocks if block.run]
        keys = [_key(runnable[:position + 1], self.versions, self.code) for position in range(len(runnable))]
        if all(self.zoo.cache.get_code_run(key) is not None for key in keys):
            self.runs.states[page] = [(block, "cached" if block.run else "marked") for block in blocks]
            return None
        return RunJob(page, runnable)

    def on_result(self, job: RunJob, reply: dict[str, Any]) -> list[Any]:
        self.runs.seconds += reply.get("job_seconds", 0.0)
        states = _states(job, reply)
        by_index = {block.index: state for block, state in states}
        self.runs.states[job.page] = [(block, by_index.get(block.index, "marked")) for block in self.pages[job.page]]
        self.findings[job.page] = _failures(job, reply)
        if reply.get("op") == "ran" and not self.findings[job.page] and _unchanged(self.zoo, reply):
            for position in range(len(job.blocks)):
                self.zoo.cache.put_code_run(_key(job.blocks[:position + 1], self.versions, self.code),
                                            reply["sources"], {"output": reply["blocks"][position].get("output", "")})
        return []


def _key(blocks: Sequence[CodeBlock], versions: Mapping[str, str], code: Mapping[str, str | None]) -> dict[str, Any]:
    return {"blocks": [block.code for block in blocks], "versions": dict(versions), "runner": dict(code)}


def _unchanged(zoo: ZooMeasurer, reply: Mapping[str, Any]) -> bool:
    """Whether the files the run used had, throughout, the hashes they had when the verification began."""
    sources = reply.get("sources")
    return isinstance(sources, dict) and bool(sources) and all(
        digest is not None and zoo.snapshot.get(name) == digest for name, digest in sources.items())


def _states(job: RunJob, reply: Mapping[str, Any]) -> list[tuple[CodeBlock, str]]:
    outcomes = reply.get("blocks") if reply.get("op") == "ran" else None
    if outcomes is None:  # the worker failed: the block it was running, and those after it, did not run
        failed = _block_of_step(job, reply.get("step"))
        return [(block, "ran" if failed is not None and position < failed else
                 "failed" if position == (failed or 0) else "not run") for position, block in enumerate(job.blocks)]
    states = []
    for position, block in enumerate(job.blocks):
        if position < len(outcomes):
            states.append((block, "ran" if outcomes[position].get("error") is None else "failed"))
        else:
            states.append((block, "not run"))
    return states


def _block_of_step(job: RunJob, step: Any) -> int | None:
    return next((position for position in range(len(job.blocks)) if step == block_step(position)), None)


def _failures(job: RunJob, reply: Mapping[str, Any]) -> list[Finding]:
    """An error finding at the template line of the failing statement, or of the block the worker was
    running when it failed (the time limit, a crash)."""
    if reply.get("op") == "ran":
        failed = [outcome for outcome in reply["blocks"] if outcome.get("error") is not None]
        if not failed:
            return []
        outcome = failed[0]
        position = outcome.get("block") if isinstance(outcome.get("block"), int) else len(reply["blocks"]) - 1
        block = job.blocks[min(position, len(job.blocks) - 1)]
        line, error = outcome.get("line"), outcome["error"]
        if block is not job.blocks[len(reply["blocks"]) - 1]:
            ran = job.blocks[len(reply["blocks"]) - 1]
            error += f" (called from the code block starting {ran.first_line!r})"
    else:
        position = _block_of_step(job, reply.get("step")) or 0
        block, line, error = job.blocks[position], None, reply.get("error") or "the worker gave no reason"
    return [Finding("error", block.path, block.template_line(line),
                    f"the code block starting {block.first_line!r} fails: {error}", hint=_HINT)]


def mark_ran(markdown: str, states: Sequence[tuple[CodeBlock, str]], versions: Mapping[str, str]) -> str:
    """The page with a discreet mark after each block that ran (or whose run is cached): "✓ ran in this
    build", with the versions it ran with."""
    lines = markdown.splitlines(keepends=True)
    tools = ", ".join(f"{name} {versions[name]}" for name in ("torch", "resfam") if name in versions)
    mark = (f'<small class="resfam-ran" title="This code ran when the page was built, offline, with a stand-in '
            f'checkpoint ({tools})">✓ ran in this build</small>\n')
    for block, state in sorted(states, key=lambda item: -item[0].end_line):
        if state in ("ran", "cached") and block.end_line <= len(lines):
            lines.insert(block.end_line, "\n" + mark)
    return "".join(lines)


def summary(runs: CodeRuns) -> str | None:
    """'12 code blocks ran, 1 marked not to run' (None when the pages have no Python block)."""
    ran, marked = runs.count("ran", "cached"), runs.count("marked")
    failed, skipped = runs.count("failed"), runs.count("not run")
    if not (ran or marked or failed or skipped):
        return None
    parts = [f"{ran} code block{'s' if ran != 1 else ''} ran"]
    if failed:
        parts.append(f"{failed} failed")
    if skipped:
        parts.append(f"{skipped} not run after a failure")
    parts.append(f"{marked} marked not to run")
    return ", ".join(parts)


def serve_run(blocks: Sequence[str], step: Callable[[str], contextlib.AbstractContextManager],
              describe: Callable[[BaseException], dict[str, Any]], zoo: Any) -> tuple[list[dict[str, Any]], set[str]]:
    """The worker's side of a `RunJob`: run `blocks` in order in one `CodeRun` with the worker's loaded
    `zoo`, each as a step (bounded in time), up to the first failure; the outcomes and the files whose
    code ran. `describe` says what a failure was: {"cause": "time", "memory" or "error", "error": its
    message}."""
    outcomes = []
    with CodeRun(zoo) as run:
        for index, code in enumerate(blocks):
            with step(block_step(index)):
                outcome = run.run(index, code)
            outcomes.append({"output": outcome.output, "error": outcome.error, "block": outcome.block,
                             "line": outcome.line, "cause": None})
            if not outcome.ok:
                outcomes[-1].update(describe(outcome.exception))
                break
        shutil.rmtree(os.path.join(run.folder, "home"), ignore_errors=True)  # checkpoints can be large
    return outcomes, run.used_files
