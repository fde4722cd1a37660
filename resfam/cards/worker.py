"""The measuring worker: a fresh Python process that measures the model zoo as it is on disk now, not as
some long-running process (`mkdocs serve`) imported it when it started. Its parent's side is `pool.py`.

The worker is started by path,

    python <resfam>/cards/worker.py --root <folder holding resfam> --threads N --time-limit S --memory-limit B
                                    [--zoo SOURCE --project DIR]

rather than as `python -m resfam.cards.worker`, because `-m` imports the resfam package and
`resfam.cards` through the ordinary import, before the worker could set up its own. The worker then
loads the zoo SOURCE (`zoos.load_zoo`; resfam's by default) with the project folder DIR on the module
path (after the folder holding resfam), and asks it for each model's facts (`zoos.Zoo`). The resfam
sources, and those of a zoo inside the project folder, are always compiled from the files as they are
now: a stale `.pyc` (same size, same second) is never used.

Protocol: JSON lines. The worker first sends `{"op": "ready", ...}`, or `{"op": "fatal", "error": ...}`
when the zoo cannot be imported; then answers each request line on stdin with one line on stdout:

    {"op": "registry"}
        -> {"op": "registry", "models": {ID: {"family", "config", "sources", "defined_in", "defined_at"}},
            "architecture_tags": {tag: definition}, "renamed": {old ID: new name},
            "hashes": {file: sha256}, "versions", "code"}
    {"op": "measure", "model": ID, "kwargs": {}, "image_sizes": [224, ...]}
        -> {"op": "measured", "model", "measurements": [...], "sources": {file: sha256},
            "dependencies": {file: what of it the model depends on (cards/dependencies.py)}, "seconds",
            "versions", "code"}
        -> {"op": "failed", "model", "error", "step", "cause", "where", "versions", "code"}
    {"op": "run", "model": card page, "blocks": [code, ...]}
        -> {"op": "ran", "model", "blocks": [{"output", "error", "block", "line", "cause"}, ...],
            "sources": {file: sha256}, "seconds", "versions", "code"}   (cards/runner.py)

Before each step of its work (importing the model zoo; for a model: building, counting, saving,
tracing at N px) the worker sends `{"op": "step", "step": NAME}`, and while the step runs, every
WHERE_SECONDS, where its main thread is: `{"op": "where", "where": "resfam/models/resnet.py:120 in
forward"}` (the innermost line of the model's code, else the innermost line). A step may take `--time-limit`
seconds: then it is stopped where it is. The process may hold `--memory-limit` bytes of address space.
A failure says the step it happened in, its `cause` ("time", "memory" or "error") and `where`: the
resfam source line the model's code had reached ("resfam/models/resnet.py:120"), when there is one.
Ctrl-C is left to the parent, which stops its workers itself.

`sources` are the files that define the model, '/'-separated relative to the zoo's package (resfam's,
timm's, yours): the module that registers it and what the zoo's `source_files` adds (for resfam, the
helpers on the way to `register_model` and the modules its builder refers to), the modules its layers'
classes come from, the modules imported while it is built and measured, and every module of the
package those import when imported, transitively (read from the source). The hashes are read after the work,
so the parent can tell whether a file changed while it was being measured. Anything a library prints
goes to stderr, never into the protocol.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import functools
import gc
import importlib
import importlib.machinery
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="resfam measuring worker (JSON lines on stdin/stdout)")
    parser.add_argument("--root", required=True, help="the folder that holds the resfam package")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--time-limit", type=float, help="seconds per step (default: none)")
    parser.add_argument("--memory-limit", type=int, help="bytes of address space (default: none)")
    parser.add_argument("--zoo", default="resfam", help="the zoo SOURCE (resfam.cards.zoos)")
    parser.add_argument("--project", help="the project folder, first on the module path (a zoo of your own)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    # Run as a script, this file's folder is first on sys.path; the package's folder goes there instead.
    if sys.path and os.path.realpath(sys.path[0] or ".") == os.path.dirname(os.path.realpath(__file__)):
        sys.path.pop(0)
    sys.path.insert(0, str(root))
    if args.project:  # after the engine's folder: a package of the project cannot shadow resfam
        sys.path.insert(1, os.path.realpath(args.project))
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints land on stderr
    return _Server(root / "resfam", protocol, args.threads, args.time_limit, args.memory_limit,
                   args.zoo, args.project).run(sys.stdin)


WHERE_SECONDS = 1.0  # how often a working worker says where it is


class _StepTimeUp(BaseException):
    """Raised inside the running code when its step is over the time limit. Not an Exception: no
    `except Exception` on the way (the meta trace's fallback to the CPU, a model's own) carries on."""


class _Server:
    def __init__(self, package_dir: Path, protocol, threads: int, seconds: float | None = None,
                 memory: int | None = None, zoo: str = "resfam", project: str | None = None):
        self.package_dir = package_dir
        self.protocol = protocol
        self.threads = threads
        self.seconds = seconds
        self.memory = memory
        self.zoo_source = zoo
        self.project = project
        self.current_step: str | None = None
        self.sending = threading.Lock()  # the main thread's messages and the reports of where it is
        self.working = False  # a step has been announced and its request not yet answered
        self.use_zoo_dir(package_dir, "resfam")  # until the zoo is loaded: where a failure is placed

    def use_zoo_dir(self, zoo_dir: Path, package: str) -> None:
        """The folder of the zoo's package: model files are named relative to it."""
        self.zoo_dir, self.zoo_package = zoo_dir, package
        self.relative = _RelativePaths(zoo_dir, package)
        self.imports = _ImportGraph(zoo_dir, package)

    def send(self, message: dict[str, Any]) -> None:
        with self.sending:
            self.working = message["op"] == "step"  # a step starts the work, any other message ends it
            self.protocol.write(json.dumps(message) + "\n")

    def report_where(self) -> None:
        """Every WHERE_SECONDS while a step runs, send where the main thread is (run in a daemon thread)."""
        if hasattr(signal, "pthread_sigmask"):  # the step's timer signal is the main thread's, as it was
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        main = threading.main_thread().ident
        while True:
            time.sleep(WHERE_SECONDS)
            with self.sending:
                frame = sys._current_frames().get(main) if self.working else None
                if frame is not None:
                    self.protocol.write(json.dumps({"op": "where", "where": _location(frame, self.relative)}) + "\n")
                del frame  # a frame keeps the main thread's locals alive

    def run(self, requests: Iterable[str]) -> int:
        threading.Thread(target=self.report_where, daemon=True).start()
        try:
            self.start()
        except BaseException as error:  # noqa: BLE001 - whatever it is, the parent hears about it
            self.send({"op": "fatal", **self.failure(error)})
            return 1
        children = _Children(self) if sys.platform.startswith("linux") else None  # where forking torch is safe
        self.send({"op": "ready", "pid": os.getpid(), "versions": self.installed_versions(),
                   "forks": children is not None})
        try:
            for line in requests:
                if line.strip():
                    request = json.loads(line)
                    if children is not None and request.get("op") in _IN_CHILDREN:
                        children.answer(request)
                    else:
                        self.send(self.handle(request))
        finally:
            if children is not None:
                children.close()
        return 0

    def start(self) -> None:
        _compile_fresh_from_source(self.package_dir)
        from resfam.cards import limits, zoos

        zoo_spec = importlib.util.find_spec(zoos.zoo_package(self.zoo_source))
        if self.project and zoo_spec is not None and zoo_spec.submodule_search_locations:
            zoo_dir = Path(list(zoo_spec.submodule_search_locations)[0]).resolve()
            if zoo_dir != self.package_dir.resolve() and zoo_dir.is_relative_to(Path(self.project).resolve()):
                # the user's own code, being edited
                _compile_fresh_from_source(zoo_dir)

        limits.leave_interrupts_to_parent()
        if self.memory:
            limits.limit_memory(self.memory)
        self.time_limit = limits.time_limit
        import torch  # before the zoo, so that watching the zoo's import below does not watch torch's

        torch.set_num_threads(self.threads)
        with self.step("importing the model zoo"):
            self.zoo, self.fact = zoos.load_zoo(self.zoo_source), zoos.fact
            zoo_module = sys.modules[self.zoo.package]
            self.use_zoo_dir(Path(zoo_module.__file__).resolve().parent, self.zoo.package)
            import resfam

            imported_from = Path(resfam.__file__).resolve().parent
            if imported_from != self.package_dir.resolve():
                raise ImportError(f"resfam was imported from {imported_from}, not {self.package_dir}")
            from resfam.cards import architecture, cache, dependencies, measure, meta_kernels

            self.measure_module, self.meta_kernels = measure, meta_kernels
            self.cache_module = cache
            self.model_ids = set(self.zoo.list_models())
            self.architecture_tags = architecture.vocabulary(self.zoo.package)
            self.dependencies = dependencies.ZooDependencies(self.zoo_dir, self.imports._file_of,
                                                             self.registration_sites())
        # the trace's kernels, registered once for every model this worker measures; kept open (and
        # referenced: a dropped block is closed by the collector) until the worker exits
        self.shape_only_tracing = contextlib.ExitStack()
        try:
            self.shape_only_tracing.enter_context(measure.shape_only_tracing())
        except Exception:  # noqa: BLE001 - a torch without these internals: each count falls back to the CPU
            traceback.print_exc()
        _settle()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """One step of the work: announced to the parent, and stopped where it is after the time limit."""
        self.current_step = name
        self.send({"op": "step", "step": name})
        with self.time_limit(self.seconds, _StepTimeUp):
            yield

    def failure(self, error: BaseException) -> dict[str, Any]:
        """What went wrong, at which step, where in the resfam sources, and whether a limit was the cause."""
        cause = "time" if isinstance(error, _StepTimeUp) else "memory" if _out_of_memory(error) else "error"
        failure = {"error": describe_error(error, self.relative), "step": self.current_step, "cause": cause,
                   "where": _where(error, self.relative)}
        with contextlib.suppress(MemoryError):  # near the memory limit, the traceback is a luxury
            traceback.print_exception(error)
        return failure

    def installed_versions(self) -> dict[str, str]:
        return self.cache_module.installed_versions(self.zoo_package)

    def provenance(self) -> dict[str, Any]:
        """What a result was computed with, read after computing it: the versions and the hashes of
        the measurement code (the parent caches nothing that changed while it was computed)."""
        tree = self.cache_module.SourceTree(self.package_dir)
        return {"versions": self.installed_versions(),
                "code": {name: tree.digest(name) for name in self.cache_module.MEASUREMENT_CODE}}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") == "registry":
            hashes = self.cache_module.SourceTree(self.zoo_dir, self.package_dir).snapshot()
            return {"op": "registry", "models": self.registry_facts(), "architecture_tags": self.architecture_tags,
                    "renamed": self.fact(self.zoo, "renamed_models") or {}, "hashes": hashes,
                    "every_model_needs_a_card": getattr(self.zoo, "every_model_needs_a_card", False) is True,
                    **self.provenance()}
        if request.get("op") == "measure":
            reply = self.measure(request["model"], request.get("kwargs") or {}, list(request["image_sizes"]))
            return dict(reply, **self.provenance())
        if request.get("op") == "run":
            return dict(self.run_code(request["model"], list(request["blocks"])), **self.provenance())
        return {"op": "failed", "model": request.get("model"), "error": f"unknown request {request.get('op')!r}"}

    def run_code(self, page: str, blocks: list[str]) -> dict[str, Any]:
        """Run a page's code blocks as a reader would (`cards/runner.py`); the parent retires this worker
        afterwards, since the code may have changed anything in it."""
        from resfam.cards import runner

        def describe(error: BaseException) -> dict[str, Any]:
            if isinstance(error, _StepTimeUp):
                return {"cause": "time", "error": f"{self.current_step} took more than {self.seconds:g} s, the "
                                                  "time limit per step (set with --time-limit or the plugin's "
                                                  "time_limit)"}
            if _out_of_memory(error):
                return {"cause": "memory", "error": f"{describe_error(error, self.relative)}: over the memory "
                                                    "limit per worker (--memory-limit, the plugin's memory_limit)"}
            return {"cause": "error", "error": runner.describe_failure(error, _where(error, self.relative))}

        started = time.perf_counter()
        self.current_step = None
        try:
            outcomes, files = runner.serve_run(blocks, self.step, describe, self.zoo)
        except (Exception, _StepTimeUp) as error:  # noqa: BLE001 - setting up the run failed: the page's first block
            return {"op": "failed", "model": page, **self.failure(error)}
        used = {relative for relative in map(self.relative.of_file, files)
                if relative is not None and not relative.startswith(self.cache_module.CARDS_FOLDER)}
        tree = self.cache_module.SourceTree(self.zoo_dir, self.package_dir)  # the zoo's files, as the parent's
        return {"op": "ran", "model": page, "blocks": outcomes,
                "sources": {f: tree.digest(f) for f in sorted(self.imports.closure(used))},
                "seconds": time.perf_counter() - started}

    def registry_facts(self) -> dict[str, Any]:
        """Per model ID what the zoo says of it (None for a fact it does not give); asked of one worker."""
        return {name: self.model_facts(name) for name in sorted(self.model_ids)}

    def registration_sites(self) -> dict[str, tuple[str | None, int]]:
        """{model ID: (file relative to the zoo's folder, line)} of the statement that defines each model,
        where the zoo says (cards/dependencies.py tells a model's own registration from the others')."""
        sites = {name: self.fact(self.zoo, "defined_at", name) for name in self.model_ids}
        return {name: (self.relative.of_file(site[0]), site[1]) for name, site in sites.items() if site}

    def model_facts(self, name: str) -> dict[str, Any]:
        fact = self.fact
        site = fact(self.zoo, "defined_at", name)
        defined_in = self.relative.of_file(site[0]) if site else None
        defining = {file for file in map(self.relative.of_file, [*(fact(self.zoo, "source_files", name) or ()),
                                                                 defined_in and site[0]]) if file}
        if not defined_in:  # defined outside the zoo's own module code: it may depend on anything
            defining |= set(self.cache_module.SourceTree(self.zoo_dir, self.package_dir).model_sources())
        return {"family": fact(self.zoo, "family", name), "config": fact(self.zoo, "default_config", name),
                "sources": sorted(self.imports.closure(defining)), "defined_in": defined_in,
                "defined_at": site[1] if defined_in else None}

    def measure(self, model_id: str, kwargs: dict[str, Any], image_sizes: list[int]) -> dict[str, Any]:
        if model_id not in self.model_ids:
            return {"op": "failed", "model": model_id, "error": f"unknown model {model_id!r}"}
        started = time.perf_counter()
        self.current_step = None
        # for good: this is a forking worker's measuring child (a worker that cannot fork measures and runs
        # pages itself, and is retired after a page: a page may only find its traced graphs unlabelled)
        self.meta_kernels.stop_recording_source_locations()
        model = None
        used_modules: set[str] = set()
        recorder = self.dependencies.recorder()
        try:
            with _recording_imports(used_modules):
                with self.step("building"), recorder:
                    model = self.measure_module.build_for_counting(model_id, create=self.zoo.create_model, **kwargs)
                classes = {type(module) for module in model.modules()}
                used_modules.update(cls.__module__ for cls in classes)
                depth = functools.partial(self.fact, self.zoo, "nominal_depth")
                measurements = self.measure_module.measure_built_model(model_id, model, image_sizes, self.step, depth)
        except (Exception, _StepTimeUp) as error:  # noqa: BLE001 - a model that cannot be measured is a finding
            return {"op": "failed", "model": model_id, **self.failure(error)}
        finally:
            del model
            _settle()  # one model at a time in memory
        ran = self.dependencies.used_by(model_id, recorder, classes, self.model_file)
        defining = set(self.model_facts(model_id)["sources"]) | set(ran) | {
            f for f in self.relative.files_of_modules(used_modules) if not f.startswith(self.cache_module.CARDS_FOLDER)}
        tree = self.cache_module.SourceTree(self.zoo_dir, self.package_dir)
        sources = {f: tree.digest(f) for f in sorted(self.imports.closure(defining))}
        return {"op": "measured", "model": model_id,
                "measurements": [measurement.to_json() for measurement in measurements],
                "sources": sources, "dependencies": self.dependencies.record(model_id, sources, ran),
                "seconds": time.perf_counter() - started}

    def model_file(self, filename: str | None) -> str | None:
        """A file of the zoo (a resfam source outside the card engine), relative to the package, or None."""
        relative = self.relative.of_file(filename)
        return None if relative is None or relative.startswith(self.cache_module.CARDS_FOLDER) else relative


