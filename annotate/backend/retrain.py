"""Retraining while serving: one training at a time, each a plain function call in a child process.

:class:`Retrainer` runs trainings on a worker thread, one at a time, and queues one more.
:func:`run_in_child` calls a function in a fresh child process (multiprocessing, spawn) and hands
back its return value, or re-raises our error with its message and problems as they were. The
child keeps the server answering while spaCy trains (which holds the GIL for minutes) and gives
its memory back when done.

:func:`train_from_project` reads the project's annotations exactly as ``pull`` reads them (any bad
span stops the training with every problem named), turns them into gold by the given pull policy,
and trains with :func:`annotate.train.train`; ``gold/gold.jsonl`` is not touched. The model is
saved atomically into a new folder, so the backend never loads half a model.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from annotate import lsformat
from annotate.errors import AnnotateError, TrainingError

if TYPE_CHECKING:
    from annotate.labels import Schema
    from annotate.studio.client import Studio
    from annotate.studio.link import RefreshReport
    from annotate.train import TrainResult

log = logging.getLogger(__name__)
Result = TypeVar("Result")
REFRESH_NICENESS = 10


# --- one training at a time, on a worker thread -----------------------------------------------------


@dataclass(frozen=True)
class TrainingRequest:
    """What to train on: a Label Studio project, named as its webhook payload names it."""

    project_id: int
    project_title: str
    reason: str


@dataclass
class TrainingRecord:
    """One finished training: the request, how it ended, and the model it made (or why not)."""

    request: TrainingRequest
    ok: bool
    seconds: float
    model_dir: str = ""
    model_version: str = ""
    error: str = ""
    problems: tuple[str, ...] = ()


class Retrainer:
    """One training at a time on a worker thread; a request while one runs queues exactly one more.

    ``train(request)`` runs the training (a child process) and returns the new model's folder or
    raises :class:`AnnotateError`; ``install(folder)`` loads and swaps it in and returns its version.
    """

    def __init__(
        self,
        train: Callable[[TrainingRequest], Path],
        install: Callable[[Path, TrainingRequest], str],
    ) -> None:
        self._train = train
        self._install = install
        self._lock = threading.Lock()
        self._running: TrainingRequest | None = None
        self._queued: TrainingRequest | None = None
        self._worker: threading.Thread | None = None
        self._closed = False
        self.history: list[TrainingRecord] = []

    def request(self, request: TrainingRequest) -> str:
        """Start a training now ("started"), or after the running one ("queued"; a later request replaces it)."""
        with self._lock:
            if self._closed:
                return "shutting down"
            if self._running is not None:
                self._queued = request
                return "queued"
            self._running = request
            self._worker = threading.Thread(target=self._work, name="annotate-retrainer", daemon=True)
            self._worker.start()
            return "started"

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no training runs or is queued (for tests and shutdown); True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Shutting down: start nothing more, and stop the running training's child (its model is not written)."""
        with self._lock:
            self._closed = True
            self._queued = None
        stop_children(timeout)

    def _work(self) -> None:
        request = self._running
        while request is not None:
            self.history.append(self._run_one(request))
            with self._lock:
                request, self._queued = (None if self._closed else self._queued), None
                self._running = request

    def _run_one(self, request: TrainingRequest) -> TrainingRecord:
        began = time.monotonic()
        log.info("training on project %s (%s)", request.project_title, request.reason)
        try:
            folder = self._train(request)
            version = self._install(folder, request)
        except Exception as exc:  # a failed training must never stop the worker or the old model serving
            reason = str(exc) if isinstance(exc, AnnotateError) else f"{type(exc).__name__}: {exc}"
            problems = tuple(str(problem) for problem in getattr(exc, "problems", None) or ())
            log.error("training on project %s failed, the old model keeps serving: %s", request.project_title, reason)
            for problem in problems:
                log.error("  %s", problem)
            return TrainingRecord(request, False, round(time.monotonic() - began, 2), error=reason, problems=problems)
        log.info("now serving %s (trained on project %s)", version, request.project_title)
        return TrainingRecord(request, True, round(time.monotonic() - began, 2), str(folder), version)


# --- a plain call in a child process -----------------------------------------------------------------


CHILD_GRACE_SECONDS = 10.0  # how long a child may take to exit once it answered or was told to stop
_children: set[multiprocessing.process.BaseProcess] = set()
_children_lock = threading.Lock()


