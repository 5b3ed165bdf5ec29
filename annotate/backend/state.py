"""The model in the loop: what the ML backend does, as plain functions and one state object.

:mod:`annotate.backend.app` puts this behind Label Studio's ML backend protocol; nothing here
knows about HTTP. Predictions come from the predictor ``push --predictions`` uses
(:mod:`annotate.model`), annotations are checked as ``pull`` checks them (:mod:`annotate.lsformat`).

Training never runs inside a request: the :class:`~annotate.backend.retrain.Retrainer` runs one
training at a time, each in a child process (:func:`~annotate.backend.retrain.train_job`). A
finished model is loaded and swapped in whole; a failed one is logged with its reason and the old
model keeps serving. The :class:`Refresher` stores the served model's predictions on a project's
unlabeled tasks (:func:`~annotate.studio.link.refresh_project`, in a child process) after a
connect, new tasks and every successful retraining.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotate import lsformat
from annotate.backend.retrain import (
    LiveTasks,
    RefreshJob,
    Retrainer,
    StudioAddress,
    TrainingJob,
    TrainingRequest,
    refresh_job,
    run_in_child,
    train_job,
)
from annotate.errors import AnnotateError, InputError
from annotate.labels import Schema
from annotate.model import Predictor, load_predictor, newest_trained, predict_tasks, task_text, word_batches

log = logging.getLogger(__name__)


# --- predictions and annotations ------------------------------------------------------------------


PREDICT_WORDS = 2_000  # words one /predict batch holds: the lock is held ~0.5 s, so an opened task waits little


def project_id(setup_project: str | None) -> int | None:
    """The project id in /setup's ``project`` ("<id>.<created at>"); None when it names none."""
    head = str(setup_project or "").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def annotation_problems(text: str, results: Sequence, schema: Schema) -> list[str]:
    """Why regions of a submitted annotation would be refused by ``pull`` (empty: all fine)."""
    problems = []
    for result in results:
        if not isinstance(result, Mapping):
            problems.append(f"region is not an object ({result!r})")
            continue
        reading = lsformat.read_result(text, result, schema)
        if reading.reason:
            problems.append(reading.reason)
    return problems


def served_model(model_dir: Path | None, models_dir: Path | None, *, pin: bool = False) -> tuple[Path, str]:
    """The folder to serve, and why: the newest model trained in ``models_dir``, unless ``pin`` keeps ``model_dir``.

    A restarted ``serve --models-dir D`` thus serves what the last successful retraining made, not
    the model it was first started with.
    """
    if model_dir is not None and (pin or models_dir is None):
        return model_dir, "as given"
    newest = newest_trained(models_dir) if models_dir is not None else None
    if newest is not None:
        return newest, f"the newest model trained in {models_dir}" + (f", not {model_dir}" if model_dir else "")
    if model_dir is not None:
        return model_dir, f"as given; no model trained in {models_dir} yet"
    raise InputError(f"{models_dir} holds no trained model yet; name a MODEL_DIR to serve")


# --- the backend's state ---------------------------------------------------------------------------


# While Label Studio answers an annotator's open, a refresh pauses (ms): from /setup, which Label Studio
# asks right before a live /predict; during /predict; and after it, while Label Studio stores the answer.
HOLD_SETUP_MS = 300
HOLD_PREDICT_MS = 2_000
HOLD_STORE_MS = 100


@dataclass
class BackendOptions:
    """How the backend trains: spaCy config, where new models go, how often, and how gold is chosen."""

    root: Path
    schema_path: Path
    config_path: Path
    models_dir: Path
    lang: str = "en"
    train_every: int | None = None
    seed: int = 0
    policy: str = lsformat.DEFAULT_POLICY
    refresh_page: int = 200  # tasks listed, predicted and uploaded at a time by a refresh
    refresh_workers: int = 1  # processes (local) or Ray workers predicting a refresh
    refresh_engine: str = "local"