# ---------------------------------------------------------------------------------------------
# The work in child processes: the worker imports once and computes nothing


_IN_CHILDREN = ("measure", "run")  # the requests that run torch; the registry is answered by the worker itself


class _Children:
    """Where a forking worker's computing happens (`os.fork`, Unix): the worker has imported torch, the zoo
    and the engine but run no computation (torch's threads are not started, nothing is left of a
    model), and answers each request that computes in a child, a copy of itself made in milliseconds:

    - measuring: one child, forked at the first `measure` request, measures every model after it (its
      caches and collected garbage carry over from model to model, as in a worker that measures itself);
    - a page's code (`run`): a fresh child per page, which exits after it, so each page starts from a
      process that ran nothing, as a reader's script does, without paying Python's, torch's and the zoo's
      imports again (about 2 s per page for resfam, 11 s for timm: docs/performance.md).

    A child writes its steps, where it is and its answer to the worker's protocol itself, and a byte on
    its `done` pipe after each answer. One that dies without answering takes the worker down the same
    way (killed by the same signal, or with its exit code), so the parent reports it as the death of a
    worker, as it did before children. The parent starts each worker in a process group of its own and
    kills the group."""

    def __init__(self, server: _Server):
        self.server = server
        self.measurer: tuple[int, Any, int] | None = None  # (pid, its requests' pipe, its done pipe)
        self.ready_for_pages = False

    def answer(self, request: dict[str, Any]) -> None:
        if request["op"] == "run":
            if not self.ready_for_pages:  # once, for every page this worker runs
                _import_for_pages()
                self.ready_for_pages = True
            done, pid = self.fork(lambda done: self.serve([json.dumps(request)], done))
            self.wait_done(pid, done)
            os.close(done)
            os.waitpid(pid, 0)
            return
        if self.measurer is None:
            requests_in, requests_out = os.pipe()

            def measurer(done: int) -> None:
                os.close(requests_out)
                self.serve(os.fdopen(requests_in, encoding="utf-8"), done)

            done, pid = self.fork(measurer)
            os.close(requests_in)
            self.measurer = (pid, os.fdopen(requests_out, "w", encoding="utf-8", buffering=1), done)
        pid, requests, done = self.measurer
        try:
            requests.write(json.dumps(request) + "\n")
        except OSError:  # it has died: wait_done says how
            pass
        self.wait_done(pid, done)

    def fork(self, serve: Any) -> tuple[int, int]:
        """(the read end of the child's done pipe, its pid); the child runs `serve(done write end)`."""
        done_in, done_out = os.pipe()
        with self.server.sending:  # no thread of the worker is halfway through writing when it is copied
            pid = os.fork()
        if pid == 0:
            os.close(done_in)
            if self.measurer is not None:  # a page's child keeps nothing of the measuring child
                os.close(self.measurer[2])
                self.measurer[1].close()
            serve(done_out)
        os.close(done_out)
        return done_in, pid

    def serve(self, requests: Iterable[str], done: int) -> None:
        """The child's life: answer `requests`, then exit without running the worker's exit handlers."""
        server = self.server
        code = 0
        try:
            # the worker's requests are not the child's to read (a page's code may read stdin)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the child's stdin, for good
            threading.Thread(target=server.report_where, daemon=True).start()
            for line in requests:
                if line.strip():
                    server.send(server.handle(json.loads(line)))
                    os.write(done, b".")
        except BaseException:  # noqa: BLE001 - the worker reports the child's death
            traceback.print_exc()
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr, server.protocol):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def wait_done(self, pid: int, done: int) -> None:
        """Wait until the child has answered; when it dies first, die the same way."""
        if os.read(done, 1):
            return
        _, status = os.waitpid(pid, 0)
        if self.measurer is not None and self.measurer[0] == pid:  # reaped: nothing of it to kill
            self.measurer[1].close()
            os.close(self.measurer[2])
            self.measurer = None
        self.close(kill=True)
        with contextlib.suppress(Exception):
            self.server.protocol.flush()
        if os.WIFSIGNALED(status):
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
            os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) and os.WEXITSTATUS(status) else 1)

    def close(self, kill: bool = False) -> None:
        """End the measuring child: at the end of the requests, or (`kill`) at once."""
        if self.measurer is None:
            return
        pid, requests, done = self.measurer
        self.measurer = None
        if kill:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            requests.close()
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        os.close(done)


