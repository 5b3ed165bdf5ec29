"""Label Studio I/O: the only module that imports ``label_studio_sdk``.

It speaks our domain's words (articles, spans, pulled annotations, gold) and raises our errors:
nothing from httpx or the SDK leaves this module, neither raised nor chained, because those
exceptions can carry request headers, and with them the API key.

Writes are never retried by the SDK (``max_retries=0``): a retried import would duplicate tasks,
since Label Studio de-duplicates nothing. ``push`` instead reconciles by ``data.doc_id`` before
every batch and after every failure, so running it again after a crash finishes the job.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotate import lsformat
from annotate.corpus import atomic_write_bytes, read_gold, write_gold, write_pulled
from annotate.errors import PullError, StudioAuthError, StudioError, StudioProjectError, StudioUnreachable
from annotate.labels import Schema, label_studio_config, labels_in_config
from annotate.predict import Predictor, load_predictor, model_version  # noqa: F401  (part of this module's API)
from annotate.records import AnnotatedDoc, Article, Problem, PulledAnnotation, Span, text_sha256

if TYPE_CHECKING:
    from annotate.adjudicate import ReviewItem

URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_BATCH = 5000
READ_TIMEOUT_S = 300.0
_TASK_FIELDS = {"fields": "task_only", "include": "id,data"}


@dataclass(frozen=True)
class Project:
    id: int
    title: str
    label_config: str
    instructions: str = ""
    annotators_per_task: int = 1


class Studio:
    """A connection to one Label Studio server. The key is kept out of ``repr`` and every message."""

    def __init__(self, url: str, api_key: str, *, timeout: float = READ_TIMEOUT_S) -> None:
        if not api_key:
            raise StudioAuthError(f"no API key for Label Studio at {url}: set {KEY_ENV} (or run `annotate studio up`)")
        self.url = url.rstrip("/")
        self.read_backoff_s = 0.5
        self._key = api_key
        self._client = self._call(
            "connect",
            lambda: LabelStudio(base_url=self.url, api_key=api_key, max_retries=0, timeout=timeout),
        )

    def __repr__(self) -> str:
        return f"Studio(url={self.url!r})"

    # --- error translation: the one place SDK and httpx exceptions are turned into ours ---------

    def _read(self, action: str, function: Callable[[], Any], attempts: int = 3) -> Any:
        """A call that changes nothing on the server, so it is safe to retry (with backoff) if the server is away."""
        for attempt in range(attempts - 1):
            try:
                return self._call(action, function)
            except StudioUnreachable:
                time.sleep(self.read_backoff_s * 2**attempt)
        return self._call(action, function)

    def _call(self, action: str, function: Callable[[], Any]) -> Any:
        try:
            return function()
        except httpx.TransportError as exc:
            error: StudioError = StudioUnreachable(
                f"cannot reach Label Studio at {self.url} ({type(exc).__name__} during {action}); "
                f"is it running? (`annotate studio status`)"
            )
        except ApiError as exc:
            error = self._api_error(action, exc.status_code, exc.body)
        except httpx.HTTPStatusError as exc:
            error = self._api_error(action, exc.response.status_code, "")
        except httpx.HTTPError as exc:
            error = StudioError(f"Label Studio at {self.url}: {type(exc).__name__} during {action}")
        raise error  # outside the except blocks: no chained SDK exception can carry headers along

    def _api_error(self, action: str, status: int | None, body: Any) -> StudioError:
        if status in (401, 403):
            return StudioAuthError(
                f"Label Studio at {self.url} refused the API key (HTTP {status} during {action}); "
                f"check {KEY_ENV} (a legacy token or a personal access token)"
            )
        detail = body.get("detail") or body.get("validation_errors") if isinstance(body, dict) else body
        detail = self._scrub(re.sub(r"\s+", " ", str(detail or ""))[:300])
        message = f"Label Studio at {self.url} answered HTTP {status} during {action}: {detail}".rstrip(": ")
        if status is not None and (status >= 500 or status in (408, 429)):
            return StudioUnreachable(message)
        return StudioError(message)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _request(self, action: str, method: str, path: str, **kwargs: Any) -> Any:
        """A plain API request through the SDK's authenticated client (for calls the SDK lacks or pages slowly)."""

        def send() -> Any:
            response = self._client._client_wrapper.httpx_client.request(
                path, method=method, request_options={"max_retries": 0}, **kwargs
            )
            response.raise_for_status()
            return response.json() if response.content else None

        return self._read(action, send) if method == "GET" else self._call(action, send)

    # --- server and users ------------------------------------------------------------------------

    def whoami(self) -> str:
        """The e-mail of the key's user: the cheapest call that proves the key works."""
        return str(self._read("checking the API key", lambda: self._client.users.whoami()).email)

    def users(self) -> dict[int, str]:
        """Label Studio user ids → e-mails (exports name annotators by id)."""
        found = self._read("listing users", lambda: list(self._client.users.list()))
        return {int(user.id): str(user.email or user.username or user.id) for user in found}

    # --- projects --------------------------------------------------------------------------------

    def find_project(self, title: str) -> Project | None:
        def search() -> list:
            return [p for p in self._client.projects.list(title=title, page_size=100) if p.title == title]

        found = self._read(f"looking up project {title!r}", search)
        if len(found) > 1:
            raise StudioProjectError(f"{len(found)} projects are titled {title!r} on {self.url}; rename all but one")
        if not found:
            return None
        found_project = found[0]
        return Project(
            found_project.id,
            found_project.title,
            found_project.label_config or "",
            found_project.expert_instruction or "",
            found_project.maximum_annotations or 1,
        )

    def project(self, title: str) -> Project:
        found = self.find_project(title)
        if found is None:
            raise StudioProjectError(f"no project titled {title!r} on {self.url} (run `annotate push` first)")
        return found

    def create_project(self, title: str, config: str, instructions: str) -> Project:
        created = self._call(
            f"creating project {title!r}",
            lambda: self._client.projects.create(
                title=title, label_config=config, expert_instruction=instructions, show_instruction=bool(instructions)
            ),
        )
        return Project(created.id, created.title, config, instructions, created.maximum_annotations or 1)

    def update_config(self, project: Project, config: str, instructions: str) -> Project:
        self._call(
            f"updating the labeling config of project {project.title!r}",
            lambda: self._client.projects.update(
                id=project.id, label_config=config, expert_instruction=instructions, show_instruction=bool(instructions)
            ),
        )
        return replace(project, label_config=config, instructions=instructions)

    def update_instructions(self, project: Project, instructions: str) -> Project:
        self._call(
            f"updating the instructions of project {project.title!r}",
            lambda: self._client.projects.update(
                id=project.id, expert_instruction=instructions, show_instruction=bool(instructions)
            ),
        )
        return replace(project, instructions=instructions)

    def set_annotators_per_task(self, project: Project, annotators: int) -> Project:
        """How many annotations finish a task (Label Studio's ``maximum_annotations``).

        Label Studio hands a task to the next annotator only while it has fewer annotations than
        this (1 by default), so several annotators per article need it raised.
        """
        self._call(
            f"setting annotators per task of project {project.title!r}",
            lambda: self._client.projects.update(id=project.id, maximum_annotations=annotators),
        )
        return replace(project, annotators_per_task=annotators)

    def show_predictions_of(self, project: Project, version: str) -> None:
        """Make the labeling stream pre-annotate tasks with this model version's predictions.

        Label Studio hands annotators only the predictions of the project's ``model_version`` once
        it is set (importing tasks with predictions sets it when it is empty, as ``push`` does).
        """
        self._call(
            f"choosing the predictions shown in project {project.title!r}",
            lambda: self._client.projects.update(id=project.id, model_version=version),
        )

    def shown_version(self, project: Project) -> str:
        """The model version whose predictions the labeling stream shows (the project's ``model_version``)."""
        answer = self._request(f"reading project {project.title!r}", "GET", f"api/projects/{project.id}")
        return str((answer or {}).get("model_version") or "")

    def project_predictions(self, project: Project) -> list[dict]:
        """Every prediction in the project, with its task, model version and regions (one request)."""
        answer = self._request(
            f"listing predictions of project {project.title!r}",
            "GET",
            "api/predictions",
            params={"project": project.id},
        )
        return list(answer or [])

    def delete_prediction(self, prediction_id: int) -> None:
        self._call(
            f"deleting prediction {prediction_id}",
            lambda: self._client.predictions.delete(id=prediction_id, request_options={"max_retries": 0}),
        )

    def import_predictions(self, project: Project, payloads: Sequence[dict]) -> int:
        """Attach predictions (each with its ``task`` id) in one request; never retried (no de-duplication)."""
        if not payloads:
            return 0
        answer = self._call(
            f"importing {len(payloads)} predictions into project {project.title!r}",
            lambda: self._client.projects.import_predictions(
                id=project.id, request=list(payloads), request_options={"max_retries": 0}
            ),
        )
        return int(getattr(answer, "created", None) or len(payloads))

    # --- tasks -----------------------------------------------------------------------------------

    def task_index(self, project: Project) -> dict[str, list[tuple[int, str]]]:
        """``doc_id`` → [(task id, text hash)] for every task: one request, not the SDK's slow pager."""
        index: dict[str, list[tuple[int, str]]] = {}
        page = 1
        while True:
            answer = self._request(
                f"listing the tasks of project {project.title!r}",
                "GET",
                "api/tasks",
                params={"project": project.id, "page_size": 10000, "page": page, **_TASK_FIELDS},
            )
            tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
            for task in tasks:
                data = task.get("data") or {}
                index.setdefault(str(data.get("doc_id", "")), []).append(
                    (int(task["id"]), str(data.get("text_sha256") or lsformat.text_sha256(str(data.get("text", "")))))
                )
            total = answer.get("total", 0) if isinstance(answer, dict) else 0
            if not tasks or page * 10000 >= total:
                return index
            page += 1

    def import_tasks(self, project: Project, payloads: Sequence[dict]) -> list[int]:
        """One bulk import, never retried here: Label Studio imports atomically but de-duplicates nothing."""
        answer = self._call(
            f"importing {len(payloads)} tasks into project {project.title!r}",
            lambda: self._client.projects.import_tasks(
                id=project.id, request=list(payloads), return_task_ids=True, request_options={"max_retries": 0}
            ),
        )
        return list(answer.task_ids or [])

    def annotate(
        self,
        task_id: int,
        spans: Iterable[Span] = (),
        *,
        results: Sequence[dict] | None = None,
        user_id: int | None = None,
        ground_truth: bool = False,
        cancelled: bool = False,
    ) -> int:
        """Save an annotation the way the labeling view does (also used by tests and scripted imports)."""
        regions = list(results) if results is not None else [lsformat.span_result(span) for span in spans]
        extra: dict[str, Any] = {"completed_by": user_id} if user_id is not None else {}
        created = self._call(
            f"saving an annotation on task {task_id}",
            lambda: self._client.annotations.create(
                id=task_id,
                result=regions,
                ground_truth=ground_truth,
                was_cancelled=cancelled,
                request_options={"max_retries": 0},
                **extra,
            ),
        )
        return int(created.id)

    def add_user(self, email: str) -> int:
        """Create a user (an annotator) and return its id; an existing e-mail returns that user's id."""
        existing = {address: number for number, address in self.users().items()}
        if email in existing:
            return existing[email]
        created = self._call(f"creating user {email}", lambda: self._client.users.create(email=email, username=email))
        return int(created.id)

    def predictions(self, task_id: int) -> list[dict]:
        """The predictions on a task (the JSON export lists only their ids)."""
        answer = self._request(
            f"listing predictions of task {task_id}", "GET", "api/predictions", params={"task": task_id}
        )
        return list(answer or [])

    def next_task(self, project: Project) -> dict | None:
        """The task the labeling stream hands this key's user next, with the predictions it shows; None when done."""

        def send() -> dict | None:
            response = self._client._client_wrapper.httpx_client.request(
                f"api/projects/{project.id}/next", method="GET", request_options={"max_retries": 0}
            )
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return dict(response.json())

        return self._read(f"asking project {project.title!r} for the next task", send)

    def save_draft(self, task_id: int, spans: Iterable[Span]) -> int:
        """A draft, as the labeling view autosaves it (the SDK has no method for this)."""
        answer = self._request(
            f"saving a draft on task {task_id}",
            "POST",
            f"api/tasks/{task_id}/drafts",
            json={"result": [lsformat.span_result(span) for span in spans]},
        )
        return int(answer["id"])

    def export_json(self, project: Project, sink: Callable[[bytes], None] | None = None) -> bytes:
        """The project's full JSON export (every task, annotation and draft), streamed through ``sink``."""

        def download() -> bytes:
            chunks = []
            for chunk in self._client.projects.exports.download_sync(
                id=project.id, export_type="JSON", download_all_tasks=True, request_options={"max_retries": 0}
            ):
                chunks.append(chunk)
                if sink is not None:
                    sink(chunk)
            return b"".join(chunks)

        return self._read(f"exporting project {project.title!r}", download)


