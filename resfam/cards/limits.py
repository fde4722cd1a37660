"""Bounding the helper processes of the card engine: the template renderer (`render`) and the measuring
workers (`pool`, `worker`). Standard library only: every one of those processes imports it.

In the helper process:

- `time_limit(seconds, make_error)` raises `make_error()` inside the running code when its time is
  up, so the traceback says where it was (Unix: a timer signal; elsewhere the parent's deadline is the
  only limit);
- `limit_memory(size)` caps the process's address space (Linux): an allocation over it fails with an
  error, where it is made, instead of the machine running out of memory;
- `leave_interrupts_to_parent()`: Ctrl-C reaches the whole process group; the parent decides, and
  stops its helpers itself.

In the parent: `pump` reads a helper's output in a thread, so a deadline can be kept while waiting
for it (a blocking read cannot time out) and a chatty helper never fills its pipe; `wait_for` waits for
what the threads read, never so long at a time that a Ctrl-C goes unnoticed.

`parse_size` reads a memory size as people write it: `4 GiB`, `512M`, or a number of bytes; `Limits`
are the time and memory limits of measuring, as the command line and the plugin set them.
"""
from __future__ import annotations

import contextlib
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GIB = 1 << 30


@contextlib.contextmanager
def time_limit(seconds: float | None, make_error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise `make_error()` in the block after `seconds` (main thread only; None or 0: no limit)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def time_up(signum: int, frame: Any) -> None:
        raise make_error()

    previous = signal.signal(signal.SIGALRM, time_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def limit_memory(size: int) -> bool:
    """Cap this process's address space at `size` bytes; whether it could be (Linux only)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    except (ImportError, ValueError, OSError):
        return False
    return True


def leave_interrupts_to_parent() -> None:
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


WAKE_SECONDS = 0.5  # the longest the parent blocks at a time


def wait_for(replies: queue.Queue, timeout: float | None = None) -> Any:
    """`replies.get(timeout=timeout)`, in waits of at most WAKE_SECONDS. The kernel may hand a Ctrl-C to
    one of the reader threads; that only sets Python's flag, which the main thread acts on when a wait
    returns: an endless wait would leave the run going."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = WAKE_SECONDS if deadline is None else min(WAKE_SECONDS, deadline - time.monotonic())
        try:
            return replies.get(timeout=max(0.0, left))
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def pump(stream: Iterable[str], sink: Callable[[str], Any], at_end: Callable[[], Any] | None = None) -> None:
    """Hand each line of `stream` to `sink` (without its line break), then call `at_end`; run it in a
    daemon thread."""
    for line in stream:
        sink(line.rstrip("\n"))
    if at_end is not None:
        at_end()


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000 ** 2,
          "mib": 1 << 20, "g": GIB, "gb": 1000 ** 3, "gib": GIB, "t": 1 << 40, "tb": 1000 ** 4, "tib": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
SIZE_HINT = "a number of bytes, or a number with a unit: 512 MiB, 4 GiB, 4G"


def parse_size(value: Any) -> int:
    """Bytes from an int or a text like '4 GiB', '512M' or '1.5 GB' (K/M/G/T alone are binary units);
    ValueError saying what is wrong otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)) and match.group(2).lower() in _UNITS:
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        raise ValueError(f"{value!r} is not a memory size")
    if size <= 0:
        raise ValueError(f"{value!r} is not a memory size above zero")
    return size


def format_size(size: int) -> str:
    """A size as it is best read: '4 GiB', '1.5 GiB', '512 MiB'."""
    for unit, factor in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} bytes"


# Measured on the machine of docs/performance.md (2026-11): a step takes a second or two for the largest
# model (a few more when the trace falls back to the CPU), and a worker needs ~0.4 GiB of memory, ~1.1 GiB
# of address space: the defaults only stop a runaway.
DEFAULT_STEP_SECONDS = 120.0
DEFAULT_MEMORY = 4 * GIB

TIME_LIMIT_HINT = "seconds each step of measuring one model may take (building it, tracing it at one image size)"
MEMORY_LIMIT_HINT = "the memory each measuring worker may use: a number of bytes, or with a unit: 2 GiB, 512M"


@dataclass(frozen=True)
class Limits:
    """What one step of measuring may take (seconds) and what one worker may hold (bytes)."""

    seconds: float = DEFAULT_STEP_SECONDS
    memory: int = DEFAULT_MEMORY

    def __post_init__(self) -> None:
        problems = limit_problems(self.seconds, self.memory)
        if problems:
            raise ValueError("; ".join(problems.values()))

    @classmethod
    def parse(cls, seconds: Any = None, memory: Any = None) -> Limits:
        """Limits from settings as a person writes them ('90', 90, '2 GiB'; None: the default);
        LimitsError listing every bad one."""
        problems = limit_problems(seconds, memory)
        if problems:
            raise LimitsError(problems)
        return cls(DEFAULT_STEP_SECONDS if seconds is None else _seconds(seconds),
                   DEFAULT_MEMORY if memory is None else parse_size(memory))


class LimitsError(ValueError):
    """Bad limit settings: `problems` is {"seconds" or "memory": what is wrong}."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(problems.values()))
        self.problems = problems


def limit_problems(seconds: Any, memory: Any) -> dict[str, str]:
    """{"seconds" or "memory": what is wrong} for the settings given (None: not given)."""
    problems = {}
    if seconds is not None and _seconds(seconds) is None:
        problems["seconds"] = f"the time limit must be a number of seconds above zero, got {seconds!r}"
    if memory is not None:
        try:
            parse_size(memory)
        except ValueError as error:
            problems["memory"] = f"the memory limit: {error}"
    return problems


def _seconds(value: Any) -> float | None:
    """A number of seconds above zero from a number or its text, else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        return None
    return float(value)