def _import_for_pages() -> None:
    """Import in the forking worker what each page's child would otherwise import anew: the runner,
    `torch._dynamo`, which torch's optimizers import when first used (with sympy: about 1.5 s a page for
    resfam's fine-tuning snippet; docs/performance.md), and Pillow's Image, which makes the sample photo.
    Importing runs no computation."""
    from resfam.cards import runner  # noqa: F401

    with contextlib.suppress(ImportError):  # a torch without it: nothing imports it
        import torch._dynamo  # noqa: F401
    with contextlib.suppress(ImportError):  # without Pillow, the page's run says so
        import PIL.Image  # noqa: F401
    _settle()


def registered_config(config: Any) -> dict[str, Any]:
    """A model's registered default config (`resfam.config.ModelConfig`) as the registry facts carry
    it: plain JSON, with the image size."""
    facts = {key: list(value) if isinstance(value, tuple) else value for key, value in vars(config).items()}
    facts["image_size"] = config.input_size[-1]
    return facts


def _settle() -> None:
    """Collect the garbage, then freeze what is left (`gc.freeze`): torch, fvcore, the zoo and the
    trace's kernels live as long as the worker, which lives for one verification. Frozen, they are
    out of the collector's sight, so the collection after each model and the automatic ones while a
    model is traced scan only what measuring made. Without it, the collector scanned torch's objects
    over and over: a quarter of a cold verification's time (docs/performance.md)."""
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------------------------------------
# Where a model is defined