def connect(url: str | None = None, api_key: str | None = None, root: Path | None = None) -> Studio:
    """Connect to ``url`` (else ``LABEL_STUDIO_URL``, else the local server of ``annotate studio up``).

    The key comes from ``api_key``, else ``LABEL_STUDIO_API_KEY``, else — for the local server
    only — the credentials file that ``studio up`` wrote (mode 0600).
    """
    from annotate import server

    url = url or os.environ.get(URL_ENV, "")
    api_key = api_key or os.environ.get(KEY_ENV, "")
    local = server.local_url(root) if root is not None else None
    if not url:
        if local is None:
            raise StudioUnreachable(f"no Label Studio to talk to: run `annotate studio up`, or set {URL_ENV}")
        url = local
    if not api_key and root is not None and url.rstrip("/") == (local or "").rstrip("/"):
        api_key = server.read_credentials(server.StudioPaths(root).credentials).token
    return Studio(url, api_key)


# --- push ----------------------------------------------------------------------------------------


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
    retries: int = 0
    annotators_per_task: int = 1
    annotators_per_task_updated: bool = False


def _prediction(spans: list[tuple[Span, float]], version: str) -> dict:
    score = min((s for _, s in spans), default=1.0)
    return lsformat.prediction_payload(sorted(span for span, _ in spans), version, round(score, 4))


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
    if annotators_per_task is not None and annotators_per_task < 1:
        raise StudioProjectError(f"annotators per task must be at least 1, not {annotators_per_task}")
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
    return report


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
        lsformat.task_payload(article, _prediction(spans, predictor.model_version))
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


