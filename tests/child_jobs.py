"""Functions the backend tests hand to ``run_in_child``: module-level, so a spawned child imports them by name."""

from __future__ import annotations

import os
from pathlib import Path

from annotate.backend.retrain import TrainingJob
from annotate.errors import PullError
from annotate.records import Problem, Span


def echo(value):
    return value


def crash_with(exit_code: int) -> None:
    """End the child without an answer, as the kernel's OOM killer would."""
    os._exit(exit_code)


def divide_by_zero() -> float:
    return 1 / 0


def refuse_a_bad_span(job: TrainingJob) -> None:
    """What ``train_job`` raises when the project holds a span ``pull`` refuses; names the policy it was given."""
    problem = Problem("task 7 annotation 9 (ann@example.org)", "label VILLAIN is not in the schema", "d7")
    raise PullError(
        f"1 problem(s) in project {job.title!r} (policy {job.policy}); fix them in Label Studio first",
        [Problem(problem.where, problem.reason, problem.doc_id, Span(5, 10, "VILLAIN", "Hamas"))],
    )


def numeric_threads() -> tuple[str | None, int | None]:
    """OPENBLAS_NUM_THREADS as this process sees it, and its threads with numpy's OpenBLAS loaded (from /proc)."""
    import numpy  # noqa: F401  (OpenBLAS starts its threads when it loads)

    status = Path("/proc/self/status")
    if not status.exists():
        return os.environ.get("OPENBLAS_NUM_THREADS"), None
    counts = [int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("Threads:")]
    return os.environ.get("OPENBLAS_NUM_THREADS"), counts[0]


def pid_after(seconds: float) -> int:
    """This worker's process id, after ``seconds`` busy (so jobs submitted together start every worker)."""
    count_for(seconds)
    return os.getpid()


def count_for(seconds: float) -> int:
    """Busy for ``seconds`` of wall time: how many rounds it made (fewer while the process is stopped)."""
    import time

    rounds, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        rounds += 1
    return rounds


def pause_workers_then_die(pids_file: str) -> None:
    """Start a pausable pool of two workers, write their ids, stop them, and die without resuming them."""
    from annotate.engine import worker_pool

    with worker_pool(2, "local", pausable=True) as pool:
        pids = {pool.result(job) for job in [pool.submit(pid_after, 0.3) for _ in range(2)]}
        pool.pause()
        Path(pids_file).write_text(" ".join(map(str, pids)))
        os._exit(0)
