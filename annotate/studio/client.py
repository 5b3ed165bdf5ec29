"""The Label Studio client: the only module that imports ``label_studio_sdk`` or sends API requests to it.

It speaks our domain's words (projects, tasks, spans, predictions, ML backends) and raises our
errors: nothing from httpx or the SDK leaves this module, neither raised nor chained, because
those exceptions can carry request headers, and with them the API key. The workflows (push, pull,
review sets, the backend link) call its public methods only.

Writes are never retried by the SDK (``max_retries=0``): a retried import would duplicate tasks,
since Label Studio de-duplicates nothing. ``push`` instead reconciles by ``data.doc_id`` before
every batch and after every failure, so running it again after a crash finishes the job.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotate import lsformat
from annotate.errors import (
    StudioAuthError,
    StudioError,
    StudioProjectError,
    StudioUnreachable,
    redact_url,
    redact_urls,
)
from annotate.records import Span
from annotate.settings import find_root
from annotate.studio import local

URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_BATCH = 5000  # tasks or predictions per upload request
READ_TIMEOUT_S = 300.0
ANSWER_TIMEOUT_S = 15.0  # how long the first request may take before the server counts as not answering
TITLE_LENGTH = (3, 50)  # what Label Studio accepts for a project title
TASK_PAGE = 10_000  # tasks per listing request (Label Studio lists 10,000 in about 3 s)


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
        """Text from the server without our key and without any URL's ``user:password@`` (ours, sent back)."""
        return redact_urls(text.replace(self._key, "***") if self._key else text)

    def _send(self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any) -> httpx.Response:
        """A plain API request through the SDK's authenticated client (for calls the SDK lacks or pages slowly)."""
        options: dict[str, Any] = {"max_retries": 0}
        if timeout_s is not None:
            options["timeout_in_seconds"] = timeout_s
        return self._client._client_wrapper.httpx_client.request(path, method=method, request_options=options, **kwargs)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json() if response.content else None

    def _request(self, action: str, method: str, path: str, **kwargs: Any) -> Any:
        """A plain API request's JSON answer; a GET is retried like every read, nothing else is."""

        def send() -> Any:
            return self._json(self._send(method, path, **kwargs))

        return self._read(action, send) if method == "GET" else self._call(action, send)

    def _ml_request(self, action: str, method: str, path: str, **kwargs: Any) -> Any:
        """An /api/ml call; a 403 there is Label Studio refusing the URL (SSRF rules), not the API key."""

        def send() -> Any:
            response = self._send(method, path, **kwargs)
            if response.status_code == 403 and "key" not in response.text.lower():
                detail = self._refusal(response)
                raise StudioProjectError(
                    f"Label Studio at {self.url} refused the ML backend URL ({detail}); a backend on a loopback or "
                    f"private address needs the server started with ML_BLOCK_LOCAL_IP=false and "
                    f"SSRF_PROTECTION_ENABLED=false (`annotate studio up` does this)"
                )
            if response.status_code == 400:
                detail = self._refusal(response)
                raise StudioProjectError(f"Label Studio at {self.url} could not reach the ML backend: {detail}")
            return self._json(response)

        return self._call(action, send)

    def _refusal(self, response: httpx.Response) -> str:
        """Label Studio's reason for refusing a request, as one line: the messages of its JSON body, not the JSON."""
        try:
            body = response.json()
        except ValueError:
            body = response.text
        messages: list[str] = []

        def collect(value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    if key not in ("status_code", "id", "version"):
                        collect(inner)
            elif isinstance(value, list):
                for inner in value:
                    collect(inner)
            elif value not in (None, ""):
                messages.append(str(value))

        collect(body)
        return self._scrub(re.sub(r"\s+", " ", "; ".join(dict.fromkeys(messages)))[:300])

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

    def project_settings(self, project: Project) -> dict:
        """The project as Label Studio holds it: every setting (``model_version``, ``sampling``, …) and count."""
        return dict(self._request(f"reading project {project.title!r}", "GET", f"api/projects/{project.id}") or {})

    def shown_version(self, project: Project) -> str:
        """The model version whose predictions the labeling stream shows (the project's ``model_version``)."""
        return str(self.project_settings(project).get("model_version") or "")

    def set_sampling(self, project: Project, sampling: str) -> None:
        """The order the labeling stream hands out tasks in, as Label Studio names it ("Uncertainty sampling", …)."""
        self._request(
            f"setting the sampling of project {project.title!r}",
            "PATCH",
            f"api/projects/{project.id}",
            json={"sampling": sampling},
        )

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
        """Attach predictions (each with its ``task`` id) in one request; never retried (no de-duplication).

        The body is encoded by ``json.dumps``: the SDK's encoder walks every region in Python, ~8×
        slower, and a refresh sends a region for every predicted span of every task.
        """
        if not payloads:
            return 0
        answer = self._request(
            f"importing {len(payloads)} predictions into project {project.title!r}",
            "POST",
            f"api/projects/{project.id}/import/predictions",
            content=json.dumps(list(payloads)).encode("ascii"),
            headers={"Content-Type": "application/json"},
        )
        return int(answer.get("created", len(payloads))) if isinstance(answer, dict) else len(payloads)

    # --- tasks -----------------------------------------------------------------------------------

    def tasks(self, project: Project, fields: str) -> Iterator[dict]:
        """Every task of the project with only ``fields`` (say ``"id,data"``), in pages: not the SDK's slow pager."""
        page = 1
        while True:
            answer = self._request(
                f"listing the tasks of project {project.title!r}",
                "GET",
                "api/tasks",
                params={
                    "project": project.id,
                    "page_size": TASK_PAGE,
                    "page": page,
                    "fields": "task_only",
                    "include": fields,
                },
            )
            tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
            yield from tasks
            total = answer.get("total", 0) if isinstance(answer, dict) else 0
            if not tasks or page * TASK_PAGE >= total:
                return
            page += 1

    def tasks_to_predict(
        self, project: Project, version: str, page_size: int, *, after: int = 0
    ) -> tuple[list[dict], int]:
        """The first ``page_size`` unlabeled tasks with an id above ``after`` holding no prediction of ``version``
        (id and data, by id), and how many such tasks there are.

        Label Studio filters on its side (the Data Manager's filters): a task that gets the version
        drops out, and ``after`` (the last id listed) pages on while listed tasks are still being predicted.
        """
        items = [
            {"filter": "filter:tasks:is_labeled", "operator": "equal", "type": "Boolean", "value": False},
            _lacking(version),
        ]
        if after:
            items.append({"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": int(after)})
        action = f"listing the tasks of project {project.title!r} to predict with {version}"
        answer = self._task_query(action, project, items, page_size, "id,data")
        tasks = answer.get("tasks", []) if isinstance(answer, dict) else list(answer or [])
        return list(tasks), int(answer.get("total", len(tasks)) if isinstance(answer, dict) else len(tasks))

    def lacking_version(self, project: Project, version: str, task_ids: Sequence[int]) -> set[int]:
        """Which of ``task_ids`` hold no prediction of ``version`` now (one request)."""
        if not task_ids:
            return set()
        items = [
            {"filter": "filter:tasks:id", "operator": "in_list", "type": "Number", "value": [int(i) for i in task_ids]},
            _lacking(version),
        ]
        answer = self._task_query(
            f"checking which tasks of project {project.title!r} lack {version}", project, items, len(task_ids), "id"
        )
        tasks = answer.get("tasks", []) if isinstance(answer, dict) else list(answer or [])
        return {int(task["id"]) for task in tasks}

    def _task_query(self, action: str, project: Project, items: list[dict], page_size: int, include: str) -> Any:
        query = {"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:id"]}
        return self._request(
            action,
            "GET",
            "api/tasks",
            params={
                "project": project.id,
                "page_size": page_size,
                "page": 1,
                "fields": "task_only",
                "include": include,
                "query": json.dumps(query),
            },
        )

    def project_by_id(self, project_id: int) -> Project:
        """The project with this id (Label Studio's /setup and webhooks name a project by id)."""
        answer = self._request(f"reading project {project_id}", "GET", f"api/projects/{project_id}")
        return ProjectSummary.from_api(answer or {}).project

    def task_index(self, project: Project) -> dict[str, list[tuple[int, str]]]:
        """``doc_id`` → [(task id, text hash)] for every task."""
        index: dict[str, list[tuple[int, str]]] = {}
        for task in self.tasks(project, "id,data"):
            data = task.get("data") or {}
            index.setdefault(str(data.get("doc_id", "")), []).append(
                (int(task["id"]), str(data.get("text_sha256") or lsformat.text_sha256(str(data.get("text", "")))))
            )
        return index

    def task(self, task_id: int) -> dict:
        """One task as the labeling view loads it; with an ML backend connected, Label Studio may predict it first."""
        return dict(self._request(f"opening task {task_id}", "GET", f"api/tasks/{task_id}/") or {})

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

    def next_task(self, project: Project, *, attempts: int = 3) -> dict | None:
        """The task the labeling stream hands this key's user next, with the predictions it shows; None when done.

        ``attempts=1`` asks once, as an annotator's browser does (a load test counts what it would see).
        """

        def send() -> dict | None:
            response = self._send("GET", f"api/projects/{project.id}/next")
            return None if response.status_code == 404 else dict(self._json(response))

        return self._read(f"asking project {project.title!r} for the next task", send, attempts)

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

    # --- the model in the loop: ML backends, their webhooks, Data Manager predictions -------------

    def ml_backends(self, project: Project) -> list[dict]:
        """The ML backends connected to the project (Label Studio checks each one's health to answer)."""
        answer = self._ml_request(
            f"listing ML backends of project {project.title!r}", "GET", "api/ml", params={"project": project.id}
        )
        return list(answer or [])

    def register_ml_backend(
        self,
        project: Project,
        url: str,
        title: str,
        *,
        basic_auth: tuple[str, str] | None = None,
        backend_id: int | None = None,
    ) -> dict:
        """Connect the ML backend at ``url`` (with ``backend_id``: update that one); returns its id, state, version.

        Label Studio calls the backend's /health and /setup before answering, so a backend it cannot
        reach is named here. Every field is sent each time: an update without ``url`` fails there.
        """
        body: dict[str, Any] = {"url": url, "project": project.id, "title": title, "is_interactive": True}
        if basic_auth is not None:
            body.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
        else:
            body["auth_method"] = "NONE"
        if backend_id is None:
            action, method, path = f"connecting the ML backend to {project.title!r}", "POST", "api/ml"
        else:
            action, method, path = f"updating the ML backend of {project.title!r}", "PATCH", f"api/ml/{backend_id}"
        return dict(self._ml_request(action, method, path, json=body))

    def remove_ml_backend(self, backend_id: int) -> None:
        self._ml_request(f"removing ML backend {backend_id}", "DELETE", f"api/ml/{backend_id}")

    def train_ml_backend(self, backend_id: int) -> None:
        """What the Start training button does: Label Studio sends the backend a START_TRAINING webhook."""
        self._ml_request(
            f"starting the training of ML backend {backend_id}", "POST", f"api/ml/{backend_id}/train", json={}
        )

    def retrieve_predictions(self, project: Project, task_ids: Sequence[int]) -> None:
        """Have the project's ML backend predict these tasks and store the predictions.

        This is the Data Manager action: Label Studio skips the tasks that already hold the backend's
        current version, and answers only once the backend has predicted all the others.
        """
        self._request(
            f"asking the ML backend to predict {len(task_ids)} tasks of project {project.title!r}",
            "POST",
            "api/dm/actions",
            timeout_s=READ_TIMEOUT_S,
            params={"id": "retrieve_tasks_predictions", "project": project.id},
            json={"selectedItems": {"all": False, "included": list(task_ids)}},
        )

    def webhooks(self, project: Project) -> list[dict]:
        return list(self._request("listing webhooks", "GET", "api/webhooks", params={"project": project.id}) or [])

    def move_webhook(self, webhook_id: int, url: str) -> None:
        """Send the webhook to ``url`` from now on (Label Studio never moves the one it made for a backend)."""
        self._request("moving a webhook", "PATCH", f"api/webhooks/{webhook_id}/", json={"url": url})

    def set_webhook_headers(self, webhook_id: int, headers: Mapping[str, str]) -> None:
        """The headers Label Studio sends with the webhook (say, the backend's basic auth)."""
        self._request(
            "adding the backend's credentials to its webhook",
            "PATCH",
            f"api/webhooks/{webhook_id}/",
            json={"headers": dict(headers)},
        )


def _lacking(version: str) -> dict:
    """The Data Manager filter for tasks holding no prediction of ``version``."""
    return {
        "filter": "filter:tasks:predictions_model_versions",
        "operator": "not_contains",
        "type": "List",
        "value": [version],
    }


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
    root = root if root is not None else find_root()
    url = url or os.environ.get(URL_ENV, "")
    api_key = api_key or os.environ.get(KEY_ENV, "")
    local_server = local.local_url(root)
    if not url:
        if local_server is None:
            raise StudioUnreachable(f"no Label Studio to talk to: run `annotate studio up`, or set {URL_ENV}")
        url = local_server
    if not api_key and local_server is not None and local.same_server(url, local_server):
        api_key = local.read_credentials(local.StudioPaths(root).credentials).token
    return Studio(url, api_key)