@dataclass
class Backend:
    """The served model and everything that changes while serving: swapped whole, never edited in place."""

    predictor: Predictor
    schema: Schema
    options: BackendOptions
    studio_url: str = ""
    studio_api_key: str = field(default="", repr=False)
    retrainer: Retrainer | None = None
    model_dir: Path | None = None
    _seen: dict[int, str] = field(default_factory=dict)
    _since_training: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _predicting: threading.Lock = field(default_factory=threading.Lock)
    refresher: Refresher | None = None

    def __post_init__(self) -> None:
        if self.retrainer is None:
            self.retrainer = Retrainer(self._train, self._install)
        if self.refresher is None:
            self.refresher = Refresher(self._refresh_job)

    @classmethod
    def load(cls, model_dir: Path, schema: Schema, options: BackendOptions) -> Backend:
        return cls(load_predictor(model_dir, schema), schema, options, model_dir=Path(model_dir))

    # --- what the routes call ----------------------------------------------------------------

    def health(self) -> dict:
        """Cheap at all times (Label Studio allows 1 s and asks before every prediction)."""
        last = self.retrainer.history[-1] if self.retrainer.history else None
        return {
            "status": "UP",
            "model_version": self.predictor.model_version,
            "training": self.retrainer.busy,
            "trainings": len(self.retrainer.history),
            "annotations_seen": len(self._seen),
            "refresh": self.refresher.state(),
            "last_training": None
            if last is None
            else {
                "ok": last.ok,
                "model_version": last.model_version,
                "error": last.error,
                "problems": list(last.problems),
                "seconds": last.seconds,
            },
        }

    def setup(self, hostname: str | None, access_token: str | None, project: str | None = None) -> dict:
        """Remember where Label Studio is (for training) unless the environment says so already.

        Label Studio calls /setup when a project connects (and before every prediction): the
        first time a project is seen with the served version, its predictions are refreshed.
        """
        if hostname and access_token and not os.environ.get("LABEL_STUDIO_URL"):
            with self._lock:
                self.studio_url, self.studio_api_key = hostname, access_token
        version = self.predictor.model_version
        number = project_id(project)
        self.refresher.live.hold(HOLD_SETUP_MS)  # Label Studio asks /setup before each live /predict
        if number is not None:
            self.refresher.request(number, version, once=True)
        return {"model_version": version}

    def predict(self, tasks: Sequence[Mapping]) -> dict:
        """Label Studio's /predict answer: one predictor for the whole request, one batch predicted at a time.

        Each batch holds at most ``PREDICT_WORDS`` words, and only one batch (of any request) is in
        the pipeline at once, so memory stays bounded however many tasks, or requests, arrive; an
        opened task waits for at most one batch of a large request.
        """
        predictor = self.predictor
        live = [task["id"] for task in tasks if isinstance(task, Mapping) and isinstance(task.get("id"), int)]
        self.refresher.live.mark(live, HOLD_PREDICT_MS)  # a refresh running now leaves these to Label Studio to store
        results: list[dict] = []
        for batch in word_batches(list(enumerate(tasks)), lambda pair: task_text(pair[1], pair[0]), PREDICT_WORDS):
            with self._predicting:
                results.extend(predict_tasks(predictor, [task for _, task in batch]))
        self.refresher.live.mark(live, HOLD_STORE_MS)
        return {"results": results, "model_version": predictor.model_version}

    def tasks_created(self, project: Mapping) -> str:
        """New tasks: refresh the project's predictions in the background (queued behind a running refresh)."""
        number = project.get("id")
        if not isinstance(number, int):
            raise InputError("the event names no project id (project.id)")
        return self.refresher.request(number, self.predictor.model_version)

    def annotation_event(self, project: Mapping, task: Mapping, annotation: Mapping) -> str:
        """An annotation was submitted or updated: check it as pull would, count it, maybe retrain."""
        text = task_text(task, 0)
        results = annotation.get("result") or []
        if not isinstance(results, list):
            raise InputError(f"annotation {annotation.get('id')}: result is not a list")
        problems = annotation_problems(text, results, self.schema)
        if problems:
            raise InputError(f"task {task.get('id')} annotation {annotation.get('id')}: {problems[0]}")
        key, stamp = int(annotation.get("id") or 0), str(annotation.get("updated_at") or "")
        with self._lock:
            if self._seen.get(key) == stamp:
                return "already seen"
            self._seen[key] = stamp
            self._since_training.add(key)
            due = self.options.train_every is not None and len(self._since_training) >= self.options.train_every
            if due:
                self._since_training.clear()
        if due:
            return self.start_training(project, f"{self.options.train_every} new or updated annotations")
        return "counted"

    def start_training(self, project: Mapping, reason: str) -> str:
        request = TrainingRequest(int(project.get("id") or 0), str(project.get("title") or ""), reason)
        if not request.project_title:
            raise InputError("the event names no project title (project.title)")
        return self.retrainer.request(request)

    def close(self) -> None:
        """The server stops: no training starts any more, and a running one's child is ended (no model written)."""
        self.retrainer.close()

    # --- the training itself (on the retrainer's worker thread) ----------------------------------

    def studio_address(self) -> StudioAddress:
        """Where a child process finds Label Studio: as /setup said, else the environment and the project."""
        with self._lock:
            return StudioAddress(self.options.root, self.studio_url, self.studio_api_key)

    def training_job(self, request: TrainingRequest) -> TrainingJob:
        """What the child process trains: the project, the options, and a new folder under ``models_dir``."""
        options = self.options
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return TrainingJob(
            studio=self.studio_address(),
            title=request.project_title,
            schema_path=options.schema_path,
            config_path=options.config_path,
            output=options.models_dir / f"live-{stamp}-{len(self.retrainer.history) + 1}",
            lang=options.lang,
            seed=options.seed,
            policy=options.policy,
        )

    def _train(self, request: TrainingRequest) -> Path:
        return run_in_child(train_job, self.training_job(request)).output

    def _install(self, folder: Path, request: TrainingRequest) -> str:
        predictor = load_predictor(folder, self.schema)
        with self._lock:
            self.predictor, self.model_dir = predictor, Path(folder)
        if request.project_id:
            self.refresher.request(request.project_id, predictor.model_version)
        return predictor.model_version

    def _refresh_job(self, project: int, progress: Sequence[int]) -> RefreshJob:
        with self._lock:
            model_dir = self.model_dir
        if model_dir is None:
            raise InputError("the served model has no folder to load in a refresh")
        options = self.options
        return RefreshJob(
            self.studio_address(),
            project,
            model_dir,
            options.schema_path,
            options.refresh_page,
            progress,
            options.refresh_workers,
            options.refresh_engine,
            self.refresher.live.array,
        )


