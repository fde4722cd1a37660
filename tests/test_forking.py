"""A measuring worker computes in children it forks (worker.py): it imports torch and the zoo once, and each
page's code runs in a fresh child, so a page starts from a process that ran nothing, the worker is kept
for the next page, and a child that crashes is reported as a worker that died, as before."""
from __future__ import annotations

import sys

import pytest

from resfam.cards import pool
from resfam.cards.cache import PACKAGE_DIR
from resfam.cards.limits import Limits
from resfam.cards.runner import CodeBlock, RunJob

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork on Linux only")


def page(name: str, *codes: str) -> RunJob:
    return RunJob(name, [CodeBlock(index, code, 0, name, (1,)) for index, code in enumerate(codes)])


def run_pages(jobs: list[RunJob], workers: pool.WorkerPool) -> dict[str, dict]:
    replies = {}
    workers.measure(jobs, lambda job, reply: replies.__setitem__(job.page, reply))
    return replies


def test_each_page_runs_in_a_fresh_child_of_one_worker():
    # the first page leaves a mark in the zoo's module and in torch: the next page sees neither
    leave_marks = "import resfam\nimport torch\nresfam.left_behind = True\ntorch.set_num_threads(3)\nprint(os.getpid())"
    look = ("import resfam\nimport torch\nassert not hasattr(resfam, 'left_behind')\n"
            "assert torch.get_num_threads() != 3\nprint(os.getpid())")
    with pool.WorkerPool(PACKAGE_DIR, max_workers=1, limits=Limits(60, 4 << 30)) as workers:
        replies = run_pages([page("a.md", "import os", leave_marks), page("b.md", "import os", look),
                             page("c.md", "import os", look)], workers)
        worker_pid = next(iter(workers._workers.values())).process.pid
        assert workers.started == 1  # one import of torch and the zoo for the three pages
    assert [reply["op"] for reply in replies.values()] == ["ran"] * 3
    assert all(block["error"] is None for reply in replies.values() for block in reply["blocks"]), replies
    children = {int(reply["blocks"][1]["output"]) for reply in replies.values()}
    assert len(children) == 3 and worker_pid not in children


def test_a_page_that_reads_stdin_reads_nothing_of_the_workers_requests():
    with pool.WorkerPool(PACKAGE_DIR, max_workers=1, limits=Limits(60, 4 << 30)) as workers:
        replies = run_pages([page("reads.md", "import sys\nprint(repr(sys.stdin.read()))"), page("next.md", "y = 2")],
                            workers)
    assert replies["reads.md"]["blocks"][0]["output"] == "''\n"
    assert replies["next.md"]["op"] == "ran" and replies["next.md"]["blocks"][0]["error"] is None


def test_a_page_whose_child_crashes_fails_alone_as_a_worker_that_died():
    with pool.WorkerPool(PACKAGE_DIR, max_workers=1, limits=Limits(60, 4 << 30)) as workers:
        replies = run_pages([page("crash.md", "x = 1", "import os\nos.abort()"), page("next.md", "y = 2")], workers)
        assert workers.started == 2  # the worker the crash took down, and its successor
    crash = replies["crash.md"]
    assert crash["op"] == "failed" and crash["step"] == "running code block 2"
    assert crash["error"].startswith("the measuring worker stopped while running code block 2 (killed by SIGABRT)")
    assert replies["next.md"]["op"] == "ran" and replies["next.md"]["blocks"][0]["error"] is None


def test_a_result_can_add_jobs_that_run_ahead_of_those_waiting():
    # verify.py hands a card's page to the workers as soon as its models are measured: the page joins the
    # same run, ahead of the jobs still waiting (a free worker may already have taken the next one), and
    # the run ends when every job, added or not, is answered
    order = []

    def on_result(job: RunJob, reply: dict) -> list[RunJob]:
        order.append((job.page, reply["op"], reply["job_seconds"] > 0))
        return [page("added.md", "z = 3")] if job.page == "first.md" else []

    waiting = [page(f"waiting{number}.md", "y = 2") for number in range(3)]
    with pool.WorkerPool(PACKAGE_DIR, max_workers=1, limits=Limits(60, 4 << 30)) as workers:
        workers.measure([page("first.md", "x = 1"), *waiting], on_result)
        assert workers.started == 1
    pages = [name for name, _, _ in order]
    assert sorted(pages) == ["added.md", "first.md", "waiting0.md", "waiting1.md", "waiting2.md"]
    assert all(op == "ran" and timed for _, op, timed in order)
    assert pages[0] == "first.md" and pages.index("added.md") < pages.index("waiting2.md")
