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
from annotate.acceptance import AcceptanceReport, ShownPrediction, acceptance
from annotate.corpus import check_pull_targets, read_gold, write_pulled_and_gold
from annotate.errors import (
    PullError,
    StudioAuthError,
    StudioError,
    StudioProjectError,
    StudioUnreachable,
    redact_url,
)
from annotate.labels import Schema, label_studio_config, labels_in_config
from annotate.predict import (  # noqa: F401  (part of this module's API)
    Predictor,
    label_studio_prediction,
    load_predictor,
    model_version,
)
from annotate.records import AnnotatedDoc, Article, Problem, PulledAnnotation, Span, text_sha256

if TYPE_CHECKING:
    from annotate.adjudicate import ReviewItem
    from annotate.review import ReviewPair

URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_BATCH = 5000
READ_TIMEOUT_S = 300.0
ANSWER_TIMEOUT_S = 15.0  # how long the first request may take before the server counts as not answering
TITLE_LENGTH = (3, 50)  # what Label Studio accepts for a project title
_TASK_FIELDS = {"fields": "task_only", "include": "id,data"}


@dataclass(frozen=True)
class Project:
    id: int
    title: str
    label_config: str
    instructions: str = ""
    annotators_per_task: int = 1


@dataclass(frozen=True)
class ProjectSummary:
    """A project as the server lists it: what ``annotate studio projects`` shows."""

    project: Project
    tasks: int = 0
    annotated: int = 0
    predictions: int = 0

    @property
    def title(self) -> str:
        return self.project.title

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ProjectSummary:
        project = Project(
            int(item["id"]),
            str(item.get("title") or ""),
            str(item.get("label_config") or ""),
            str(item.get("expert_instruction") or ""),
            int(item.get("maximum_annotations") or 1),
        )
        return cls(
            project,
            int(item.get("task_number") or 0),
            int(item.get("num_tasks_with_annotations") or 0),
            int(item.get("total_predictions_number") or 0),
        )


class Studio:
    """A connection to one Label Studio server. The key is kept out of ``repr`` and every message."""

    def __init__(
        self, url: str, api_key: str, *, timeout: float = READ_TIMEOUT_S, answer_timeout: float = ANSWER_TIMEOUT_S
    ) -> None:
        url = checked_url(url)
        self.url = redact_url(url).rstrip("/")  # what messages show: never a user:password@
        if not api_key:
            raise StudioAuthError(
                f"no API key for Label Studio at {self.url}: set {KEY_ENV} (or run `annotate studio up`)"
            )
        if api_key != api_key.strip() or any(c.isspace() for c in api_key):
            raise StudioAuthError(f"{KEY_ENV} holds a space or line break (copied with a newline?); remove it")
        self.read_backoff_s = 0.5
        self._key = api_key
        self._probe(url.rstrip("/"), answer_timeout)
        self._client = self._call(
            "connect",
            lambda: LabelStudio(base_url=url.rstrip("/"), api_key=api_key, max_retries=0, timeout=timeout),
        )

    def _probe(self, url: str, timeout: float) -> None:
        """One quick unauthenticated GET, so a server that never answers or is not HTTP fails in seconds."""
        try:
            httpx.get(f"{url}/health", timeout=timeout)
        except httpx.TimeoutException:
            error: StudioError = StudioUnreachable(
                f"Label Studio at {self.url} did not answer within {timeout:.0f} s; is the address right?"
            )
        except (httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.DecodingError):
            error = StudioUnreachable(f"{self.url} does not speak HTTP; is {URL_ENV} the Label Studio address?")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError):
            return  # nothing listening and the like: the first real request names it, with its action
        else:
            return
        raise error

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
        except httpx.InvalidURL:
            error = StudioError(f"{self.url}: not a valid URL for Label Studio ({URL_ENV})")
        except UnicodeError:
            error = StudioError(f"{action}: holds text that is not valid Unicode (a lone surrogate?); nothing sent")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pydantic's too: not the API's shape
            error = StudioError(
                f"Label Studio at {self.url} answered {action} with something that is not its API "
                f"({type(exc).__name__}); is {URL_ENV} the Label Studio address?"
            )
        raise error  # outside the except blocks: no chained SDK exception can carry headers along

    def _api_error(self, action: str, status: int | None, body: Any) -> StudioError:
        if status in (401, 403):
            return StudioAuthError(
                f"Label Studio at {self.url} refused the API key (HTTP {status} during {action}); "
                f"check {KEY_ENV} (a legacy token or a personal access token)"
            )
        detail = body.get("validation_errors") or body.get("detail") if isinstance(body, dict) else body
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

    def projects(self, title: str | None = None) -> list[ProjectSummary]:
        """Every project on the server (or those whose title contains ``title``), with its counts.

        Pages are followed by their ``next`` link, never asked for past the end: Label Studio logs
        a traceback ("Invalid page") for each such request, as the SDK's pager makes on every list.
        """
        found: list[ProjectSummary] = []
        page = 1
        while True:
            params: dict[str, Any] = {"page_size": 100, "page": page} | ({"title": title} if title else {})
            action = f"looking up project {title!r}" if title else "listing projects"
            answer = self._request(action, "GET", "api/projects", params=params)
            results = answer.get("results", []) if isinstance(answer, dict) else list(answer or [])
            found.extend(ProjectSummary.from_api(item) for item in results)
            if not isinstance(answer, dict) or not answer.get("next") or not results:
                return found
            page += 1

    def find_project(self, title: str) -> Project | None:
        found = [p for p in self.projects(title) if p.title == title]
        if len(found) > 1:
            raise StudioProjectError(f"{len(found)} projects are titled {title!r} on {self.url}; rename all but one")
        return found[0].project if found else None

    def project(self, title: str) -> Project:
        found = self.find_project(title)
        if found is None:
            titles = sorted(p.title for p in self.projects())
            there = f"projects there: {', '.join(repr(t) for t in titles[:20])}{', …' if len(titles) > 20 else ''}"
            raise StudioProjectError(
                f"no project titled {title!r} on {self.url} ({there if titles else 'no projects there'}; "
                f"`annotate studio projects` lists them, `annotate push` creates one)"
            )
        return found

    def create_project(self, title: str, config: str, instructions: str) -> Project:
        check_title(title)
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


