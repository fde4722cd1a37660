"""The on-disk cache of measurements and registry facts, so an unchanged model is never measured twice.

An entry is found by its key and trusted only if the code behind it is unchanged:

- key: what the value is of (a model ID and its arguments and an image size, or the registry),
  the zoo SOURCE, the Python, torch, fvcore and resfam versions and that of the zoo's package (read
  from the installed metadata, nothing is imported: upgrading timm re-measures) and the hash of the
  measurement code (`MEASUREMENT_CODE`: `cards/measure.py`, `cards/meta_kernels.py`, the worker
  process's own code `cards/worker.py` and `cards/dependencies.py`, `cards/architecture.py` and
  `cards/zoos.py`). The parent's side of the worker pool (`cards/pool.py`) and the limits that bound the
  work (`cards/limits.py`) change no figure, so editing them keeps every entry;
- a code run's key (`cards/runner.py`) is the block's text, the page's earlier blocks, the versions
  and the hash of the runner's code; its sources are the files whose code ran;
- sources: the content hash of every resfam source file the value depends on, as recorded by the
  worker that computed it. A measurement depends on the files that define its model (the module that
  registers it, the modules its builder and its layers come from, and every resfam module those import,
  transitively); the registry facts depend on every resfam source file outside `cards/`, and on the
  list of those files itself, so an added, removed or renamed file counts as a change.

An entry is valid while every recorded hash equals the file's hash now, or, for a measurement, while
each changed file still holds what the model depends on in it (`dependencies`, recorded by the worker:
the top-level functions and classes whose code ran to build and trace it, its own registration and the
rest of the file): editing `resnest.py` leaves the ResNet entries valid, a new registration line in
`resnet.py` leaves every other model's entry valid, editing `BasicBlock` invalidates the models built
with it, and editing anything `resnet.py` holds outside its definitions every model that imports it. Entries
are written atomically (a temporary file, then one rename); an unreadable, truncated or foreign entry
is a miss, never an error. `cache_dir=None` turns the cache off.

`SourceTree` hashes the source files of one resfam package folder once per run; the tests point it
(and the worker) at a copy of the package to edit model files safely.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

from . import dependencies

CACHE_FORMAT = 1
CACHE_DIR_NAME = ".resfam-cache"
# the code that computes a figure, relative to the package
MEASUREMENT_CODE = ("cards/measure.py", "cards/meta_kernels.py", "cards/worker.py", "cards/architecture.py",
                    "cards/dependencies.py", "cards/zoos.py")
CARDS_FOLDER = "cards/"  # the card engine itself: not part of any model's definition
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the resfam package this module belongs to


def default_cache_dir(templates_dir: str | os.PathLike[str]) -> Path:
    """`.resfam-cache/` in the project: the folder that holds the templates folder."""
    return Path(os.path.abspath(templates_dir)).parent / CACHE_DIR_NAME


def cache_subfolder(cache_dir: str | os.PathLike[str], name: str) -> Path | None:
    """`cache_dir/name`, made if need be, with the cache folder kept out of git; None if it cannot be
    made (a cache that cannot be written is only a slower next run)."""
    folder = Path(cache_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    _ignore_in_git(Path(cache_dir))
    return folder


# ---------------------------------------------------------------------------------------------
# Source files and their hashes


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """sha256 of the file's bytes, or None when it cannot be read (removed, renamed)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def list_source_files(package_dir: Path) -> list[str]:
    """Every Python source file of the package, as sorted '/'-separated paths relative to it."""
    found = []
    for folder, subfolders, files in os.walk(package_dir):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__" and not d.startswith("."))
        relative = Path(folder).relative_to(package_dir)
        found += [(relative / name).as_posix() for name in files if name.endswith(".py")]
    return sorted(found)