class _RelativePaths:
    """File names and module names as '/'-separated paths relative to the zoo's package (None outside it)."""

    def __init__(self, package_dir: Path, package: str = "resfam"):
        self.package_dir = os.path.realpath(package_dir)
        self.package = package  # its import name: a place in it is shown as "<package>/<path>:<line>"
        self._known: dict[str, str | None] = {}

    def of_file(self, filename: str | None) -> str | None:
        if not filename:
            return None
        if filename not in self._known:
            real = os.path.realpath(filename)
            inside = os.path.commonpath([real, self.package_dir]) == self.package_dir
            self._known[filename] = Path(os.path.relpath(real, self.package_dir)).as_posix() if inside else None
        return self._known[filename]

    def files_of_modules(self, module_names: Iterable[str]) -> set[str]:
        files = set()
        for name in module_names:
            module = sys.modules.get(name)
            relative = self.of_file(getattr(module, "__file__", None))
            if relative is not None:
                files.add(relative)
        return files


@contextlib.contextmanager
def _recording_imports(found: set[str]) -> Iterator[None]:
    """Add to `found` every module imported while the block runs, by an import statement (also one
    of a module loaded long ago, as in a function that imports lazily) or loaded for the first time."""
    loaded_before = set(sys.modules)
    original = builtins.__import__

    def recording(name, globals=None, locals=None, fromlist=(), level=0):
        module = original(name, globals, locals, fromlist, level)
        try:
            absolute = importlib.util.resolve_name("." * level + name, (globals or {}).get("__package__")) \
                if level else name
        except (ImportError, ValueError):
            return module
        found.add(absolute)
        found.update(f"{absolute}.{item}" for item in fromlist or () if f"{absolute}.{item}" in sys.modules)
        return module

    builtins.__import__ = recording
    try:
        yield
    finally:
        builtins.__import__ = original
        found.update(set(sys.modules) - loaded_before)


