"""What a measured model depends on, finer than a file: the top-level definitions of the resfam sources
whose code ran while it was built and measured, the rest of those files, and its own registration.

The worker records (`CodeRecorder`) every code object that runs while a model is built, and names each
by the top-level function or class of its file that holds it (`Bottleneck.__init__` and a function
nested in `register_resnet` belong to `Bottleneck` and `register_resnet`); it adds the classes of the
model's modules (their `forward` runs when the model is traced), and then, read from the source
(`References`), every definition those and the model's registration statement name, transitively: the
helpers its `forward` calls.
For every file the model depends on (those files and the resfam modules they import), the cache entry
keeps (`record`):

- `defs`: the hash of each of those top-level definitions;
- `context`: one hash of the file's other top-level statements (imports, constants, a loop that
  registers models), leaving out the bare calls that register models (`register_resnet(...)`, named in
  `registrations`) and the docstrings;
- `own`: in the file that registers the model, the hash of the statement that registers it;
- `file`: the file's own hash, when a piece of code that ran cannot be named by a top-level
  definition (it is then trusted only while the whole file is unchanged).

Hashes are of the syntax tree (`ast.dump`), so that a comment, a blank line or a moved definition
changes none. `unchanged` compares an entry's record with the file as it is now: adding a registration
line leaves the other models' entries valid; editing a block class re-measures the models built with
it; editing a helper they call re-measures them too; anything else in the file (an import, a constant)
re-measures every model of the file. How the cache uses it: docs/architecture.md.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
import sys
import types
from collections.abc import Iterable
from typing import Any

WHOLE_FILE = "file"


class FileUnits:
    """One source file cut into what a model can depend on, hashed. It keeps the hashes and the lines of
    the top-level statements, not their syntax tree (a zoo's files are kept, `file_units`)."""

    def __init__(self, text: str | bytes, registrations: Iterable[str] = ()):
        self.registrations = sorted(set(registrations))
        self.text = text
        tree = ast.parse(text)
        self.defs: dict[str, str] = {}
        self.statements: list[tuple[int, int, str]] = []  # (first line, last line, hash)
        context = hashlib.sha256()
        for node in tree.body:
            digest = _digest(node)
            self.statements.append((node.lineno, node.end_lineno or node.lineno, digest))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                # a name defined twice: the last one is what the module holds, and both are hashed
                self.defs[node.name] = _digest_text(self.defs.get(node.name, "") + digest)
            elif not _is_docstring(node) and self.registering_call(node) is None:
                context.update(digest.encode())
        self.context = context.hexdigest()

    def registering_call(self, node: ast.stmt) -> str | None:
        """The name of the function a bare call statement calls, if it is one that registers models."""
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            name = ast.unparse(node.value.func)
            return name if name in self.registrations else None
        return None

    def statement_at(self, line: int) -> tuple[ast.stmt, str] | None:
        """The top-level statement that spans `line` (parsed again), with its hash."""
        for position, (first, last, digest) in enumerate(self.statements):
            if first <= line <= last:
                return ast.parse(self.text).body[position], digest
        return None

    def digest_at(self, line: int) -> str | None:
        """The hash of the top-level statement that spans `line`."""
        return next((digest for first, last, digest in self.statements if first <= line <= last), None)

    def has_statement(self, digest: str) -> bool:
        return any(found == digest for _, _, found in self.statements)


# The cache holds a whole zoo: a timm model depends on about 210 of timm's 304 files, and with room for
# only 64 every model parsed them all again (5 s a model, against 0.25 s measuring it; docs/performance.md).
@functools.lru_cache(maxsize=1024)
def file_units(text: str | bytes, registrations: tuple[str, ...] = ()) -> FileUnits:
    """`FileUnits` of a source text, parsed once for all the models of a file (a parse of resnet.py took
    11.5 ms on the 2-core machine of docs/performance.md, 2026-12-03)."""
    return FileUnits(text, registrations)


def registration_calls(text: str | bytes, lines: Iterable[int]) -> set[str]:
    """The functions called by the top-level bare calls at `lines` (where models are registered)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    lines = set(lines)
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and any(node.lineno <= line <= (node.end_lineno or node.lineno) for line in lines):
            found.add(ast.unparse(node.value.func))
    return found


def record(text: str | bytes, file_digest: str | None, names: Iterable[str], registrations: Iterable[str],
           registered_at: int | None = None) -> dict[str, Any]:
    """What a model depends on in one file (its source `text`): the top-level definitions `names`, the
    file's context and, when `registered_at` is given, the statement at that line that registers it."""
    try:
        units = file_units(text, tuple(sorted(set(registrations))))
    except (SyntaxError, ValueError):
        return {WHOLE_FILE: file_digest}
    found: dict[str, Any] = {"registrations": units.registrations, "context": units.context, "defs": {}}
    for name in sorted(set(names)):
        if name in units.defs:
            found["defs"][name] = units.defs[name]
        else:  # code that no top-level definition holds: the whole file
            found[WHOLE_FILE] = file_digest
    if registered_at is not None:
        own = units.digest_at(registered_at)
        if own is None:
            found[WHOLE_FILE] = file_digest
        else:
            found["own"] = own
    return found


def unchanged(recorded: Any, text: str | bytes, file_digest: str | None) -> bool:
    """Whether the file, as `text` now, still holds everything `recorded` says the model depends on."""
    if not isinstance(recorded, dict):
        return False
    if WHOLE_FILE in recorded:
        return file_digest is not None and recorded[WHOLE_FILE] == file_digest
    registrations, defs = recorded.get("registrations"), recorded.get("defs")
    if not isinstance(registrations, list) or not isinstance(defs, dict) or "context" not in recorded:
        return False
    try:
        units = file_units(text, tuple(sorted(set(map(str, registrations)))))
    except (SyntaxError, ValueError):
        return False
    if units.context != recorded["context"] or any(units.defs.get(name) != digest for name, digest in defs.items()):
        return False
    return "own" not in recorded or units.has_statement(recorded["own"])


class CodeRecorder:
    """Records every Python function, method and class body that runs inside the block (a trace function
    that watches calls only: no line events), to be named by `top_level_names` afterwards. Used while a
    model is built, not while it is traced (see `References`)."""

    def __init__(self) -> None:
        self.codes: set[types.CodeType] = set()

    def __enter__(self) -> CodeRecorder:
        codes = self.codes

        def on_call(frame: types.FrameType, event: str, arg: Any) -> None:
            codes.add(frame.f_code)  # returns None: the frame's lines are not traced

        self._previous = sys.gettrace()
        sys.settrace(on_call)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        sys.settrace(self._previous)

    def top_level_names(self, relative_path) -> dict[str, set[str]]:
        """{file: names of its top-level definitions that ran}, for the files `relative_path` maps into
        the package (it returns None for the others)."""
        found: dict[str, set[str]] = {}
        for code in self.codes:
            file = relative_path(code.co_filename)
            if file is not None:
                found.setdefault(file, set()).add(code.co_qualname.split(".")[0])
        return found


class References:
    """The top-level definitions a piece of resfam code names, read from the source: a function or class
    of the same file, or one imported from another resfam module (`from .layers import make_divisible`,
    `layers.make_divisible`). `file_of(["resfam", "models", "layers"])` gives a module's file, or None
    outside the package. Followed transitively, they stand for the code that runs after the model is
    built (its `forward` and what it calls), which is not watched as it runs: a trace function slows
    every Python call of torch's tracing too."""

    def __init__(self, package_dir: str | os.PathLike[str], file_of):
        self.package_dir = package_dir
        self.file_of = file_of
        self._files: dict[str, tuple[dict[str, ast.stmt], dict[str, tuple[str, str | None]]] | None] = {}

    def closure(self, units: dict[str, set[str]],
                statements: Iterable[tuple[str, ast.AST]] = ()) -> dict[str, set[str]]:
        """`units` ({file: top-level names}) and every definition they name, and those name, and so on;
        `statements`: more (file, syntax node) pairs whose names count (a model's registration)."""
        todo = [(file, name) for file, names in units.items() for name in names]
        for file, node in statements:
            todo += self._named_in(file, node)
        found: dict[str, set[str]] = {}
        while todo:
            file, name = todo.pop()
            if name in found.get(file, ()):
                continue
            parsed = self._parsed(file)
            if parsed is None:
                continue
            definitions, imported = parsed
            if name in definitions:
                found.setdefault(file, set()).add(name)
                todo += self._named_in(file, definitions[name])
            elif name in imported and imported[name][1] is not None:  # a name imported from elsewhere
                todo.append(imported[name])  # type: ignore[arg-type]
        for file, names in units.items():  # what ran stays recorded, whether or not it is a definition
            found.setdefault(file, set()).update(names)
        return found

    def _named_in(self, file: str, node: ast.AST) -> list[tuple[str, str]]:
        parsed = self._parsed(file)
        if parsed is None:
            return []
        definitions, imported = parsed
        named = []
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name):
                if inner.id in definitions:
                    named.append((file, inner.id))
                elif inner.id in imported and imported[inner.id][1] is not None:
                    named.append(imported[inner.id])  # type: ignore[arg-type]
            elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
                module = imported.get(inner.value.id)
                if module is not None and module[1] is None:  # an imported resfam module
                    named.append((module[0], inner.attr))
        return named

    def _parsed(self, file: str):
        """(top-level definitions by name, imported names: alias -> (file, name), or (file, None) for a
        module), or None when the file cannot be read."""
        if file not in self._files:
            text = read_source(os.path.join(self.package_dir, file))
            try:
                tree = ast.parse(text) if text is not None else None
            except (SyntaxError, ValueError):
                tree = None
            self._files[file] = None if tree is None else (
                {node.name: node for node in tree.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))},
                self._imports(file, tree))
        return self._files[file]

    def _imports(self, file: str, tree: ast.Module) -> dict[str, tuple[str, str | None]]:
        package = ["resfam", *file[: -len(".py")].split("/")[:-1]]
        found: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = base + (node.module.split(".") if node.module else [])
                for alias in node.names:
                    as_module = self.file_of(module + [alias.name])
                    target = (as_module, None) if as_module else (self.file_of(module), alias.name)
                    if target[0] is not None:
                        found[alias.asname or alias.name] = target  # type: ignore[assignment]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    as_module = self.file_of(alias.name.split("."))
                    if as_module is not None and alias.asname:
                        found[alias.asname] = (as_module, None)
        return found