def check_title(title: str) -> None:
    """Label Studio refuses a title outside 3–50 characters with a bare "Validation error"; say why first."""
    if not TITLE_LENGTH[0] <= len(title.strip()) <= TITLE_LENGTH[1]:
        raise StudioProjectError(
            f"project title {title!r} has {len(title.strip())} characters; Label Studio needs "
            f"{TITLE_LENGTH[0]} to {TITLE_LENGTH[1]} (--project, or project in [tool.annotate])"
        )


def checked_url(url: str) -> str:
    """An http(s) URL with a host; anything else is our one-line error naming the URL (user-info redacted)."""
    shown = redact_url(url)
    if not re.match(r"^https?://", url, re.IGNORECASE):
        raise StudioUnreachable(f"{URL_ENV} {shown!r} must start with http:// or https://")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
        raise StudioUnreachable(f"{URL_ENV} {shown!r} is not a valid URL") from None
    if not parsed.host:
        raise StudioUnreachable(f"{URL_ENV} {shown!r} names no host")
    return url


def connect(url: str | None = None, api_key: str | None = None, root: Path | None = None) -> Studio:
    """Connect to ``url`` (else ``LABEL_STUDIO_URL``, else the local server of ``annotate studio up``).

    The key comes from ``api_key``, else ``LABEL_STUDIO_API_KEY``, else — for the local server
    only, however its URL is spelled (``localhost`` or ``127.0.0.1``) — the credentials file that
    ``studio up`` wrote (mode 0600). ``root`` is the project folder (default: the one holding the
    working directory), so a notebook in the project finds the local server as the CLI does.
    """
    from annotate import server
    from annotate.settings import find_root

    root = root if root is not None else find_root()
    url = url or os.environ.get(URL_ENV, "")
    api_key = api_key or os.environ.get(KEY_ENV, "")
    local = server.local_url(root)
    if not url:
        if local is None:
            raise StudioUnreachable(f"no Label Studio to talk to: run `annotate studio up`, or set {URL_ENV}")
        url = local
    if not api_key and local is not None and server.same_server(url, local):
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
    predictions_added: int = 0
    predictions_updated: int = 0
    predictions_unchanged: int = 0
    retries: int = 0
    annotators_per_task: int = 1
    annotators_per_task_updated: bool = False