# --- pull ----------------------------------------------------------------------------------------


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


def project_slug(title: str) -> str:
    """A file-name-safe form of a project title."""
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "project"


def snapshot_path(snapshots: Path, title: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return snapshots / project_slug(title) / f"export-{stamp}.json.gz"


def _checked_export(
    studio: Studio, project: Project, schema: Schema, consequence: str, snapshot: Path | None = None
) -> lsformat.ExportReading:
    """Export the project and validate every span; any problem raises :class:`PullError` listing them all.

    With ``snapshot``, the raw export is kept there (compressed while the export is parsed: zlib
    releases the GIL). The user list is fetched while the server builds the export (it sends the
    first byte only when the whole export is ready). ``consequence`` ends the error message: what
    was (not) done because of it.
    """
    with ThreadPoolExecutor(max_workers=1) as meanwhile:
        asked = meanwhile.submit(studio.users)
        raw = studio.export_json(project)
        users = asked.result()
    with ThreadPoolExecutor(max_workers=1) as background:
        saved = (
            background.submit(lambda: atomic_write_bytes(snapshot, gzip.compress(raw, compresslevel=3, mtime=0)))
            if snapshot is not None
            else None
        )
        reading = lsformat.parse_export(raw, schema, users)
        if saved is not None:
            saved.result()
    if reading is None:
        kept = f" (kept in {snapshot})" if snapshot is not None else ""
        raise StudioError(f"Label Studio at {studio.url} sent an export that is not a JSON list{kept}")
    if reading.problems:
        raise PullError(
            f"{len(reading.problems)} problem(s) in project {project.title!r}; {consequence}", reading.problems
        )
    return reading


def pull(
    studio: Studio,
    *,
    title: str,
    schema: Schema,
    gold_path: Path,
    pulled_path: Path,
    snapshots: Path,
    policy: str = lsformat.DEFAULT_POLICY,
    allow_removed: bool = False,
    allow_empty: bool = False,
) -> PullReport:
    """Export the project, keep the raw export, validate every span, write pulled annotations and gold.

    Any span that fails validation (and cannot be repaired from UTF-16 offsets) stops the pull with
    every problem listed: the raw export is kept, pulled and gold files are left as they were. So
    does a gold that would lose documents the previous gold had, unless ``allow_removed``, and an
    article whose chosen annotation was submitted with no spans, unless ``allow_empty`` (then it is
    gold with zero spans, and listed in the report's ``empty``).
    """
    if policy not in lsformat.POLICIES:
        raise StudioError(f"unknown pull policy {policy!r}; choose one of {', '.join(lsformat.POLICIES)}")
    project = studio.project(title)
    snapshot = snapshot_path(snapshots, title)
    with ThreadPoolExecutor(max_workers=1) as background:
        # The previous gold is read while the server builds the export (the download mostly waits).
        earlier = background.submit(lambda: read_gold(gold_path) if gold_path.exists() else [])
        reading = _checked_export(
            studio, project, schema, f"nothing written to {gold_path} (raw export kept in {snapshot})", snapshot
        )
    previous: list[AnnotatedDoc] = earlier.result()
    gold = lsformat.gold_from_pulled(reading.annotations, reading.texts, policy, title)
    empty = lsformat.empty_submissions(gold, reading.annotations)
    if empty and not allow_empty:
        shown = ", ".join(f"task {task} ({doc_id})" for task, doc_id in empty[:10]) + (", …" if len(empty) > 10 else "")
        raise PullError(
            f"{len(empty)} article(s) of {title!r} submitted with no spans: {shown}; nothing written. "
            f"Annotators should Skip an article rather than submit it empty; pass --allow-empty to keep them "
            f"as gold with no spans"
        )
    diff = lsformat.diff_gold(previous, gold)
    if diff.docs_removed and not allow_removed:
        shown = ", ".join(diff.docs_removed[:5]) + (", …" if len(diff.docs_removed) > 5 else "")
        raise PullError(
            f"pulling {title!r} would remove {len(diff.docs_removed)} document(s) from {gold_path} ({shown}): "
            f"they have no annotation the {policy!r} policy takes; nothing written. Use --allow-removed to "
            f"accept, or --gold to write elsewhere"
        )
    write_pulled(pulled_path, reading.annotations)
    sha = write_gold(gold_path, gold)
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
    )