class SourceTree:
    """The source files of one zoo's package folder and their content hashes, each read once; the
    measurement code is that of the resfam package `engine_dir` (default: the same folder).

    `snapshot()` reads them all at once: the verifier takes it before starting a worker, so a file that
    changes while models are measured can be recognised (the worker reports the hashes it saw).
    """

    def __init__(self, package_dir: str | os.PathLike[str] = PACKAGE_DIR,
                 engine_dir: str | os.PathLike[str] | None = None):
        self.package_dir = Path(package_dir).resolve()
        self._hashes: dict[str, str | None] = {}
        self._files: list[str] | None = None
        self._holds: dict[tuple[str, str], bool] = {}
        engine = Path(engine_dir).resolve() if engine_dir is not None else self.package_dir
        self.engine = self if engine == self.package_dir else SourceTree(engine)

    def files(self) -> list[str]:
        if self._files is None:
            self._files = list_source_files(self.package_dir)
        return self._files

    def digest(self, relative: str) -> str | None:
        if relative not in self._hashes:
            self._hashes[relative] = file_digest(self.package_dir / relative)
        return self._hashes[relative]

    def snapshot(self) -> dict[str, str | None]:
        return {relative: self.digest(relative) for relative in self.files()}

    def model_sources(self) -> dict[str, str | None]:
        """Hashes of every source file outside the card engine: what the registry facts depend on."""
        return {relative: self.digest(relative) for relative in self.files()
                if self.engine is not self or not relative.startswith(CARDS_FOLDER)}

    def code_digests(self) -> dict[str, str | None]:
        """The hash of each file of the measurement code."""
        return {relative: self.engine.digest(relative) for relative in MEASUREMENT_CODE}

    def code_hash(self) -> str:
        """One hash of the measurement code: a change to how things are measured changes every key."""
        combined = hashlib.sha256()
        for relative, digest in self.code_digests().items():
            combined.update(f"{relative}\0{digest}\0".encode())
        return combined.hexdigest()

    def matches(self, recorded: dict[str, str | None]) -> bool:
        """Whether every recorded file still has its recorded hash (a missing file never matches)."""
        return all(digest is not None and self.digest(relative) == digest for relative, digest in recorded.items())

    def still_holds(self, recorded: dict[str, str | None], depends_on: dict[str, Any]) -> bool:
        """Whether every recorded file is unchanged, or changed only where the model does not depend on
        it (`dependencies.unchanged`: another model's registration, a block class it is not built with)."""
        for relative, digest in recorded.items():
            now = self.digest(relative)
            if now is None or digest is None:
                return False
            if now != digest and not self.file_holds(relative, depends_on.get(relative)):
                return False
        return True

    def file_holds(self, relative: str, depends_on: Any) -> bool:
        key = (relative, json.dumps(depends_on, sort_keys=True))
        if key not in self._holds:
            text = dependencies.read_source(self.package_dir / relative)
            self._holds[key] = text is not None and dependencies.unchanged(depends_on, text, self.digest(relative))
        return self._holds[key]


def installed_versions(zoo_package: str = "resfam") -> dict[str, str]:
    """The versions a measurement depends on, from the installed package metadata (no import): those
    of the engine and of the zoo's package; the card pages say which versions measured them."""
    versions = {"python": platform.python_version()}
    for distribution in dict.fromkeys(("torch", "fvcore", "resfam", zoo_package)):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    return versions


# ---------------------------------------------------------------------------------------------
# The store


