"""Review sets in Label Studio: an adjudication set for a second look, and a model's errors against the gold.

Both put spans beside the annotators' work as predictions of a version of their own, replaced on
each run, so the reviewer sees them in the labeling view and ``pull`` brings the decisions back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from annotate import lsformat
from annotate.errors import StudioProjectError
from annotate.labels import Schema
from annotate.records import Article, text_sha256
from annotate.studio.client import DEFAULT_BATCH, Studio
from annotate.studio.predictions import sync_predictions
from annotate.studio.push import ensure_project

if TYPE_CHECKING:
    from annotate.adjudicate import ReviewItem
    from annotate.review import ReviewPair


@dataclass
class ReviewReport:
    """What ``send_review`` left in the project: which tasks carry the review set, and what changed."""

    project: str
    model_version: str
    tasks: list[int] = field(default_factory=list)
    created: int = 0
    unchanged: int = 0
    removed: int = 0


REVIEW_PREFIX = "adjudication-min"


def review_version(min_agree: int) -> str:
    """The model version a review set's predictions carry: one per ``--min-agree``, replaced on each run."""
    return f"{REVIEW_PREFIX}{min_agree}"


def is_review_version(version: str) -> bool:
    return version.startswith(REVIEW_PREFIX) and version[len(REVIEW_PREFIX) :].isdigit()


def send_review(
    studio: Studio,
    *,
    title: str,
    items: Sequence[ReviewItem],
    texts: Mapping[str, str],
    model_version: str,
) -> ReviewReport:
    """Attach each item's spans (agreed + candidates) to its tasks as a prediction of ``model_version``.

    The project holds one review set at a time, the latest. A task that already carries the same
    prediction of this version keeps it; every other review-set prediction (``adjudication-min*``
    of any K: stale ones, those of another K, those on tasks decided since by a ground truth) is
    deleted. The project is set to show this version's predictions, so the reviewer sees the
    candidates; when nothing is left to review and the project shows a review version, it is set
    back to show none. Predictions of other versions (a model's) are left alone. An article missing
    from the project, or whose task text differs from ``texts``, stops everything before any
    change. Each prediction's score is the share of its spans that annotators agreed on.
    """
    project = studio.project(title)
    index = studio.task_index(project)
    wanted: dict[int, dict] = {}
    for item in items:
        tasks = index.get(item.doc_id)
        if not tasks:
            raise StudioProjectError(
                f"article {item.doc_id!r} is not in project {title!r}; no review set sent (wrong --project?)"
            )
        sha = text_sha256(texts[item.doc_id])
        for task_id, task_sha in tasks:
            if task_sha != sha:
                raise StudioProjectError(
                    f"task {task_id} ({item.doc_id}) in project {title!r}: its text differs from the text "
                    f"the annotations were made on; no review set sent"
                )
            score = round(len(item.agreed) / len(item.spans), 4) if item.spans else 0.0
            wanted[task_id] = lsformat.prediction_payload(item.spans, model_version, score)
    report = ReviewReport(title, model_version, sorted(wanted))
    synced = sync_predictions(studio, project, wanted, is_review_version)
    report.created, report.unchanged, report.removed = synced.created, synced.unchanged, synced.removed
    if wanted:
        studio.show_predictions_of(project, model_version)
    elif is_review_version(studio.shown_version(project)):
        studio.show_predictions_of(project, "")
    return report


# --- errors reviewed in Label Studio: gold as the annotation, the model's spans as a prediction ------


@dataclass
class ErrorReviewReport:
    """What ``send_errors_for_review`` did to the review project."""

    project: str
    url: str
    created_project: bool = False
    imported: int = 0
    already_present: int = 0
    predictions_created: int = 0
    predictions_unchanged: int = 0
    predictions_removed: int = 0


def send_errors_for_review(
    studio: Studio,
    *,
    title: str,
    schema: Schema,
    pairs: Sequence[ReviewPair],
    version: str,
    instructions: str = "",
    batch_size: int = DEFAULT_BATCH,
) -> ErrorReviewReport:
    """Each article once, with its gold spans as an annotation and the model's as a prediction of ``version``.

    Idempotent like push: articles already in the project (by ``doc_id``) are not imported again, so
    a reviewer's corrections are never overwritten; their predictions of ``version`` are replaced
    when they changed. An article whose text in the project differs from the gold stops everything
    before any change. The project shows ``version``'s predictions; ``pull`` brings the corrected gold back.
    """
    project, done = ensure_project(studio, title, schema, instructions, force=False)
    report = ErrorReviewReport(title, f"{studio.url}/projects/{project.id}/data", created_project=done == "created")
    index = {} if report.created_project else studio.task_index(project)
    articles = [Article(pair.gold.id, pair.gold.text) for pair in pairs]
    changed = [a.id for a in articles if any(sha != a.text_sha256 for _, sha in index.get(a.id, []))]
    if changed:
        raise StudioProjectError(
            f"project {title!r}: article {changed[0]} has other text there than in the gold "
            f"({len(changed)} such article(s)); nothing sent"
        )
    todo = [pair for pair in pairs if pair.gold.id not in index]
    report.already_present = len(pairs) - len(todo)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        payloads = [
            {
                **lsformat.task_payload(Article(pair.gold.id, pair.gold.text)),
                "annotations": [{"result": [lsformat.span_result(span) for span in pair.gold.spans]}],
            }
            for pair in batch
        ]
        studio.import_tasks(project, payloads)
        report.imported += len(batch)
    index = studio.task_index(project)
    wanted = {
        task_id: lsformat.prediction_payload(pair.predicted.spans, version, pair.score)
        for pair in pairs
        for task_id, _ in index.get(pair.gold.id, [])
    }
    synced = sync_predictions(studio, project, wanted, lambda stored: stored == version, batch_size=batch_size)
    report.predictions_created = synced.created
    report.predictions_unchanged = synced.unchanged
    report.predictions_removed = synced.removed
    if wanted:
        studio.show_predictions_of(project, version)
    return report


def task_links(studio: Studio, title: str) -> dict[str, str]:
    """``doc_id`` → the address of its task in the project's data view (the first task, if several)."""
    project = studio.project(title)
    return {
        doc_id: f"{studio.url}/projects/{project.id}/data?task={tasks[0][0]}"
        for doc_id, tasks in studio.task_index(project).items()
        if tasks
    }
