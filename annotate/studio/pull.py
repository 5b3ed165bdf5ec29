"""Pull: a project's annotations out of Label Studio, validated, into the pulled file and the gold.

Every span is checked against the task text before anything is written; a refused pull leaves
the gold, the pulled file and the snapshots as they were. ``fetch_annotations`` reads the same
validated annotations into memory for agreement, adjudication and retraining.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from annotate import lsformat
from annotate.acceptance import AcceptanceReport, ShownPrediction, acceptance, acceptance_json, acceptance_path
from annotate.corpus import check_pull_targets, read_gold, write_pulled_and_gold
from annotate.errors import PullError, StudioError
from annotate.labels import Schema
from annotate.records import AnnotatedDoc, Article, Problem, PulledAnnotation
from annotate.studio.client import Project, Studio


@dataclass
class PullReport:
    project: str
    policy: str
    snapshot: Path
    pulled_path: Path
    gold_path: Path
    tasks: int = 0
    gold_docs: int = 0
    tasks_unannotated: int = 0
    annotations: int = 0
    cancelled: int = 0
    drafts: int = 0
    predictions: int = 0
    per_annotator: dict[str, int] = field(default_factory=dict)
    repairs: list[Problem] = field(default_factory=list)
    empty: list[tuple[int, str]] = field(default_factory=list)
    diff: lsformat.GoldDiff = field(default_factory=lsformat.GoldDiff)
    gold_sha256: str = ""
    kept: list[str] = field(default_factory=list)
    dry_run: bool = False
    per_article: dict[str, lsformat.GoldDiff] = field(default_factory=dict)
    acceptance: AcceptanceReport | None = None  # written beside the pulled file (acceptance_path)


def project_slug(title: str) -> str:
    """A file-name-safe form of a project title."""
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "project"


def snapshot_path(snapshots: Path, title: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return snapshots / project_slug(title) / f"export-{stamp}.json.gz"


def _checked_export(
    studio: Studio, project: Project, schema: Schema, consequence: str, compress: bool = False
) -> tuple[lsformat.ExportReading, bytes | None]:
    """Export the project and validate every span; any problem raises :class:`PullError` listing them all.

    Returns the reading and, with ``compress``, the raw export gzipped (compressed while the export
    is parsed: zlib releases the GIL), for the caller to keep once everything else passed too. The
    user list is fetched while the server builds the export (it sends the first byte only when the
    whole export is ready). ``consequence`` ends the error message: what was (not) done.
    """
    with ThreadPoolExecutor(max_workers=1) as meanwhile:
        asked = meanwhile.submit(studio.users)
        raw = studio.export_json(project)
        users = asked.result()
    with ThreadPoolExecutor(max_workers=1) as background:
        saved = background.submit(lambda: gzip.compress(raw, compresslevel=3, mtime=0)) if compress else None
        reading = lsformat.parse_export(raw, schema, users)
        compressed = saved.result() if saved is not None else None
    if reading is None:
        raise StudioError(f"Label Studio at {studio.url} sent an export that is not a JSON list; {consequence}")
    if reading.problems:
        raise PullError(
            f"{len(reading.problems)} problem(s) in project {project.title!r}; {consequence}", reading.problems
        )
    return reading, compressed


def prediction_acceptance(
    studio: Studio,
    project: Project,
    annotations: Sequence[PulledAnnotation],
    texts: Mapping[str, str],
    schema: Schema,
) -> AcceptanceReport | None:
    """What annotators did to the predictions they were shown (None when the project has none): one request."""
    stored = studio.project_predictions(project)
    if not stored:
        return None
    text_of_task = {a.task_id: texts[a.doc_id] for a in annotations if a.doc_id in texts}
    shown = [
        ShownPrediction(
            int(p["task"]),
            str(p.get("model_version") or ""),
            str(p.get("created_at") or ""),
            lsformat.read_prediction(text_of_task[int(p["task"])], p, schema)[0],
        )
        for p in stored
        if int(p.get("task") or 0) in text_of_task
    ]
    return acceptance(annotations, shown)


def pull(
    studio: Studio,
    *,
    title: str,
    schema: Schema,
    gold_path: Path,
    pulled_path: Path,
    snapshots: Path,
    policy: str = lsformat.DEFAULT_POLICY,
    replace: bool = False,
    origins: Mapping[str, str] | None = None,
    dry_run: bool = False,
    allow_empty: bool = False,
) -> PullReport:
    """Export the project, validate every span, keep the raw export, write pulled annotations and gold.

    Any span that fails validation (and cannot be repaired from UTF-16 offsets) stops the pull with
    every problem listed: nothing is written (no snapshot, pulled and gold files as they were).
    The pulled documents update the previous gold; its other documents are kept (listed in
    ``kept``) unless ``replace``, which writes only what the project holds. Each document's
    ``source`` names where its text came from (``origins``: doc id → seed file, else the previous
    gold's source), then the project and task. ``dry_run`` validates and compares but writes
    nothing, and reports the changes per article (``per_article``). An article whose chosen
    annotation was submitted with no spans stops the pull too, unless ``allow_empty`` (then it is
    gold with zero spans, and listed in the report's ``empty``).
    """
    if policy not in lsformat.POLICIES:
        raise StudioError(f"unknown pull policy {policy!r}; choose one of {', '.join(lsformat.POLICIES)}")
    project = studio.project(title)
    snapshot = snapshot_path(snapshots, title)
    figures_path = acceptance_path(pulled_path)
    check_pull_targets(pulled_path, gold_path, snapshot, figures_path)
    with ThreadPoolExecutor(max_workers=1) as background:
        # The previous gold is read while the server builds the export (the download mostly waits).
        earlier = background.submit(lambda: read_gold(gold_path) if gold_path.exists() else [])
        reading, compressed = _checked_export(
            studio, project, schema, f"nothing written ({gold_path} left as it was)", compress=not dry_run
        )
    previous: list[AnnotatedDoc] = earlier.result()
    known = {doc.id: lsformat.source_origin(doc.source) for doc in previous if lsformat.source_origin(doc.source)}
    known |= dict(origins or {})
    pulled_gold = lsformat.gold_from_pulled(reading.annotations, reading.texts, policy, title, known)
    empty = lsformat.empty_submissions(pulled_gold, reading.annotations)
    if empty and not allow_empty:
        shown = ", ".join(f"task {task} ({doc_id})" for task, doc_id in empty[:10]) + (", …" if len(empty) > 10 else "")
        raise PullError(
            f"{len(empty)} article(s) of {title!r} submitted with no spans: {shown}; nothing written. "
            f"Annotators should Skip an article rather than submit it empty; pass --allow-empty to keep them "
            f"as gold with no spans"
        )
    gold, kept = (pulled_gold, []) if replace else lsformat.merge_gold(previous, pulled_gold)
    diff = lsformat.diff_gold(previous, gold)
    per_article: dict[str, lsformat.GoldDiff] = {}
    accepted = None
    if dry_run:
        sha = ""
        before = {doc.id: doc for doc in previous}
        for doc in gold:
            if before.get(doc.id) != doc:
                per_article[doc.id] = lsformat.diff_gold([before[doc.id]] if doc.id in before else [], [doc])
        for doc_id in diff.docs_removed:
            per_article[doc_id] = lsformat.diff_gold([before[doc_id]], [])
    else:
        accepted = (
            prediction_acceptance(studio, project, reading.annotations, reading.texts, schema)
            if reading.predictions
            else None
        )
        # The snapshot and the acceptance figures too only now, with the rest: a refused pull writes nothing.
        figures = [(figures_path, acceptance_json(accepted.to_dict()))] if accepted is not None else []
        sha = write_pulled_and_gold(pulled_path, reading.annotations, gold_path, gold, (snapshot, compressed), figures)
    return PullReport(
        project=title,
        policy=policy,
        snapshot=snapshot,
        pulled_path=pulled_path,
        gold_path=gold_path,
        tasks=reading.tasks,
        gold_docs=len(gold),
        tasks_unannotated=reading.tasks_unannotated,
        annotations=len(reading.annotations),
        cancelled=reading.cancelled,
        drafts=reading.drafts,
        predictions=reading.predictions,
        per_annotator=dict(reading.per_annotator),
        repairs=reading.repairs,
        empty=empty,
        diff=diff,
        gold_sha256=sha,
        kept=kept,
        dry_run=dry_run,
        per_article=per_article,
        acceptance=accepted,
    )


# --- several annotators: every annotation in memory --------------------------------------------------


@dataclass(frozen=True)
class ProjectAnnotations:
    """Every annotation of a project, and the task texts as articles: what agreement and adjudication read."""

    project: str
    annotations: tuple[PulledAnnotation, ...]
    articles: tuple[Article, ...]
    repairs: tuple[Problem, ...] = ()


def fetch_annotations(studio: Studio, *, title: str, schema: Schema) -> ProjectAnnotations:
    """Every annotator's annotations of the project, validated as ``pull`` validates them; nothing is written.

    Articles are the task texts (``data.doc_id``, ``data.text``), so offsets are checked against the
    exact text that was annotated. Any invalid span raises :class:`PullError` listing every problem.
    """
    project = studio.project(title)
    reading, _ = _checked_export(studio, project, schema, "fix them in Label Studio first (nothing was compared)")
    articles = tuple(Article(doc_id, text) for doc_id, text in sorted(reading.texts.items()))
    return ProjectAnnotations(title, tuple(reading.annotations), articles, tuple(reading.repairs))
