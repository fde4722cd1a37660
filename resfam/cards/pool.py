"""The parent's side of measuring: a pool of worker processes (`worker.py`), each bounded in time and memory.

    with WorkerPool(package_dir, limits=Limits(seconds=120, memory=4 * GIB)) as pool:
        facts = pool.registry()
        pool.measure(jobs, on_result, on_waiting)

Each worker measures one model at a time, in steps: building it, counting its parameters, saving it
(the checkpoint's size), tracing it at each image size. The worker names each step as it starts it,
on the protocol (`{"op": "step", "step": "tracing at 224 px"}`), so the pool knows where a worker is:

- time: a step may take `Limits.seconds`. The worker stops a step over it itself, where its code is,
  and says where; one stuck where it cannot (inside one long native call) is killed `KILL_GRACE`
  seconds later. Importing the model zoo is a step too; importing torch before it may take
  `STARTUP_SECONDS` if that is longer.
- memory: each worker's address space is capped at `Limits.memory`; an allocation over it fails in the
  model's code. The kernel's out-of-memory killer, an abort or a crash end the worker: the pool says
  so, with the step it was in.
- never silent: while a worker is busy, `on_waiting` hears about it every `PROGRESS_SECONDS`, with
  the step and the line of code the worker is at (it says so every `worker.WHERE_SECONDS`).

A model that fails in any of these ways fails alone: its worker is replaced (its state after an
interrupted step is not to be trusted) and the other models are measured as usual. A worker that
cannot start (the zoo does not import, or its import hangs or crashes) fails every job with that one
error. Closing the pool ends every worker; after an interruption (Ctrl-C) they are killed at once.

By default the pool runs as many workers as the usable cores allow (`os.sched_getaffinity`), and as
the available memory holds at the memory limit each; `measure` starts no more than it has jobs.

This module and `worker.py` are the two sides of one protocol, but only `worker.py` (with the other
measurement code) is part of the cache key (`cache.MEASUREMENT_CODE`): nothing here changes a figure.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import Limits, format_size, pump, wait_for

KILL_GRACE = 5.0  # seconds past the time limit before a worker that did not stop itself is killed
STARTUP_SECONDS = 60.0  # at least this long to import torch (a library, not the zoo), on a busy machine
PROGRESS_SECONDS = 10.0  # at least one line this often while a worker is busy
_STDERR_LINES_KEPT = 40


class WorkerError(Exception):
    """A worker could not do its job; the message says why in one line."""


class WorkerStartupError(WorkerError):
    """The worker could not import the model zoo (a syntax error in a model file, say)."""


@dataclass
class MeasureJob:
    """Measure one model (built once) at one or more image sizes."""

    model_id: str
    image_sizes: list[int]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def request(self) -> dict[str, Any]:
        return {"op": "measure", "model": self.model_id, "kwargs": self.kwargs, "image_sizes": self.image_sizes}


@dataclass(frozen=True)
class StillWorking:
    """A worker has been busy for a while: what a "still ..." progress line says."""

    model_id: str | None  # None: the worker is starting
    step: str
    seconds: float
    where: str | None = None  # the line the worker is executing: 'resfam/models/resnet.py:120 in forward'
    activity: str = "measuring"  # what the worker does with `model_id` ("running the code of" a card page)

    def __str__(self) -> str:
        what = f"{self.activity} {self.model_id}" if self.model_id else "starting a measuring worker"
        where = f": at {self.where}" if self.where else ""
        return f"still {what}, {self.step}{where}: {self.seconds:.0f} s"


WaitingCallback = Callable[[StillWorking], None]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which a container or `taskset` narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes the kernel says can be used without swapping (Linux's MemAvailable), None elsewhere."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_workers(limits: Limits, cores: int | None = None) -> int:
    """As many workers as the usable cores, and as many as the available memory holds at the memory
    limit each (at least one)."""
    cores = cores or usable_cores()
    memory = available_memory()
    return max(1, min(cores, memory // limits.memory if memory is not None else cores))


# ---------------------------------------------------------------------------------------------
# One worker


_FIRST_STEP = "importing torch"


class _WorkerProcess:
    """One worker process: `ask` sends a request and waits for the answer, keeping the time limit of
    each step the worker announces, and telling `on_waiting` every PROGRESS_SECONDS."""

    def __init__(self, package_dir: Path, threads: int, limits: Limits, zoo: Sequence[str] = ()):
        script = package_dir / "cards" / "worker.py"
        environment = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.limits = limits
        self.process = subprocess.Popen(
            [sys.executable, str(script), "--root", str(package_dir.parent), "--threads", str(threads),
             "--time-limit", repr(limits.seconds), "--memory-limit", str(limits.memory), *zoo],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            encoding="utf-8", bufsize=1, cwd=str(package_dir.parent), env=environment,
            start_new_session=True,  # a process group of its own: killing it kills the children it forks
        )
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
        # readers that never block the worker (a chatty library cannot fill a pipe); None: it has gone
        threading.Thread(target=pump, args=(self.process.stdout, self.replies.put, lambda: self.replies.put(None)),
                         daemon=True).start()
        threading.Thread(target=pump, args=(self.process.stderr, self.stderr_tail.append), daemon=True).start()
        self.ready: dict[str, Any] | None = None
        self.step = _FIRST_STEP  # until the worker names its steps
        self.where: str | None = None  # where in its step the worker said it was
        self.killed = False

    def wait_ready(self, on_waiting: WaitingCallback | None = None) -> dict[str, Any]:
        """The worker's ready message; WorkerStartupError when it cannot start, in whatever way."""
        if self.ready is None:
            try:
                reply = self._receive(None, on_waiting)
            except WorkerError as error:
                raise WorkerStartupError(str(error)) from None
            if reply.get("op") != "ready":
                raise WorkerStartupError(failure_message(reply, self.limits))
            self.ready = reply
        return self.ready

    def ask(self, request: dict[str, Any], on_waiting: WaitingCallback | None = None) -> dict[str, Any]:
        self.wait_ready(on_waiting)
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError:
            raise WorkerError(self._death_message()) from None
        return self._receive(request.get("model"), on_waiting, "running the code of" if request.get("op") == "run"
                             else "measuring")

    def _receive(self, model_id: str | None, on_waiting: WaitingCallback | None,
                 activity: str = "measuring") -> dict[str, Any]:
        """The next reply that is not a step; WorkerError when the worker dies or overruns a step."""
        started = step_started = said = time.monotonic()
        while True:
            allowed = max(self.limits.seconds, STARTUP_SECONDS) if self.step == _FIRST_STEP else self.limits.seconds
            deadline = step_started + allowed + KILL_GRACE
            wake = min(deadline, said + PROGRESS_SECONDS)
            try:
                line = wait_for(self.replies, max(0.0, wake - time.monotonic()))
            except queue.Empty:
                now = time.monotonic()
                if now >= deadline:
                    self.kill()
                    raise WorkerError(over_time_limit(self.step, allowed, "the worker was stopped")) from None
                if on_waiting is not None:
                    on_waiting(StillWorking(model_id, self.step, now - started, self.where, activity))
                said = now
                continue
            if line is None:
                raise WorkerError(self._death_message())
            try:
                message = json.loads(line)
            except ValueError:
                raise WorkerError(f"the measuring worker sent something that is not JSON: {line[:200]!r}") from None
            if message.get("op") == "where":
                self.where = message.get("where")
                continue
            if message.get("op") != "step":
                return message
            self.step, step_started, self.where = str(message.get("step")), time.monotonic(), None

    def _death_message(self) -> str:
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(0.05)  # let the stderr reader catch the last lines
        last = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
        if code is not None and code < 0:
            why = f"killed by {_signal_name(-code)}"
            if -code == getattr(signal, "SIGKILL", None) and not self.killed:
                why += ": the kernel's out-of-memory killer?"
        else:
            why = f"exit code {code}"
        return f"the measuring worker stopped while {self.step} ({why})" + (f": {last.strip()}" if last else "")

    @property
    def forks(self) -> bool:
        """Whether the worker computes in children it forks (worker.py), so that it stays as it started."""
        return bool(self.ready and self.ready.get("forks"))

    def kill(self) -> None:
        """Kill the worker and the children it forked (its process group)."""
        self.killed = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (AttributeError, OSError):  # no process groups (Windows), or it has gone
            try:
                self.process.kill()
            except OSError:
                pass
        self.process.wait()

    def close(self, kill: bool = False) -> None:
        """End the worker: let an idle one exit at the end of its requests, kill a busy one (after an
        interruption), or one started early and never used."""
        if kill or self.ready is None:
            self.kill()
            return
        try:
            if self.process.stdin and not self.process.stdin.closed:
                self.process.stdin.close()  # end of requests: the worker exits
        except OSError:
            pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def over_time_limit(step: str, seconds: float, how: str) -> str:
    return (f"{step} took more than {seconds:g} s, the time limit per step ({how}; the limit is set "
            f"with --time-limit or the plugin's time_limit)")