class _ImportGraph:
    """Which source files of the zoo's package one of them imports, read from its syntax tree."""

    def __init__(self, package_dir: Path, package: str = "resfam"):
        self.package_dir = package_dir
        self.package = package
        self._imports: dict[str, set[str]] = {}
        self._closures: dict[str, frozenset[str]] = {}

    def closure(self, files: Iterable[str]) -> set[str]:
        """The files and every file they import, transitively (each file's closure found once)."""
        return set().union(*(self.closure_of(file) for file in files))

    def closure_of(self, file: str) -> frozenset[str]:
        if file not in self._closures:
            done: set[str] = set()
            todo = [file]
            while todo:
                current = todo.pop()
                if current not in done:
                    done.add(current)
                    todo.extend(self.imports_of(current))
            self._closures[file] = frozenset(done)
        return self._closures[file]

    def imports_of(self, relative: str) -> set[str]:
        if relative not in self._imports:
            self._imports[relative] = self._read_imports(relative)
        return self._imports[relative]

    def _read_imports(self, relative: str) -> set[str]:
        try:
            tree = ast.parse((self.package_dir / relative).read_bytes(), relative)
        except (OSError, SyntaxError, ValueError):
            return set()
        parts = relative[: -len(".py")].split("/")
        package = [self.package, *parts[:-1]]
        found = set()
        for node in _module_level_imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.add(self._file_of(alias.name.split(".")))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
                    target = base + (node.module.split(".") if node.module else [])
                else:
                    target = (node.module or "").split(".")
                found.add(self._file_of(target))
                for alias in node.names:  # `from . import resnet` imports a module
                    found.add(self._file_of(target + [alias.name]))
        found.discard(None)
        return found

    def _file_of(self, module: list[str]) -> str | None:
        """The source file of the package's module `module` (as name parts), or None."""
        if not module or module[0] != self.package:
            return None
        path = "/".join(module[1:])
        for candidate in ((path + ".py") if path else None, f"{path}/__init__.py" if path else "__init__.py"):
            if candidate and (self.package_dir / candidate).is_file():
                return candidate
        return None


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements run when the module is imported: not those inside functions (a lazy
    import runs only when its function does, and is then seen by `_recording_imports`)."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        todo.extend(ast.iter_child_nodes(node))


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles from the source file every time: a `.pyc` is trusted by its source's mtime (to the
    second) and size, so an edit that keeps both would otherwise run the old code."""

    def get_code(self, fullname: str) -> types.CodeType:
        return self.source_to_code(self.get_data(self.path), self.path)


def _compile_fresh_from_source(package_dir: Path) -> None:
    """Import the resfam package (and nothing else) through `_FreshSourceLoader`."""
    root = os.path.realpath(package_dir.parent)
    package = os.path.realpath(package_dir)
    make_finder = importlib.machinery.FileFinder.path_hook(
        (_FreshSourceLoader, importlib.machinery.SOURCE_SUFFIXES))

    def fresh_finder(path: str):
        real = os.path.realpath(path or ".")
        if real != root and os.path.commonpath([real, package]) != package:
            raise ImportError("not a resfam folder")  # the next path hook handles it
        return make_finder(path)

    sys.path_hooks.insert(0, fresh_finder)
    sys.path_importer_cache.clear()


def describe_error(error: BaseException, relative: _RelativePaths) -> str:
    """One line: the error and where in the resfam sources it happened."""
    if isinstance(error, SyntaxError):
        where = relative.of_file(error.filename)
        location = f" ({relative.package}/{where}:{error.lineno})" if where else ""
        return f"{type(error).__name__}: {error.msg}{location}"
    where = _where(error, relative)
    location = f" ({where})" if where else ""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}{location}" if message else f"{type(error).__name__}{location}"


def _where(error: BaseException, relative: _RelativePaths) -> str | None:
    """The innermost line of the traceback in the resfam sources outside the card engine, as
    'resfam/models/resnet.py:120': where the model's code was when it failed."""
    location = None
    for frame, line in traceback.walk_tb(error.__traceback__):
        where = _model_code(frame, relative)
        if where is not None:
            location = f"{where}:{line}"
    return location


def _location(frame: types.FrameType, relative: _RelativePaths) -> str:
    """Where a running thread is, as 'resfam/models/resnet.py:120 in forward': the innermost frame
    (`frame`, then its callers) in the model's code, else the innermost frame."""
    innermost = caller = frame
    while caller is not None:
        where = _model_code(caller, relative)
        if where is not None:
            return f"{where}:{caller.f_lineno} in {caller.f_code.co_name}"
        caller = caller.f_back
    return f"{innermost.f_code.co_filename}:{innermost.f_lineno} in {innermost.f_code.co_name}"


def _model_code(frame: types.FrameType, relative: _RelativePaths) -> str | None:
    """'<package>/<file>' when `frame` runs a file of the zoo's package (outside resfam's card engine),
    else None."""
    where = relative.of_file(frame.f_code.co_filename)
    return f"{relative.package}/{where}" if where is not None and not where.startswith("cards/") else None


def _out_of_memory(error: BaseException) -> bool:
    """Python's MemoryError, or torch's allocator refusing (a RuntimeError) under the memory limit."""
    return isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


if __name__ == "__main__":
    sys.exit(main())
