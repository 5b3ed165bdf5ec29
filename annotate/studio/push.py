"""Push: articles into a Label Studio project, each exactly once, optionally with a model's predictions.

``push`` reconciles by ``data.doc_id`` before every batch and after every failure (Label Studio
de-duplicates nothing, and the client never retries a write), so running it again after a crash
finishes the job. ``ensure_project`` creates the project or brings its config up to the schema.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree

from annotate import lsformat
from annotate.errors import StudioProjectError, StudioUnreachable
from annotate.labels import Schema, label_studio_config, labels_in_config
from annotate.model import Predictor, label_studio_prediction
from annotate.records import Article
from annotate.studio.client import DEFAULT_BATCH, Project, Studio, check_title
from annotate.studio.predictions import sync_predictions


@dataclass
class PushReport:
    project: str
    created_project: bool = False
    config_updated: bool = False
    instructions_updated: bool = False
    imported: int = 0
    already_present: int = 0
    text_changed: list[str] = field(default_factory=list)
    duplicated_in_studio: list[str] = field(default_factory=list)
    with_predictions: int = 0
    model_version: str = ""
    predictions_added: int = 0
    predictions_updated: int = 0
    predictions_unchanged: int = 0
    retries: int = 0
    annotators_per_task: int = 1
    annotators_per_task_updated: bool = False


def ensure_project(studio: Studio, title: str, schema: Schema, instructions: str, force: bool) -> tuple[Project, str]:
    """The project, created or with its config brought up to the schema; returns it and what was done."""
    config = label_studio_config(schema)
    project = studio.find_project(title)
    if project is None:
        return studio.create_project(title, config, instructions), "created"
    if _same_config(project.label_config, config):
        if project.instructions.strip() != instructions.strip():
            return studio.update_instructions(project, instructions), "instructions updated"
        return project, ""
    dropped = set(labels_in_config(project.label_config)) - set(schema.names)
    if dropped and not force:
        used = _labels_in_use(studio, project) & dropped
        if used:
            raise StudioProjectError(
                f"project {title!r}: the schema drops label(s) {', '.join(sorted(used))} that annotations use; "
                f"pull and fix them first, or push with --force"
            )
    return studio.update_config(project, config, instructions), "config updated"


def _same_config(stored: str, wanted: str) -> bool:
    """Label Studio strips the config's trailing newline; compare the XML, not the bytes."""
    try:
        return ElementTree.canonicalize(stored, strip_text=True) == ElementTree.canonicalize(wanted, strip_text=True)
    except ElementTree.ParseError:
        return False


def _labels_in_use(studio: Studio, project: Project) -> set[str]:
    used: set[str] = set()
    for task in json.loads(studio.export_json(project) or b"[]"):
        for annotation in task.get("annotations") or []:
            for result in annotation.get("result") or []:
                used.update((result.get("value") or {}).get("labels") or [])
    return used


def check_push_options(*, batch_size: int = DEFAULT_BATCH, annotators_per_task: int | None = None) -> None:
    """Numbers push cannot work with, refused before anything is read from or sent to Label Studio."""
    if batch_size < 1:
        raise StudioProjectError(f"--batch-size must be at least 1 (tasks per import request), not {batch_size}")
    if annotators_per_task is not None and annotators_per_task < 1:
        raise StudioProjectError(f"annotators per task must be at least 1, not {annotators_per_task}")