def failure_message(reply: dict[str, Any], limits: Limits) -> str:
    """A worker's failed (or fatal) reply in one line: what happened, at which step, where."""
    error = reply.get("error") or "the worker gave no reason"
    step, where, cause = reply.get("step"), reply.get("where"), reply.get("cause")
    if cause == "time":
        return over_time_limit(step, limits.seconds, f"stopped at {where}" if where else "stopped")
    if cause == "memory":
        return (f"{step} went over the memory limit of {format_size(limits.memory)} per worker: {error} (the "
                f"limit is set with --memory-limit or the plugin's memory_limit)")
    return f"{error}, while {step}" if step else error


# ---------------------------------------------------------------------------------------------
# The pool


class WorkerPool:
    """Up to `max_workers` measuring processes (default: `default_workers`), each started when first
    needed, closed together.

    `registry()` asks one worker for the registry facts; `measure(jobs, on_result, on_waiting)` hands
    the jobs out one at a time to whichever worker is free (the largest first, as given) and calls
    `on_result(job, reply)` as each finishes and `on_waiting(StillWorking)` while they take long, in
    the calling thread.
    """

    def __init__(self, package_dir: str | os.PathLike[str], max_workers: int | None = None,
                 limits: Limits = Limits(), cpus: int | None = None, zoo: Sequence[str] = ()):
        self.package_dir = Path(package_dir).resolve()
        self.zoo = tuple(zoo)  # the worker's zoo arguments: --zoo SOURCE --project DIR
        self.limits = limits
        self.cpus = cpus or usable_cores()
        self.max_workers = max(1, min(max_workers or default_workers(limits, self.cpus), self.cpus))
        self.threads_per_worker = max(1, self.cpus // self.max_workers)
        self._workers: dict[int, _WorkerProcess] = {}
        self._lock = threading.Lock()
        self._startup_error: WorkerStartupError | None = None
        self._closed = False
        self.started = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        self.close(kill=exc_type is not None)

    def start_early(self, workers: int = 1) -> None:
        """Start `workers` workers now (at most `max_workers`), without waiting for them: they import
        torch and the zoo while the caller does other work (reads the cards). Closing the pool kills
        those never used."""
        with self._lock:
            for slot in range(min(workers, self.max_workers)):
                self._started_worker(slot)

    def _started_worker(self, slot: int) -> _WorkerProcess:
        if self._closed:
            raise WorkerError("the measuring was stopped")
        worker = self._workers.get(slot)
        if worker is None:
            worker = _WorkerProcess(self.package_dir, self.threads_per_worker, self.limits, self.zoo)
            self._workers[slot] = worker
            self.started += 1
        return worker

    def _worker(self, slot: int, on_waiting: WaitingCallback | None) -> _WorkerProcess:
        with self._lock:
            if self._startup_error is not None:
                raise self._startup_error
            worker = self._started_worker(slot)
        try:
            worker.wait_ready(on_waiting)
        except WorkerStartupError as error:
            with self._lock:
                self._startup_error = error
            raise
        return worker

    def _retire(self, slot: int) -> None:
        """Kill the worker of `slot`: after a failure its state is not to be trusted."""
        with self._lock:
            worker = self._workers.pop(slot, None)
        if worker is not None:
            worker.close(kill=True)

    def registry(self, on_waiting: WaitingCallback | None = None) -> dict[str, Any]:
        """The worker's registry facts reply (raises WorkerError when the zoo cannot be imported)."""
        try:
            return self._worker(0, on_waiting).ask({"op": "registry"}, on_waiting)
        except WorkerError:
            if self._startup_error is None:
                self._retire(0)
            raise

    def measure(self, jobs: list[Any], on_result: Callable[[Any, dict[str, Any]], Sequence[Any] | None],
                on_waiting: WaitingCallback | None = None) -> None:
        """(Also runs `runner.RunJob`s: a page's code, answered "ran"; its worker is retired after it.)

        `on_result` may return further jobs, which join this run ahead of those waiting (they are ready
        now: a page whose models were just measured), so no worker idles while another finishes; every
        reply carries `job_seconds`, how long the pool waited for it."""
        pending = deque(jobs)
        unanswered = len(jobs)  # jobs without a reply yet: while any is out, more may come
        ready = threading.Condition(self._lock)
        events: queue.Queue = queue.Queue()  # ("result", job, reply) or ("waiting", StillWorking)

        def tell_waiting(still: StillWorking) -> None:
            events.put(("waiting", still))

        def work(slot: int) -> None:
            while True:
                with ready:
                    while not pending and unanswered and not self._closed:
                        ready.wait()
                    if not pending or self._closed:
                        return
                    job = pending.popleft()
                started = time.monotonic()
                worker = None
                try:
                    worker = self._worker(slot, tell_waiting)
                    started = time.monotonic()
                    reply = worker.ask(job.request(), tell_waiting)
                    if reply.get("op") not in ("measured", "ran"):
                        reply = dict(reply, op="failed", error=failure_message(reply, self.limits))
                except Exception as error:  # noqa: BLE001 - every job gets an answer, or the caller waits forever
                    message = str(error) if isinstance(error, WorkerError) else f"{type(error).__name__}: {error}"
                    reply = {"op": "failed", "model": job.model_id, "error": message,
                             "step": worker.step if worker is not None else None}
                retire = getattr(job, "retire_worker", False) and not (worker is not None and worker.forks)
                if (reply["op"] == "failed" or retire) and self._startup_error is None:
                    self._retire(slot)
                reply.setdefault("seconds", time.monotonic() - started)
                reply["job_seconds"] = time.monotonic() - started
                events.put(("result", job, reply))

        threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(self.max_workers)]
        for thread in threads:
            thread.start()
        try:
            while unanswered:
                kind, *event = wait_for(events)
                if kind == "result":
                    more = list(on_result(*event) or ())
                    with ready:
                        pending.extendleft(reversed(more))
                        unanswered += len(more) - 1
                        ready.notify_all()
                elif on_waiting is not None:
                    on_waiting(*event)
        finally:
            with ready:
                pending.clear()  # on an interruption too: the threads stop taking jobs
                unanswered = 0
                ready.notify_all()
        for thread in threads:
            thread.join()

    def close(self, kill: bool = False) -> None:
        """End every worker (at once with `kill`) and start no more."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close(kill)