RETRY_AFTER_S = 30.0  # a refresh that failed is tried again by /setup after this long (Label Studio back up)


class Refresher:
    """One refresh of a project's predictions at a time, each in a child process; requests wait in order.

    ``job(project, progress)`` builds what the child runs (:func:`~annotate.backend.retrain.refresh_job`);
    the child writes ``done, total`` into a shared array, which :meth:`state` reads for /health.
    A project asked for ``once`` is refreshed once per served version (the /setup trigger); a failed
    refresh is tried again by /setup after ``RETRY_AFTER_S``. A project already waiting is not
    queued twice.
    """

    def __init__(self, job: Callable[[int, Sequence[int]], RefreshJob]) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._queue: list[int] = []
        self._running: int | None = None
        self._done: set[tuple[int, str]] = set()
        self._failed_at: dict[int, float] = {}
        self._progress = multiprocessing.get_context("spawn").RawArray("q", 2)
        self.live = LiveTasks()  # the tasks live /predict requests answered lately, read by the refresh child
        self.finished = 0
        self.error = ""

    def request(self, project: int, version: str, *, once: bool = False) -> str:
        with self._lock:
            if once and ((project, version) in self._done or project == self._running):
                return "already refreshed"
            if once and time.monotonic() - self._failed_at.get(project, -RETRY_AFTER_S) < RETRY_AFTER_S:
                return "failed lately"
            if project in self._queue:
                return "queued"
            self._queue.append(project)
            if self._running is not None:
                return "queued"
            self._running = self._queue.pop(0)
            self._progress[0] = self._progress[1] = 0
        threading.Thread(target=self._work, name="annotate-refresh", daemon=True).start()
        return "started"

    def state(self) -> dict:
        """What /health reports: cheap, read from memory."""
        with self._lock:
            return {
                "running": self._running is not None,
                "project": self._running,
                "queued": len(self._queue),
                "done": int(self._progress[0]),
                "total": int(self._progress[1]),
                "finished": self.finished,
                "error": self.error,
            }

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no refresh runs or waits (for tests and shutdown); True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state()["running"]:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _work(self) -> None:
        with self._lock:
            project = self._running
        while project is not None:
            try:
                job = self._job(project, self._progress)
                report = run_in_child(refresh_job, job, daemon=False)  # its workers are processes
            except Exception as exc:  # a failed refresh must never stop the server; the next request retries
                error = str(exc) if isinstance(exc, AnnotateError) else f"{type(exc).__name__}: {exc}"
                log.warning("the predictions of project %s were not refreshed: %s", project, error)
                with self._lock:
                    self.error = error
                    self._failed_at[project] = time.monotonic()
            else:
                log.info(
                    "project %s: %d task(s) predicted with %s (%s, %d worker(s); seconds: %s)",
                    project,
                    report.predicted,
                    report.model_version,
                    report.engine,
                    report.workers,
                    report.seconds,
                )
                with self._lock:
                    self.error = ""
                    self._done.add((project, report.model_version))
            with self._lock:
                self.finished += 1
                project = self._queue.pop(0) if self._queue else None
                self._running = project
                if project is not None:
                    self._progress[0] = self._progress[1] = 0