def run_in_child(function: Callable[..., Result], *arguments: Any, daemon: bool = True) -> Result:
    """``function(*arguments)`` in a fresh child process: its return value, or its error raised here.

    Our errors come back as they were raised (class, message, problems). Any other exception
    arrives as :class:`TrainingError` naming its type and message, and a child that ends without an
    answer (killed, out of memory, stopped by :func:`stop_children`) as one naming its exit code.
    ``function`` and ``arguments`` must pickle (a module-level function, plain data). The child
    belongs to this process's lifetime: :func:`stop_children` ends it, and it ends itself within a
    second of this process dying, however it died. A child that starts processes of its own (a
    refresh's workers) must not be a daemon (``daemon=False``); it is ended the same ways.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_answer,
        args=(sender, function, arguments, os.getpid()),
        name=f"annotate-{function.__name__}",
        daemon=daemon,
    )
    with _children_lock:
        child.start()
        _children.add(child)
    sender.close()  # the child holds the only writing end now: its death ends recv() with EOFError
    try:
        with receiver:
            try:
                succeeded, value = receiver.recv()
            except EOFError:
                _end(child, CHILD_GRACE_SECONDS)
                raise TrainingError(
                    f"{function.__name__} ended without an answer (child process exit code {child.exitcode})"
                ) from None
        _end(child, CHILD_GRACE_SECONDS)
    finally:
        with _children_lock:
            _children.discard(child)
    if not succeeded:
        raise value
    return value


def _end(child: multiprocessing.process.BaseProcess, timeout: float) -> None:
    """Wait at most ``timeout`` for the child to exit, then terminate it, then kill it: never an endless join."""
    child.join(timeout)
    for stop in (child.terminate, child.kill):
        if child.exitcode is not None:
            return
        stop()
        child.join(timeout)


def stop_children(timeout: float = 10.0) -> int:
    """End every child :func:`run_in_child` is waiting on (SIGTERM, then SIGKILL after ``timeout``); how many."""
    with _children_lock:
        running = [child for child in _children if child.exitcode is None]
    for child in running:
        child.terminate()
    for child in running:
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join(timeout)
    return len(running)


def _answer(sender: Connection, function: Callable[..., Any], arguments: tuple, parent: int) -> None:
    """The child's side of :func:`run_in_child`: call, and send back (True, result) or (False, our error).

    Ctrl-C in the server's terminal reaches the child too: it is ignored here (no traceback from the
    child), and the server ends the child as it shuts down.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_follow_parent, args=(parent,), name="annotate-parent-watch", daemon=True).start()
    try:
        outcome = (True, function(*arguments))
    except AnnotateError as exc:
        outcome = (False, exc)
    except Exception as exc:  # not ours: its class may not exist or pickle in the parent, its text does
        log.exception("%s failed", function.__name__)
        outcome = (False, TrainingError(f"{type(exc).__name__}: {exc}"))
    with sender:
        sender.send(outcome)


def _follow_parent(parent: int) -> None:
    """In the child: end at once when the parent is gone (killed, even by SIGKILL), so no orphan writes a model."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


# --- what the child runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudioAddress:
    """Where a child process finds Label Studio: this URL and key, else the environment and the project's server."""

    root: Path
    url: str = ""
    api_key: str = field(default="", repr=False)

    def connect(self) -> Studio:
        from annotate.studio import client  # here, not above: the serving process never loads the SDK

        return client.connect(self.url or None, self.api_key or None, root=self.root)


@dataclass(frozen=True)
class TrainingJob:
    """Everything :func:`train_job` needs, as plain data that pickles into the child."""

    studio: StudioAddress
    title: str
    schema_path: Path
    config_path: Path
    output: Path
    lang: str = "en"
    seed: int = 0
    policy: str = lsformat.DEFAULT_POLICY


def train_from_project(
    connection: Studio,
    *,
    title: str,
    schema: Schema,
    config_path: Path,
    output: Path,
    lang: str = "en",
    seed: int = 0,
    policy: str = lsformat.DEFAULT_POLICY,
) -> TrainResult:
    """Train on the project's submitted annotations (one per article, chosen by ``policy`` as ``pull`` chooses)."""
    from annotate.studio.pull import fetch_annotations
    from annotate.train import train

    if policy not in lsformat.POLICIES:
        raise TrainingError(f"unknown pull policy {policy!r}; choose one of {', '.join(lsformat.POLICIES)}")
    found = fetch_annotations(connection, title=title, schema=schema)
    texts = {article.id: article.text for article in found.articles}
    gold = lsformat.gold_from_pulled(found.annotations, texts, policy, title)
    if not gold:
        raise TrainingError(f"project {title!r} has no submitted annotation to train on")
    if not any(doc.spans for doc in gold):
        raise TrainingError(f"the {len(gold)} annotated article(s) of project {title!r} have no spans to learn from")
    return train(
        gold, output, config_path=config_path, labels=schema.names, schema_sha256=schema.sha256, seed=seed, lang=lang
    )


