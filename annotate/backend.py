"""The model in the loop: what the ML backend does, as plain functions and one state object.

:mod:`annotate.serve` puts this behind Label Studio's ML backend protocol (FastAPI); nothing here
knows about HTTP. Predictions come from the predictor ``push --predictions`` uses
(:mod:`annotate.predict`), annotations are checked as ``pull`` checks them (:mod:`annotate.lsformat`).

Training never runs inside a request: :class:`Retrainer` runs one training at a time in a worker
thread that waits on a child process (``annotate backend-job train``); a request during a
training queues exactly one more. A finished model is loaded and swapped in whole; a failed one is
logged with its reason and the old model keeps serving.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotate import lsformat
from annotate.errors import InputError, TrainingError
from annotate.labels import Schema
from annotate.predict import Predictor, label_studio_prediction, load_predictor

log = logging.getLogger("annotate.backend")


# --- predictions ---------------------------------------------------------------------------------


def task_text(task: Mapping, number: int) -> str:
    """The article text of one task of a /predict request (``data.text``, as push imports it)."""
    data = task.get("data")
    text = data.get("text") if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        raise InputError(f"task {task.get('id', f'#{number}')} has no text (data.text)")
    return text


def predict_tasks(predictor: Predictor, tasks: Sequence[Mapping]) -> list[dict]:
    """One Label Studio prediction per task, in order, each with the task-level score and model version."""
    texts = [task_text(task, number) for number, task in enumerate(tasks)]
    return [label_studio_prediction(spans, predictor.model_version) for spans in predictor.predict(texts)]


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


# --- training in the background -------------------------------------------------------------------


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


class Retrainer:
    """One training at a time on a worker thread; a request while one runs queues exactly one more.

    ``train(request)`` runs the training (a child process) and returns the new model's folder or
    raises :class:`TrainingError`; ``install(folder)`` loads and swaps it in and returns its version.
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
        self.history: list[TrainingRecord] = []

    def request(self, request: TrainingRequest) -> str:
        """Start a training now ("started"), or after the running one ("queued"; a later request replaces it)."""
        with self._lock:
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

    def _work(self) -> None:
        request = self._running
        while request is not None:
            self.history.append(self._run_one(request))
            with self._lock:
                request, self._queued = self._queued, None
                self._running = request

    def _run_one(self, request: TrainingRequest) -> TrainingRecord:
        began = time.monotonic()
        log.info("training on project %s (%s)", request.project_title, request.reason)
        try:
            folder = self._train(request)
            version = self._install(folder, request)
        except Exception as exc:  # a failed training must never stop the worker or the old model serving
            reason = str(exc) if isinstance(exc, TrainingError | InputError) else f"{type(exc).__name__}: {exc}"
            log.error("training on project %s failed, the old model keeps serving: %s", request.project_title, reason)
            return TrainingRecord(request, False, round(time.monotonic() - began, 2), error=reason)
        log.info("now serving %s (trained on project %s)", version, request.project_title)
        return TrainingRecord(request, True, round(time.monotonic() - began, 2), str(folder), version)


def run_job(command: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """Run one ``annotate backend-job`` child; its last stdout line is the answer, its ``Error:`` line the reason."""
    done = subprocess.run(list(command), env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = next((line[len("Error: ") :] for line in reversed(lines) if line.startswith("Error: ")), None)
        raise TrainingError(reason or (lines[-1] if lines else f"the training process exited with {done.returncode}"))
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- the backend's state ---------------------------------------------------------------------------


@dataclass
class BackendOptions:
    """How the backend trains: spaCy config, where new models go, and how often to retrain."""

    root: Path
    schema_path: Path
    config_path: Path
    models_dir: Path
    lang: str = "en"
    train_every: int | None = None
    seed: int = 0


@dataclass
class Backend:
    """The served model and everything that changes while serving: swapped whole, never edited in place."""

    predictor: Predictor
    schema: Schema
    options: BackendOptions
    studio_env: dict[str, str] = field(default_factory=dict)
    retrainer: Retrainer | None = None
    _seen: dict[int, str] = field(default_factory=dict)
    _since_training: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.retrainer is None:
            self.retrainer = Retrainer(self._train, self._install)

    @classmethod
    def load(cls, model_dir: Path, schema: Schema, options: BackendOptions) -> Backend:
        return cls(load_predictor(model_dir, schema), schema, options)

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
            "last_training": None
            if last is None
            else {"ok": last.ok, "model_version": last.model_version, "error": last.error, "seconds": last.seconds},
        }

    def setup(self, hostname: str | None, access_token: str | None) -> dict:
        """Remember where Label Studio is (for training) unless the environment says so already."""
        if hostname and access_token and not os.environ.get("LABEL_STUDIO_URL"):
            with self._lock:
                self.studio_env = {"LABEL_STUDIO_URL": hostname, "LABEL_STUDIO_API_KEY": access_token}
        return {"model_version": self.predictor.model_version}

    def predict(self, tasks: Sequence[Mapping]) -> list[dict]:
        return predict_tasks(self.predictor, tasks)

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

    # --- the training itself (on the retrainer's worker thread) ----------------------------------

    def _job(self, *arguments: str) -> str:
        command = [sys.executable, "-m", "annotate", "backend-job", *arguments]
        with self._lock:
            env = {**os.environ, **self.studio_env}
        return run_job(command, env, self.options.root)

    def _train(self, request: TrainingRequest) -> Path:
        options = self.options
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        output = options.models_dir / f"live-{stamp}-{len(self.retrainer.history) + 1}"
        answer = self._job(
            "train",
            "--project",
            request.project_title,
            "--schema",
            str(options.schema_path),
            "--config",
            str(options.config_path),
            "--lang",
            options.lang,
            "--seed",
            str(options.seed),
            "--output",
            str(output),
        )
        return Path(answer or output)

    def _install(self, folder: Path, request: TrainingRequest) -> str:
        predictor = load_predictor(folder, self.schema)
        self.predictor = predictor
        try:
            self._job("refresh", "--project", request.project_title, "--version", predictor.model_version)
        except TrainingError as exc:
            log.warning(
                "serving %s, but the project's predictions were not refreshed: %s", predictor.model_version, exc
            )
        return predictor.model_version
