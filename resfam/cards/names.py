"""Names on a card page that point into the zoo: each must exist where the page says it is.

- A model ID a code block passes to the zoo's API (the first argument of `create_model`,
  `get_model_entry`, `get_model_config`: `ID_FUNCTIONS`) is registered.
- A model ID the prose writes in inline code is registered. What counts as a model ID
  (`looks_like_model_id`; the rule is written down in docs/measurement.md): one lowercase word of
  letters, digits and underscores with at least one digit, that either begins like a registered ID
  (its letters before the first digit are those of a registered ID: `resnet`, `res`, `tv_resnext`, ...)
  or is within a few letters of one. So `resnet50_gn` (retired) and `resnext50_32x4` (misspelt) are
  model IDs, and `torch.hub`, `num_classes`, `image.jpg`, `3x3` or `layer4` are not.
- A path the prose writes in inline code that starts with the package's folder (`resfam/models/resnest.py`)
  exists; a dotted name that starts with the package (`resfam.create_model`, `resfam.hub.cached_path`) is
  defined there; a CamelCase name (`SplitAttention`) is a class some module of the zoo defines.

Each unknown name is an error at its template line, naming the closest registered IDs or defined names.
Everything here is read from the sources (nothing is imported), so a warm build checks it too.
"""
from __future__ import annotations

import ast
import difflib
import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .card_file import LINE_BREAK
from .claims import Card
from .fields import IDENTITY
from .findings import Finding
from .runner import CodeBlock

_INLINE_CODE = re.compile(r"(?<!`)(?P<ticks>`+)(?!`)(?P<code>.+?)(?<!`)(?P=ticks)(?!`)")
# not prose: fenced code, HTML comments (the model-index), Jinja (a name cited through a variable)
_NOT_PROSE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,}).*?(?:^[ \t]*(?P=fence)[ \t]*$|\Z)|<!--.*?(?:-->|\Z)"
                        r"|\{#.*?#\}|\{%.*?%\}", re.DOTALL | re.MULTILINE)
_ID_SHAPE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_CAMEL = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+")
_DOTTED = re.compile(r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?")
_PATH = re.compile(r"(?P<path>[\w.-]+(?:/[\w.-]+)+)(?:#L(?P<line>\d+))?")
ID_FUNCTIONS = ("create_model", "get_model_entry", "get_model_config")  # the zoo API that takes a model ID first
_CLOSE = 0.8  # difflib ratio: a word this close to a registered ID is a model ID (a misspelt one)
_REGISTRY_HINT = "the registered models are listed by: python -m resfam"


def _stem(model_id: str) -> str:
    """The letters of an ID before its first digit: 'resnet' of resnet50, 'tv_resnext' of tv_resnext50_32x4d."""
    match = re.match(r"[^0-9]*", model_id)
    return match.group() if match else model_id


def looks_like_model_id(word: str, registered: Iterable[str]) -> bool:
    """Whether inline code `word` names a model (registered or not), by the rule of the module docstring."""
    registered = list(registered)
    if word in registered:
        return True
    if not _ID_SHAPE.fullmatch(word) or not any(char.isdigit() for char in word):
        return False
    return _stem(word) in {_stem(model_id) for model_id in registered} \
        or bool(difflib.get_close_matches(word, registered, n=1, cutoff=_CLOSE))


def unknown_model(path: str, line: int | None, model_id: str, registered: Sequence[str], where: str) -> Finding:
    closest = difflib.get_close_matches(model_id, list(registered), n=3, cutoff=0.5)
    hint = (f"did you mean {', '.join(closest)}? " if closest else "") + _REGISTRY_HINT
    return Finding("error", path, line, f"{where} names the model {model_id!r}, which is not registered", hint=hint,
                   field=IDENTITY.name, claimed=model_id)


def check_code_names(blocks: Sequence[CodeBlock], registered: Sequence[str]) -> list[Finding]:
    """An error for every model ID a code block passes to the zoo's API that is not registered."""
    known = set(registered)
    findings = []
    for block in blocks:
        try:
            tree = ast.parse(block.code)
        except SyntaxError:
            continue  # running it says so (or it is marked not to run: partial code)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if function not in ID_FUNCTIONS:
                continue
            arguments = node.args[:1] + [keyword.value for keyword in node.keywords if keyword.arg == "model_name"]
            for argument in arguments:
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str) \
                        and argument.value not in known:
                    findings.append(unknown_model(block.path, block.template_line(argument.lineno), argument.value,
                                                  registered, f"the code block starting {block.first_line!r}"))
    return findings