def train_job(job: TrainingJob) -> TrainResult:
    """The training a child process runs: connect, read the schema, :func:`train_from_project`."""
    from annotate.labels import load_schema

    return train_from_project(
        job.studio.connect(),
        title=job.title,
        schema=load_schema(job.schema_path),
        config_path=job.config_path,
        output=job.output,
        lang=job.lang,
        seed=job.seed,
        policy=job.policy,
    )


@dataclass(frozen=True)
class RefreshJob:
    """Everything :func:`refresh_job` needs, as plain data (and shared arrays for its progress and live tasks)."""

    studio: StudioAddress
    project_id: int
    model_dir: Path
    schema_path: Path
    page_size: int = 200
    progress: Any = field(default=None, repr=False)  # a shared array of 2: done, total
    workers: int = 1
    engine: str = "local"
    live: Any = field(default=None, repr=False)  # a shared array of (task id, ms) pairs: see LiveTasks


BUSY_MS = 10_000  # a task a live /predict answered this recently is left to Label Studio to store


def _clock_ms() -> int:
    """Milliseconds of the monotonic clock: the same in the serving process and its refresh child, and
    never set back (a wall clock set back an hour would hold a refresh for an hour)."""
    return int(time.monotonic() * 1000)


class LiveTasks:
    """The tasks live /predict requests answered lately, shared with the refresh child (a ring of id, time pairs).

    The serving process marks a request's tasks when it starts and again when it answers; Label
    Studio stores that answer right after. The refresh leaves such tasks out of its upload for
    ``BUSY_MS`` (then, if Label Studio stored nothing, its last pass predicts them).

    The last slot holds until when (ms) an annotator's open is being answered: the refresh pauses
    its workers and uploads until then (:meth:`answering`), so Label Studio and /predict get the CPU.
    """

    SLOTS = 512

    def __init__(self, array: Any = None) -> None:
        size = 2 * self.SLOTS + 1
        self.array = multiprocessing.get_context("spawn").RawArray("q", size) if array is None else array
        self._next = 0
        self._lock = threading.Lock()

    def mark(self, task_ids: Iterable[int], hold_ms: int = 0) -> None:
        now = _clock_ms()
        with self._lock:
            for task_id in task_ids:
                slot = 2 * (self._next % self.SLOTS)
                self.array[slot], self.array[slot + 1] = task_id, now
                self._next += 1
            if hold_ms:
                self.array[2 * self.SLOTS] = now + hold_ms

    def hold(self, hold_ms: int) -> None:
        """An open is being answered: the refresh yields for ``hold_ms`` from now."""
        self.mark((), hold_ms)

    def answering(self) -> float:
        """Seconds until the refresh may go on (0 when no open is being answered)."""
        return max(0.0, (self.array[2 * self.SLOTS] - _clock_ms()) / 1000)

    def recent(self) -> set[int]:
        oldest = _clock_ms() - BUSY_MS
        values = list(self.array[: 2 * self.SLOTS])
        return {values[i] for i in range(0, len(values), 2) if values[i + 1] >= oldest and values[i] > 0}


def refresh_job(job: RefreshJob) -> RefreshReport:
    """The refresh a child process runs: :func:`~annotate.studio.link.refresh_project` with the served model.

    In a child (niced, and so are its workers), so the serving process neither loads the SDK nor
    shares its CPU time for the whole project with the /predict requests of annotators opening tasks.
    """
    from annotate.labels import load_schema
    from annotate.model import SavedModel
    from annotate.studio.link import refresh_project

    def progress(done: int, total: int) -> None:
        if job.progress is not None:
            job.progress[0], job.progress[1] = done, total

    os.nice(REFRESH_NICENESS)  # annotators opening tasks (Label Studio, /predict) come first on a shared CPU
    studio = job.studio.connect()
    model = SavedModel(job.model_dir, load_schema(job.schema_path))
    project = studio.project_by_id(job.project_id)
    live = LiveTasks(job.live) if job.live is not None else None
    return refresh_project(
        studio,
        project,
        model,
        page_size=job.page_size,
        workers=job.workers,
        engine=job.engine,
        progress=progress,
        busy=live.recent if live is not None else None,
        answering=live.answering if live is not None else None,
    )