# --- several annotators: every annotation in memory, and a review set back --------------------------


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
    reading = _checked_export(studio, project, schema, "fix them in Label Studio first (nothing was compared)")
    articles = tuple(Article(doc_id, text) for doc_id, text in sorted(reading.texts.items()))
    return ProjectAnnotations(title, tuple(reading.annotations), articles, tuple(reading.repairs))


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
    kept: set[int] = set()
    for prediction in sorted(studio.project_predictions(project), key=lambda p: int(p["id"])):
        if not is_review_version(str(prediction.get("model_version") or "")):
            continue
        task_id = int(prediction["task"])
        same = task_id in wanted and lsformat.same_prediction(prediction, wanted[task_id])
        if same and task_id not in kept:
            kept.add(task_id)
            report.unchanged += 1
        else:
            studio.delete_prediction(int(prediction["id"]))
            report.removed += 1
    missing = [{"task": task_id, **payload} for task_id, payload in wanted.items() if task_id not in kept]
    studio.import_predictions(project, missing)
    report.created = len(missing)
    if wanted:
        studio.show_predictions_of(project, model_version)
    elif is_review_version(studio.shown_version(project)):
        studio.show_predictions_of(project, "")
    return report


__all__ = [
    "Predictor",
    "Project",
    "PullReport",
    "PulledAnnotation",
    "ProjectAnnotations",
    "PushReport",
    "ReviewReport",
    "Studio",
    "connect",
    "ensure_project",
    "fetch_annotations",
    "load_predictor",
    "model_version",
    "pull",
    "push",
    "is_review_version",
    "review_version",
    "send_review",
]