def _prediction(spans: list[tuple[Span, float]], version: str) -> dict:
    return label_studio_prediction(spans, version)


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
                wanted[task_id] = _prediction(spans, version)
    had: set[int] = set()
    kept: set[int] = set()
    for stored in sorted(studio.project_predictions(project), key=lambda p: int(p["id"])):
        task_id = int(stored["task"])
        if stored.get("model_version") != version or task_id not in wanted:
            continue
        had.add(task_id)
        if task_id not in kept and lsformat.same_prediction(stored, wanted[task_id]):
            kept.add(task_id)
        else:
            studio.delete_prediction(int(stored["id"]))
    missing = [{"task": task_id, **payload} for task_id, payload in wanted.items() if task_id not in kept]
    for start in range(0, len(missing), batch_size):
        studio.import_predictions(project, missing[start : start + batch_size])
    report.predictions_unchanged = len(kept)
    report.predictions_updated = len(had - kept)
    report.predictions_added = len(wanted) - len(had)


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
    kept: list[str] = field(default_factory=list)
    dry_run: bool = False
    per_article: dict[str, lsformat.GoldDiff] = field(default_factory=dict)
    acceptance: AcceptanceReport | None = None


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
    check_pull_targets(pulled_path, gold_path, snapshot)
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
        # The snapshot too only now: a refused pull writes nothing at all.
        sha = write_pulled_and_gold(pulled_path, reading.annotations, gold_path, gold, (snapshot, compressed))
        accepted = (
            prediction_acceptance(studio, project, reading.annotations, reading.texts, schema)
            if reading.predictions
            else None
        )
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
    reading, _ = _checked_export(studio, project, schema, "fix them in Label Studio first (nothing was compared)")
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
    report.created, report.unchanged, report.removed = _sync_predictions(studio, project, wanted, is_review_version)
    if wanted:
        studio.show_predictions_of(project, model_version)
    elif is_review_version(studio.shown_version(project)):
        studio.show_predictions_of(project, "")
    return report


def _sync_predictions(
    studio: Studio, project: Project, wanted: Mapping[int, dict], owned: Callable[[str], bool]
) -> tuple[int, int, int]:
    """Make the project's predictions whose version is ``owned`` exactly ``wanted`` (task id → payload).

    A task already carrying the same prediction keeps it; every other owned prediction is deleted;
    the missing ones are imported. Predictions of versions not owned are left alone. Returns
    (created, unchanged, removed).
    """
    kept: set[int] = set()
    removed = 0
    for prediction in sorted(studio.project_predictions(project), key=lambda p: int(p["id"])):
        if not owned(str(prediction.get("model_version") or "")):
            continue
        task_id = int(prediction["task"])
        same = task_id in wanted and lsformat.same_prediction(prediction, wanted[task_id])
        if same and task_id not in kept:
            kept.add(task_id)
        else:
            studio.delete_prediction(int(prediction["id"]))
            removed += 1
    missing = [{"task": task_id, **payload} for task_id, payload in wanted.items() if task_id not in kept]
    studio.import_predictions(project, missing)
    return len(missing), len(kept), removed


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
    report.predictions_created, report.predictions_unchanged, report.predictions_removed = _sync_predictions(
        studio, project, wanted, lambda stored: stored == version
    )
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


# --- the model in the loop: an ML backend (`annotate serve`) connected to a project -------------------

BACKEND_TITLE = "annotate"
SAMPLING = {"uncertainty": "Uncertainty sampling", "sequential": "Sequential sampling", "random": "Uniform sampling"}


@dataclass
class BackendLink:
    """What ``connect_backend`` left in the project."""

    project: str
    backend_id: int
    url: str
    model_version: str
    created: bool = False
    updated: bool = False
    sampling: str = ""
    refreshed: int = 0


def _ml_request(studio: Studio, action: str, method: str, path: str, **kwargs: Any) -> Any:
    """An /api/ml call; a 403 there is Label Studio refusing the URL (SSRF rules), not the API key."""

    def send() -> Any:
        response = studio._client._client_wrapper.httpx_client.request(
            path, method=method, request_options={"max_retries": 0}, **kwargs
        )
        if response.status_code == 403 and "key" not in response.text.lower():
            detail = re.sub(r"\s+", " ", response.text)[:200]
            raise StudioProjectError(
                f"Label Studio at {studio.url} refused the ML backend URL ({detail}); a backend on a loopback or "
                f"private address needs the server started with ML_BLOCK_LOCAL_IP=false and "
                f"SSRF_PROTECTION_ENABLED=false (`annotate studio up` does this)"
            )
        if response.status_code == 400:
            detail = re.sub(r"\s+", " ", response.text)[:300]
            raise StudioProjectError(f"Label Studio at {studio.url} could not reach the ML backend: {detail}")
        response.raise_for_status()
        return response.json() if response.content else None

    return studio._call(action, send)


def unlabeled_tasks(studio: Studio, project: Project) -> list[int]:
    """Ids of the project's tasks that no annotation finishes yet (what a new model should pre-annotate)."""
    answer = studio._request(
        f"listing unlabeled tasks of project {project.title!r}",
        "GET",
        "api/tasks",
        params={"project": project.id, "page_size": 10000, "fields": "task_only", "include": "id,is_labeled"},
    )
    tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
    return sorted(int(task["id"]) for task in tasks if not task.get("is_labeled"))


