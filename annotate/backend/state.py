"""The model in the loop: what the ML backend does, as plain functions and one state object.

:mod:`annotate.backend.app` puts this behind Label Studio's ML backend protocol; nothing here
knows about HTTP. Predictions come from the predictor ``push --predictions`` uses
(:mod:`annotate.model`), annotations are checked as ``pull`` checks them (:mod:`annotate.lsformat`).

Training never runs inside a request: the :class:`~annotate.backend.retrain.Retrainer` runs one
training at a time, each in a child process (:func:`~annotate.backend.retrain.train_job`). A
finished model is loaded and swapped in whole; a failed one is logged with its reason and the old
model keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotate import lsformat
from annotate.backend.retrain import (
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
from annotate.model import Predictor, label_studio_prediction, load_predictor

log = logging.getLogger(__name__)


# --- predictions and annotations ------------------------------------------------------------------


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


# --- the backend's state ---------------------------------------------------------------------------


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


@dataclass
class Backend:
    """The served model and everything that changes while serving: swapped whole, never edited in place."""

    predictor: Predictor
    schema: Schema
    options: BackendOptions
    studio_url: str = ""
    studio_api_key: str = field(default="", repr=False)
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
            else {
                "ok": last.ok,
                "model_version": last.model_version,
                "error": last.error,
                "problems": list(last.problems),
                "seconds": last.seconds,
            },
        }

    def setup(self, hostname: str | None, access_token: str | None) -> dict:
        """Remember where Label Studio is (for training) unless the environment says so already."""
        if hostname and access_token and not os.environ.get("LABEL_STUDIO_URL"):
            with self._lock:
                self.studio_url, self.studio_api_key = hostname, access_token
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
        self.predictor = predictor
        try:
            run_in_child(refresh_job, self.studio_address(), request.project_title, predictor.model_version)
        except AnnotateError as exc:
            log.warning(
                "serving %s, but the project's predictions were not refreshed: %s", predictor.model_version, exc
            )
        return predictor.model_version
