"""Pretrained weights: fetch a registered checkpoint through torch.hub and load it strictly.

torch.hub does the download, the cache ($TORCH_HOME/hub/checkpoints) and the sha256 check on download.
This module adds what it lacks: unwrapping training checkpoints, a new head for fine-tuning, and one
error type, `PretrainedLoadError`, whose message alone says what went wrong and how to fix it. A model
whose weights are about to be loaded is built without initialising them (`no_weight_init`): the random
fills were about 95 % of building it, and the checkpoint overwrites every one.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from urllib.parse import urlparse

import torch
import torch.nn as nn

from .config import ModelConfig

__all__ = ["PretrainedLoadError", "cached_path", "hash_prefix", "load_pretrained", "no_weight_init"]

# torch.hub's convention, matched the way torch.hub matches it: the first "-<hex>." of the file name
# is a prefix of the file's sha256.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")
_KEYS_SHOWN = 5


class PretrainedLoadError(RuntimeError):
    """Pretrained weights could not be fetched, read or loaded into the model.

    The message names the model, the URL and the cached file, lists the first mismatched keys, and
    says how to fix it. The same facts are attributes: `model_name`, `url`, `path`, `missing`,
    `unexpected`, `mismatched` (key, checkpoint shape, model shape).
    """

    def __init__(self, model_name: str, url: str, path: str, problem: str, fix: str,
                 missing=(), unexpected=(), mismatched=()):
        self.model_name = model_name
        self.url = url
        self.path = path
        self.problem = problem
        self.fix = fix
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [
            f"cannot load pretrained weights for {self.model_name!r}: {self.problem}",
            f"  url:         {self.url}",
            f"  cached file: {self.path}",
        ]
        if self.missing:
            lines.append(f"  missing from the checkpoint ({len(self.missing)}): {_first(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected in the checkpoint ({len(self.unexpected)}): {_first(self.unexpected)}")
        if self.mismatched:
            shown = [f"{key} (checkpoint {ckpt}, model {want})" for key, ckpt, want in self.mismatched]
            lines.append(f"  wrong shape ({len(self.mismatched)}): {_first(shown)}")
        lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


def _first(items: list[str]) -> str:
    more = len(items) - _KEYS_SHOWN
    return ", ".join(items[:_KEYS_SHOWN]) + (f", ... and {more} more" if more > 0 else "")


def hash_prefix(url: str) -> str | None:
    """The sha256 prefix a checkpoint's file name promises (`name-<hex>.pth`), or None."""
    match = _HASH_IN_NAME.search(_file_name(url))
    return match.group(1) if match and match.group(1) else None