def refresh_predictions(studio: Studio, *, title: str, model_version: str) -> int:
    """Show ``model_version``'s predictions and have the backend predict every unlabeled task with it.

    Label Studio's uncertainty sampling and its labeling view only use predictions of the project's
    ``model_version``. The Data Manager action has the backend predict the unlabeled tasks (it
    skips tasks that already hold this version), then the project's ``model_version`` is set to
    it (Label Studio accepts only a version some prediction carries). Returns how many tasks were
    asked for.
    """
    project = studio.project(title)
    todo = unlabeled_tasks(studio, project)
    if todo:
        studio._call(
            f"asking the ML backend to predict {len(todo)} tasks of project {title!r}",
            lambda: studio._client._client_wrapper.httpx_client.request(
                "api/dm/actions",
                method="POST",
                params={"id": "retrieve_tasks_predictions", "project": project.id},
                json={"selectedItems": {"all": False, "included": todo}},
                request_options={"max_retries": 0, "timeout_in_seconds": READ_TIMEOUT_S},
            ).raise_for_status(),
        )
        # Only a version that predictions (or a backend's title) carry is accepted here, so this comes after.
        studio.show_predictions_of(project, model_version)
    return len(todo)


def connect_backend(
    studio: Studio,
    *,
    title: str,
    backend_url: str,
    sampling: str | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> BackendLink:
    """Connect the ML backend at ``backend_url`` to the project; running it again changes nothing.

    Our backend is found by its title: a changed URL is updated in place, never added twice.
    Label Studio registers ``<url>/webhook`` by itself, without the backend's basic auth; with
    ``basic_auth`` that webhook gets the header too. Then the project shows the served model's
    predictions and every unlabeled task is predicted (see :func:`refresh_predictions`).
    """
    if sampling is not None and sampling not in SAMPLING:
        raise StudioProjectError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLING)}")
    url = backend_url.rstrip("/")
    project = studio.project(title)
    body: dict[str, Any] = {"url": url, "project": project.id, "title": BACKEND_TITLE, "is_interactive": True}
    if basic_auth is not None:
        body.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
    else:
        body["auth_method"] = "NONE"
    listed = _ml_request(
        studio, f"listing ML backends of project {title!r}", "GET", "api/ml", params={"project": project.id}
    )
    ours = [b for b in listed or [] if b.get("title") == BACKEND_TITLE or str(b.get("url", "")).rstrip("/") == url]
    for extra in ours[1:]:
        _ml_request(studio, f"removing a duplicate ML backend {extra['id']}", "DELETE", f"api/ml/{extra['id']}")
    link = BackendLink(title, 0, url, "")
    if ours:
        answer = _ml_request(
            studio, f"updating the ML backend of {title!r}", "PATCH", f"api/ml/{ours[0]['id']}", json=body
        )
        link.updated = str(ours[0].get("url", "")).rstrip("/") != url or basic_auth is not None
    else:
        answer = _ml_request(studio, f"connecting the ML backend to {title!r}", "POST", "api/ml", json=body)
        link.created = True
    link.backend_id = int(answer["id"])
    link.model_version = str(answer.get("model_version") or "")
    if answer.get("state") not in (None, "CO"):
        raise StudioProjectError(
            f"Label Studio cannot use the ML backend at {url} (state {answer.get('state')}: "
            f"{str(answer.get('error_message') or '')[:200]}); is `annotate serve` running there?"
        )
    if basic_auth is not None:
        _authorize_webhook(studio, project, url, basic_auth)
    if sampling is not None:
        studio._request(
            f"setting the sampling of project {title!r}",
            "PATCH",
            f"api/projects/{project.id}",
            json={"sampling": SAMPLING[sampling]},
        )
        link.sampling = SAMPLING[sampling]
    if link.model_version:
        link.refreshed = refresh_predictions(studio, title=title, model_version=link.model_version)
    return link


def _authorize_webhook(studio: Studio, project: Project, url: str, basic_auth: tuple[str, str]) -> None:
    """Label Studio sends the backend's basic auth on /predict but not on the webhook it registers: add it."""
    import base64

    token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
    hooks = studio._request("listing webhooks", "GET", "api/webhooks", params={"project": project.id}) or []
    for hook in hooks:
        if str(hook.get("url", "")).rstrip("/") == f"{url}/webhook":
            studio._request(
                "adding the backend's credentials to its webhook",
                "PATCH",
                f"api/webhooks/{hook['id']}/",
                json={"headers": {"Authorization": f"Basic {token}"}},
            )


__all__ = [
    "BackendLink",
    "Predictor",
    "Project",
    "ProjectSummary",
    "PullReport",
    "PulledAnnotation",
    "ProjectAnnotations",
    "PushReport",
    "ErrorReviewReport",
    "ReviewReport",
    "Studio",
    "connect",
    "connect_backend",
    "ensure_project",
    "fetch_annotations",
    "load_predictor",
    "model_version",
    "pull",
    "push",
    "refresh_predictions",
    "is_review_version",
    "review_version",
    "send_errors_for_review",
    "send_review",
    "task_links",
]