class MeasurementCache:
    """Registry facts and measurements on disk, in `directory` (None: the cache is off)."""

    def __init__(self, directory: str | os.PathLike[str] | None, sources: SourceTree,
                 versions: dict[str, str] | None = None, zoo: str = "resfam", zoo_package: str = "resfam"):
        self.directory = Path(directory) if directory is not None else None
        self.sources = sources
        self.versions = versions or installed_versions(zoo_package)
        self.zoo = zoo
        self.writes = 0

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    # -- keys ----------------------------------------------------------------------------------

    def registry_key(self) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, "kind": "registry", "versions": self.versions,
                "code": self.sources.code_hash(), "zoo": self.zoo}

    def measurement_key(self, model_id: str, kwargs: dict[str, Any], image_size: int) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, "kind": "measurement", "model": model_id, "kwargs": kwargs,
                "image_size": image_size, "versions": self.versions, "code": self.sources.code_hash(), "zoo": self.zoo}

    # -- registry facts --------------------------------------------------------------------------

    def get_registry(self) -> dict[str, Any] | None:
        entry = self._read(self.registry_key())
        # the list of files is part of what the facts depend on: an added or renamed file is a change
        if entry is None or entry["sources"] != self.sources.model_sources():
            return None
        return entry["value"]

    def put_registry(self, facts: dict[str, Any], sources: dict[str, str | None]) -> None:
        self._write(self.registry_key(), sources, facts)

    # -- measurements ----------------------------------------------------------------------------

    def get_measurement(self, model_id: str, kwargs: dict[str, Any], image_size: int) -> dict[str, Any] | None:
        entry = self._read(self.measurement_key(model_id, kwargs, image_size))
        if entry is None or not entry["sources"]:
            return None
        depends_on = entry.get("dependencies")
        if not self.sources.matches(entry["sources"]) and not (
                isinstance(depends_on, dict) and self.sources.still_holds(entry["sources"], depends_on)):
            return None
        return entry["value"]

    def put_measurement(self, model_id: str, kwargs: dict[str, Any], image_size: int, value: dict[str, Any],
                        sources: dict[str, str | None], depends_on: dict[str, Any] | None = None) -> None:
        """`depends_on`: per file, what of it the model depends on (`dependencies.record`); without it,
        the entry holds only while every file of `sources` is unchanged."""
        self._write(self.measurement_key(model_id, kwargs, image_size), sources, value, depends_on)

    # -- code runs (cards/runner.py) ------------------------------------------------------------

    def get_code_run(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """A block's cached run; `key`: its text, the page's earlier blocks, the versions, the runner's code."""
        entry = self._read({"format": CACHE_FORMAT, "kind": "code", **key})
        if entry is None or not entry["sources"] or not self.sources.matches(entry["sources"]):
            return None
        return entry["value"]

    def put_code_run(self, key: dict[str, Any], sources: dict[str, str | None], value: dict[str, Any]) -> None:
        self._write({"format": CACHE_FORMAT, "kind": "code", **key}, sources, value)

    def holds_no_measurement(self) -> bool:
        """Whether no measurement at all is stored (a first run; the cache off): every model is to measure."""
        if self.directory is None:
            return True
        try:
            with os.scandir(self.directory / f"v{CACHE_FORMAT}" / "measurement") as entries:
                return not any(entry.name.endswith(".json") for entry in entries)
        except OSError:
            return True

    # -- files -----------------------------------------------------------------------------------

    def _path(self, key: dict[str, Any]) -> Path:
        assert self.directory is not None
        digest = hashlib.sha256(_canonical(key).encode()).hexdigest()
        return self.directory / f"v{CACHE_FORMAT}" / key["kind"] / f"{digest}.json"

    def _read(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The entry stored under `key`, or None when there is none or it is not a whole, well-formed
        entry for exactly this key."""
        if self.directory is None:
            return None
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing, unreadable, truncated, not JSON, not UTF-8
            return None
        if not isinstance(entry, dict) or entry.get("key") != json.loads(_canonical(key)) \
                or not isinstance(entry.get("sources"), dict) or "value" not in entry:
            return None
        return entry

    def _write(self, key: dict[str, Any], sources: dict[str, str | None], value: Any,
               depends_on: dict[str, Any] | None = None) -> None:
        """Store an entry atomically; a cache that cannot be written is only a slower next run."""
        if self.directory is None:
            return
        path = self._path(key)
        entry = {"key": key, "sources": sources, "value": value}
        if depends_on is not None:
            entry["dependencies"] = depends_on
        text = _canonical(entry)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _ignore_in_git(self.directory)
            descriptor, temporary = tempfile.mkstemp(prefix=".entry-", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temporary, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            return
        self.writes += 1


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


_GITIGNORE = "# made by resfam-cards: a cache, safe to delete\n*\n"


def is_cache_folder(directory: str | os.PathLike[str]) -> bool:
    """Whether `directory` is a folder this cache made (its `.gitignore` says so) or an empty one."""
    try:
        return (Path(directory) / ".gitignore").read_text(encoding="utf-8") == _GITIGNORE
    except (OSError, UnicodeDecodeError):
        pass
    try:
        return not any(Path(directory).iterdir())
    except OSError:
        return False


def _ignore_in_git(directory: Path) -> None:
    """A `.gitignore` of `*` in the cache folder keeps it out of any repository it lands in."""
    marker = directory / ".gitignore"
    if not marker.exists():
        with suppress(OSError):
            marker.write_text(_GITIGNORE, encoding="utf-8")