def class_names(classes: Iterable[type], relative_path) -> dict[str, set[str]]:
    """{file: top-level class names} of the classes and their bases defined in the package."""
    found: dict[str, set[str]] = {}
    for cls in classes:
        for base in cls.__mro__:
            module = sys.modules.get(base.__module__)
            file = relative_path(getattr(module, "__file__", None))
            if file is not None:
                found.setdefault(file, set()).add(base.__qualname__.split(".")[0])
    return found


def _digest(node: ast.AST) -> str:
    return _digest_text(ast.dump(node))


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def read_source(path: str | os.PathLike[str]) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


class ZooDependencies:
    """The worker's side: what each model it measures depends on, per file of its sources.

    `registrations`: {model ID: (file, line)} of the statement that registers it. `file_of` maps a module
    name (as parts) to its file in the package (`References`).

        recorder = zoo.recorder()
        with recorder:
            model = build(...)
        used = zoo.used_by(model_id, recorder, {type(m) for m in model.modules()}, relative_path)
        entry = zoo.record(model_id, {file: sha256 of each source file of the model}, used)
    """

    def __init__(self, package_dir: str | os.PathLike[str], file_of,
                 registrations: dict[str, tuple[str | None, int | None]]):
        self.package_dir = package_dir
        self.references = References(package_dir, file_of)
        self.registrations = registrations
        self._calls: dict[str, set[str]] | None = None

    def recorder(self) -> CodeRecorder:
        return CodeRecorder()

    def used_by(self, model_id: str, recorder: CodeRecorder, classes: Iterable[type],
                relative_path) -> dict[str, set[str]]:
        """{file: top-level definitions} the model depends on: what ran while it was built, the classes
        of its modules, and what those and its registration name, transitively."""
        ran: dict[str, set[str]] = {}
        for found in (recorder.top_level_names(relative_path), class_names(classes, relative_path)):
            for file, names in found.items():
                ran.setdefault(file, set()).update(names)
        return self.references.closure(ran, self._registration_statement(model_id))

    def record(self, model_id: str, sources: dict[str, str | None], used: dict[str, set[str]]) -> dict[str, Any]:
        """Per source file of the model, what of it the model depends on (`record` of each file)."""
        file, line = self.registrations.get(model_id, (None, None))
        found = {}
        for source, digest in sources.items():
            text = read_source(os.path.join(self.package_dir, source))
            found[source] = {WHOLE_FILE: digest} if text is None else record(
                text, digest, used.get(source, ()), self._registration_calls().get(source, ()),
                line if source == file else None)
        return found

    def _registration_statement(self, model_id: str) -> list[tuple[str, ast.AST]]:
        file, line = self.registrations.get(model_id, (None, None))
        text = read_source(os.path.join(self.package_dir, file)) if file and line else None
        try:
            found = file_units(text).statement_at(line) if text is not None and line else None
        except (SyntaxError, ValueError):
            found = None
        return [(file, found[0])] if file and found else []

    def _registration_calls(self) -> dict[str, set[str]]:
        """{file: the functions its top-level statements call to register models}, read once."""
        if self._calls is None:
            lines: dict[str, set[int]] = {}
            for file, line in self.registrations.values():
                if file is not None and line is not None:
                    lines.setdefault(file, set()).add(line)
            self._calls = {file: registration_calls(read_source(os.path.join(self.package_dir, file)) or b"",
                                                    file_lines)
                           for file, file_lines in lines.items()}
        return self._calls