def push(
    studio: Studio,
    articles: Sequence[Article],
    *,
    title: str,
    schema: Schema,
    instructions: str = "",
    predictor: Predictor | None = None,
    force: bool = False,
    annotators_per_task: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    attempts: int = 5,
    backoff_s: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> PushReport:
    """Bring ``articles`` into the project: each ``doc_id`` exactly once, however often this runs.

    Before importing, the project's tasks are listed and articles already there are skipped; one
    whose text changed is reported, never imported twice. A failed batch is not retried blindly:
    the tasks are listed again (the failed import may have landed) and only what is missing goes.
    ``progress(done, total)`` is called after each batch. ``annotators_per_task`` sets how many
    annotations finish a task (Label Studio's ``maximum_annotations``), for measuring agreement.
    """
    check_push_options(batch_size=batch_size, annotators_per_task=annotators_per_task)
    check_title(title)
    project, done = ensure_project(studio, title, schema, instructions, force)
    report = PushReport(
        title,
        created_project=done == "created",
        config_updated=done == "config updated",
        instructions_updated=done == "instructions updated",
    )
    if annotators_per_task is not None and annotators_per_task != project.annotators_per_task:
        project = studio.set_annotators_per_task(project, annotators_per_task)
        report.annotators_per_task_updated = True
    report.annotators_per_task = project.annotators_per_task
    index = {} if report.created_project else studio.task_index(project)
    todo = _reconcile(articles, index, report)
    report.already_present = len(articles) - len(todo) - len(report.text_changed)
    if predictor is not None:
        report.model_version = predictor.model_version
    total = len(todo)
    if progress:
        progress(0, total)
    for start in range(0, total, batch_size):
        _import_batch(studio, project, todo[start : start + batch_size], predictor, attempts, backoff_s, report)
        if progress:
            progress(report.imported, total)
    if predictor is not None:
        skip = {a.id for a in todo} | set(report.text_changed)
        present = [a for a in articles if a.id in index and a.id not in skip]
        _predict_present(studio, project, present, index, predictor, batch_size, report)
        if present or report.imported:
            studio.show_predictions_of(project, predictor.model_version)
    return report


def _predict_present(
    studio: Studio,
    project: Project,
    articles: Sequence[Article],
    index: Mapping[str, list[tuple[int, str]]],
    predictor: Predictor,
    batch_size: int,
    report: PushReport,
) -> None:
    """Give tasks that were already there this model version's predictions: added, updated or kept.

    A task keeps a prediction of this version that says the same; one that differs is replaced
    (deleted, then imported anew); predictions of other versions are left alone.
    """
    if not articles:
        return
    version = predictor.model_version
    wanted: dict[int, dict] = {}
    for start in range(0, len(articles), batch_size):
        batch = articles[start : start + batch_size]
        for article, spans in zip(batch, predictor.predict([a.text for a in batch]), strict=True):
            for task_id, _ in index[article.id]:
                wanted[task_id] = label_studio_prediction(spans, version)
    synced = sync_predictions(
        studio, project, wanted, lambda stored: stored == version, only_wanted_tasks=True, batch_size=batch_size
    )
    report.predictions_unchanged = synced.unchanged
    report.predictions_updated = synced.replaced
    report.predictions_added = synced.added


def _import_batch(
    studio: Studio,
    project: Project,
    batch: Sequence[Article],
    predictor: Predictor | None,
    attempts: int,
    backoff_s: float,
    report: PushReport,
) -> None:
    """Import one batch; after a failure, import only what the server does not hold yet."""
    missing = list(batch)
    for attempt in range(attempts):
        try:
            studio.import_tasks(project, _payloads(missing, predictor))
            break
        except StudioUnreachable as exc:
            failure = exc
        report.retries += 1
        time.sleep(backoff_s * 2**attempt)
        try:
            present = studio.task_index(project)
        except StudioUnreachable:
            continue
        missing = [article for article in missing if article.id not in present]
        if not missing:
            break
    else:
        raise StudioUnreachable(f"{failure} — {report.imported} articles imported so far; run push again to finish")
    report.imported += len(batch)
    if predictor is not None:
        report.with_predictions += len(batch)


def _payloads(batch: Sequence[Article], predictor: Predictor | None) -> list[dict]:
    if predictor is None:
        return [lsformat.task_payload(article) for article in batch]
    predicted = predictor.predict([article.text for article in batch])
    return [
        lsformat.task_payload(article, label_studio_prediction(spans, predictor.model_version))
        for article, spans in zip(batch, predicted, strict=True)
    ]


def _reconcile(articles: Sequence[Article], index: dict[str, list[tuple[int, str]]], report: PushReport) -> list:
    todo = []
    for article in articles:
        present = index.get(article.id)
        if not present:
            todo.append(article)
            continue
        if len(present) > 1:
            report.duplicated_in_studio.append(article.id)
        if any(sha != article.text_sha256 for _, sha in present):
            report.text_changed.append(article.id)
    return todo