def check_prose_names(card: Card, registered: Sequence[str], package_dir: str | os.PathLike[str]) -> list[Finding]:
    """An error for every model ID, zoo path or zoo name in the card's inline code that does not exist."""
    text = card.text
    prose = _NOT_PROSE.sub(lambda match: re.sub(r"[^\r\n\x85\u2028\u2029]", " ", match.group()), text)
    package = Path(package_dir)
    findings = []
    for match in _INLINE_CODE.finditer(prose):
        code = match.group("code").strip()
        if "{{" in code or "}}" in code:
            continue
        line = len(LINE_BREAK.findall(text, 0, match.start())) + 1
        problem = _problem(code, registered, package)
        if problem is not None:
            message, hint = problem
            findings.append(Finding("error", card.path, line, message, hint=hint))
    return findings


def _problem(code: str, registered: Sequence[str], package: Path) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for one inline code span, or None when it is fine or not a zoo name."""
    if looks_like_model_id(code, registered):
        if code in registered:
            return None
        finding = unknown_model("", None, code, registered, "the prose")
        return finding.message, finding.hint
    path = _PATH.fullmatch(code)
    if path and path.group("path").split("/")[0] == package.name:
        file = package.parent / path.group("path")
        if not file.exists():
            return (f"the prose names the file {path.group('path')!r}, which does not exist",
                    f"check the path (relative to the folder holding {package.name}/)")
        if path.group("line") and file.is_file():
            count = len(file.read_text(encoding="utf-8", errors="replace").splitlines())
            if int(path.group("line")) > count:
                return (f"the prose names line {path.group('line')} of {path.group('path')}, which has {count} lines",
                        "check the line")
        return None
    dotted = _DOTTED.fullmatch(code)
    if dotted and dotted.group("name").split(".")[0] == package.name:
        return _dotted_problem(dotted.group("name"), package)
    if _CAMEL.fullmatch(code):
        classes = _zoo_classes(str(package))
        if code not in classes:
            close = difflib.get_close_matches(code, sorted(classes), n=3, cutoff=0.6)
            return (f"the prose names the class {code!r}, which no module of {package.name} defines",
                    (f"did you mean {', '.join(close)}? " if close else "")
                    + "a bare CamelCase name in inline code is read as a class of the zoo; write another "
                      "library's class with its module (nn.Conv2d)")
    return None


def _dotted_problem(name: str, package: Path) -> tuple[str, str] | None:
    """`resfam.a.b.c`: the longest prefix that is a module of the package, then each name defined in it."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        module = _module_file(package, parts[1:split])
        if module is not None:
            break
    else:
        return None
    rest = parts[split:]
    if not rest:
        return None
    defined = _defined_names(str(module))
    if rest[0] in defined:
        return None
    close = difflib.get_close_matches(rest[0], sorted(defined), n=3, cutoff=0.6)
    where = ".".join(parts[:split])
    return (f"the prose names {name!r}, but {where} defines no {rest[0]!r}",
            (f"did you mean {', '.join(f'{where}.{c}' for c in close)}? " if close else "")
            + f"check the name in {module.relative_to(package.parent).as_posix()}")


def _module_file(package: Path, parts: list[str]) -> Path | None:
    base = package.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py") if parts else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _defined_names(module: str) -> frozenset[str]:
    return _names_of_version(module, _version(module))


def _version(*paths: str) -> tuple:
    """What a file's (or files') content is recognised by: size and modification time."""
    found = []
    for path in paths:
        try:
            status = os.stat(path)
            found.append((path, status.st_size, status.st_mtime_ns))
        except OSError:
            found.append((path, None, None))
    return tuple(found)


@functools.lru_cache(maxsize=64)
def _names_of_version(module: str, version: tuple) -> frozenset[str]:
    """The names a module defines at its top level: functions, classes, assignments, imports, and the
    strings its top-level code holds (a table of lazily loaded names, `__all__`)."""
    try:
        tree = ast.parse(Path(module).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        else:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
                elif isinstance(inner, ast.Constant) and isinstance(inner.value, str) and inner.value.isidentifier():
                    names.add(inner.value)
    return frozenset(names)


def _zoo_classes(package: str) -> frozenset[str]:
    """Every class the zoo's modules define (the card engine's own, in cards/, are not the zoo's)."""
    engine = os.path.join(package, "cards")
    files = [os.path.join(folder, name) for folder, subfolders, names in os.walk(package)
             for name in names if name.endswith(".py") and "__pycache__" not in folder
             and os.path.commonpath([folder, engine]) != engine]
    return _classes_of_version(_version(*sorted(files)))


_CLASS = re.compile(r"^[ \t]*class[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


@functools.lru_cache(maxsize=8)
def _classes_of_version(version: tuple) -> frozenset[str]:
    found: set[str] = set()
    for path, _, _ in version:
        try:
            found.update(_CLASS.findall(Path(path).read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return frozenset(found)