def cached_path(url: str) -> str:
    """Where torch.hub keeps the download of `url`: <torch.hub.get_dir()>/checkpoints/<file name>."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", _file_name(url))


def _file_name(url: str) -> str:
    return os.path.basename(urlparse(url).path)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    return f"{type(exc).__name__}: {text[:limit]}"


def _fetch(url: str, name: str, progress: bool):
    """Download (or reuse the cached copy of) `url` and unpickle it, tensors only, onto the CPU."""
    path = cached_path(url)
    expected_hash = hash_prefix(url)
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            model_dir=os.path.dirname(path),
            map_location="cpu",
            progress=progress,
            check_hash=expected_hash is not None,
            weights_only=True,  # a downloaded pickle must not run code
        )
    except Exception as exc:  # noqa: BLE001  (every failure becomes one clear error)
        if not os.path.exists(path):
            # torch.hub moves a download into the cache only once it is complete and its hash matched
            if expected_hash is not None and isinstance(exc, RuntimeError) and "hash" in str(exc):
                problem = (f"the downloaded file's sha256 does not start with {expected_hash}, the hash its "
                           f"name promises ({_one_line(exc)})")
                fix = ("the download is not the published file: retry it, and if it fails again, the "
                       "registered URL or the file behind it is wrong. Nothing was cached.")
            else:
                problem = f"the download failed ({_one_line(exc)})"
                fix = (f"check the URL and your connection, or place the checkpoint at {path} "
                       "yourself; it is used from there without downloading.")
        elif isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
            detail = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln), "")
            detail = detail.split(" Please")[0]  # torch goes on to suggest allowlisting the class
            problem = (f"the checkpoint holds Python objects besides tensors, which are not unpickled for safety "
                       f"({detail})")
            fix = (f"save only the weights (torch.save(model.state_dict(), path)), or delete {path} if it "
                   "is not the intended file.")
        else:
            problem = f"the file is corrupt, truncated or not a PyTorch checkpoint ({_one_line(exc)})"
            fix = f"delete the cached file {path} and try again; it is downloaded afresh."
        raise PretrainedLoadError(name, url, path, problem, fix) from None


def _state_dict_of(checkpoint):
    """The state_dict inside a checkpoint: the checkpoint itself, or a training checkpoint's
    "state_dict" or "model" entry."""
    if isinstance(checkpoint, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), Mapping):
                return checkpoint[key]
    return checkpoint


def _filled_by_batchnorm(key: str, metadata) -> bool:
    """BatchNorm counts batches since PyTorch 0.4.1 (module version 2). Loading a checkpoint saved
    before (torchvision's original ResNet weights, for one), it sets the missing counter itself."""
    suffix = ".num_batches_tracked"
    if not key.endswith(suffix):
        return False
    version = ((metadata or {}).get(key[: -len(suffix)]) or {}).get("version")
    return version is None or version < 2


def load_pretrained(model: nn.Module, config: ModelConfig, name: str, progress: bool = True) -> None:
    """Load the weights at `config.url` into `model`, strictly.

    A model built with another `num_classes` than the weights (`config.num_classes`) keeps its own,
    new classifier and takes every other tensor from the checkpoint. Any failure raises
    `PretrainedLoadError`.
    """
    url = config.url
    path = cached_path(url)

    def fail(problem, fix, **keys):
        raise PretrainedLoadError(name, url, path, problem, fix, **keys) from None

    state = _state_dict_of(_fetch(url, name, progress))
    if not isinstance(state, Mapping):
        fail(f"the checkpoint holds a {type(state).__name__} object, not a state_dict",
             f"point the registered URL at a saved state_dict, or delete {path} if it is not the intended file.")

    expected = model.state_dict()
    metadata = getattr(state, "_metadata", None)  # module versions, which load_state_dict consults
    head_keys = {f"{config.classifier}.weight", f"{config.classifier}.bias"}
    new_head = getattr(model, "num_classes", config.num_classes) != config.num_classes
    if new_head:  # fine-tuning: the checkpoint's head is for other classes, the model keeps its own
        state = OrderedDict((k, v) for k, v in state.items() if k not in head_keys)
        if metadata is not None:
            state._metadata = metadata
        expected = {k: v for k, v in expected.items() if k not in head_keys}

    missing = [k for k in expected if k not in state and not _filled_by_batchnorm(k, metadata)]
    unexpected = [k for k in state if k not in expected]
    mismatched = []
    for key, want in expected.items():
        if key not in state:
            continue
        got = state[key]
        if not isinstance(got, torch.Tensor):
            mismatched.append((key, f"a {type(got).__name__}", tuple(want.shape)))
        elif got.shape != want.shape:
            mismatched.append((key, tuple(got.shape), tuple(want.shape)))
    if missing or unexpected or mismatched:
        fail("the checkpoint does not match the model",
             f"check that the registered URL holds {name!r} weights; if {path} is a stale or foreign "
             "file, delete it so it is downloaded again.",
             missing=missing, unexpected=unexpected, mismatched=mismatched)

    try:
        # the comparison above is the strict check; strict=False only lets a new head stay as it is
        model.load_state_dict(state, strict=not new_head)
    except Exception as exc:  # noqa: BLE001  (e.g. a dtype that cannot be copied into the parameter)
        fail(f"loading the state_dict failed ({_one_line(exc)})",
             f"re-save the checkpoint with plain float tensors, or delete {path} if it is not the intended file.")


# torch.Tensor's in-place random fills (and erfinv_, which a truncated normal applies to the uniform fill)
_RANDOM_FILLS = ("normal_", "uniform_", "bernoulli_", "exponential_", "log_normal_", "geometric_", "cauchy_",
                 "random_", "erfinv_")
_NO_INIT = threading.RLock()  # one block at a time replaces the initialisers, and puts them back


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """Every in-place initialiser of `torch.nn.init` (kaiming_normal_, uniform_, ones_, ...), and the
    in-place random fills of tensors that a zoo's own initialisers are made of (timm's trunc_normal_
    starts with `Tensor.uniform_`), do nothing inside this block, in the thread that entered it: layers
    and models keep the memory `torch.empty` gave them. Other threads initialise as usual meanwhile."""
    with _NO_INIT:
        initialisers = [(nn.init, name, function) for name, function in vars(nn.init).items()
                        if name.endswith("_") and not name.startswith("_") and callable(function)]
        initialisers += [(torch.Tensor, name, getattr(torch.Tensor, name)) for name in _RANDOM_FILLS]
        here = threading.get_ident()

        def skipped(function):
            def leave_as_is(tensor, *args, **kwargs):
                return tensor if threading.get_ident() == here else function(tensor, *args, **kwargs)

            return leave_as_is

        try:
            for owner, name, function in initialisers:
                setattr(owner, name, skipped(function))
            yield
        finally:
            for owner, name, function in initialisers:
                setattr(owner, name, function)


def initialise_new_head(model: nn.Module, config: ModelConfig) -> None:
    """Initialise the classifier that `load_pretrained` left as it was (a `num_classes` other than the
    weights'), as its layers initialise themselves (`reset_parameters`): for a model built without
    initialisation (`no_weight_init`), the one part the checkpoint does not fill."""
    head = model.get_submodule(config.classifier)
    for module in head.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and any(True for _ in module.parameters(recurse=False)):
            reset()
