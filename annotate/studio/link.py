"""The model in the loop: our ML backend (``annotate serve``) connected to a project, its predictions refreshed.

Connecting is idempotent (our backend is found by its title), and after it, or after a retrained
model, every unlabeled task is predicted with the served version by :func:`refresh_project` (our
own loop of pages: list, predict, upload), so the labeling view and uncertainty sampling use the
newest model before anyone opens a task.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

from annotate.errors import StudioAuthError, StudioError, StudioProjectError, StudioUnreachable, redact_url
from annotate.model import Predictor, predict_tasks
from annotate.studio.client import Project, Studio

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


REFRESH_PAGE = 200  # tasks listed, predicted and uploaded at a time by a refresh


@dataclass
class RefreshReport:
    """What :func:`refresh_project` did: how many tasks lacked the version, and how many it predicted."""

    project: str
    model_version: str
    total: int = 0
    predicted: int = 0
    shown: bool = False


def unlabeled_tasks(studio: Studio, project: Project) -> list[int]:
    """Ids of the project's tasks that no annotation finishes yet (what a new model should pre-annotate)."""
    return sorted(int(task["id"]) for task in studio.tasks(project, "id,is_labeled") if not task.get("is_labeled"))


def refresh_project(
    studio: Studio,
    project: Project,
    predictor: Predictor,
    *,
    page_size: int = REFRESH_PAGE,
    progress: Callable[[int, int], None] | None = None,
) -> RefreshReport:
    """Store ``predictor``'s predictions on every unlabeled task that lacks its version, then show that version.

    Our own loop, not Label Studio's single /predict call (which gives up after 100 s and stores
    nothing): a page of tasks still lacking the version is listed, predicted (word batches, see
    :class:`~annotate.model.Predictor`) and uploaded, until none is left. A task that holds the
    version is never listed again, so an interrupted refresh resumes where it stopped, and
    tasks imported meanwhile are picked up. Only then does the project's ``model_version`` point
    at the version (uncertainty sampling and the labeling view use that version's predictions).
    ``progress(done, total)`` is called after every page.
    """
    version = predictor.model_version
    page, total = studio.tasks_to_predict(project, version, page_size)
    report = RefreshReport(project.title, version, total)
    if progress is not None:
        progress(0, total)
    previous: set[int] = set()
    while page:
        ids = [int(task["id"]) for task in page]
        if previous.intersection(ids):
            raise StudioProjectError(
                f"project {project.title!r}: task {min(previous.intersection(ids))} still lacks the predictions of "
                f"{version} after they were uploaded; refresh stopped"
            )
        predictions = predict_tasks(predictor, page)
        studio.import_predictions(
            project, [{"task": task_id, **p} for task_id, p in zip(ids, predictions, strict=True)]
        )
        report.predicted += len(ids)
        report.total = max(report.total, report.predicted)
        if progress is not None:
            progress(report.predicted, report.total)
        previous = set(ids)
        page, remaining = studio.tasks_to_predict(project, version, page_size)
        report.total = max(report.total, report.predicted + remaining)
    report.shown = _show(studio, project, version, report.predicted > 0)
    return report


def _show(studio: Studio, project: Project, version: str, predicted: bool) -> bool:
    """Point the project at ``version``; False when no task holds it (every task labeled: nothing to show)."""
    if not predicted and studio.shown_version(project) == version:
        return True
    try:
        studio.show_predictions_of(project, version)
    except (StudioUnreachable, StudioAuthError):
        raise
    except StudioError:
        if predicted:
            raise
        return False  # Label Studio accepts only a version some prediction carries
    return True


def wait_for_refresh(
    backend_url: str,
    *,
    basic_auth: tuple[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 24 * 3600,
    poll_s: float = 0.5,
) -> dict:
    """Follow the refresh the backend runs (its /health ``refresh``) until none runs or waits; its last state.

    Raises :class:`StudioProjectError` when the backend stops answering or the refresh failed.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    url = f"{backend_url.rstrip('/')}/health"
    while True:
        try:
            answer = httpx.get(url, auth=basic_auth, timeout=10.0)
            answer.raise_for_status()
            state = dict(answer.json().get("refresh") or {})
        except (httpx.HTTPError, ValueError, AttributeError):
            raise StudioProjectError(f"the ML backend at {backend_url} stopped answering during the refresh") from None
        if progress is not None and state.get("total"):
            progress(int(state.get("done") or 0), int(state["total"]))
        if not state.get("running") and not state.get("queued"):
            if state.get("error"):
                raise StudioProjectError(f"the ML backend could not refresh the predictions: {state['error']}")
            return state
        if time.monotonic() > deadline:
            raise StudioProjectError(f"the ML backend at {backend_url} was still refreshing after {timeout_s:.0f} s")
        time.sleep(poll_s)


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
    ``basic_auth`` that webhook gets the header too. The backend then refreshes the project's
    predictions by itself (its /setup starts :func:`refresh_project` in a child process); its
    /health reports the progress, which :func:`wait_for_refresh` follows.
    """
    if sampling is not None and sampling not in SAMPLING:
        raise StudioProjectError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLING)}")
    url = checked_backend_url(backend_url)
    shown = redact_url(url)
    project = studio.project(title)
    listed = studio.ml_backends(project)
    ours = [b for b in listed if b.get("title") == BACKEND_TITLE or str(b.get("url", "")).rstrip("/") == url]
    for extra in ours[1:]:
        studio.remove_ml_backend(int(extra["id"]))
    link = BackendLink(title, 0, url, "")
    existing = int(ours[0]["id"]) if ours else None
    answer = studio.register_ml_backend(project, url, BACKEND_TITLE, basic_auth=basic_auth, backend_id=existing)
    if ours:
        previous = str(ours[0].get("url", "")).rstrip("/")
        link.updated = previous != url or basic_auth is not None
        if previous != url:
            _move_webhook(studio, project, previous, url)
    else:
        link.created = True
    link.backend_id = int(answer["id"])
    link.model_version = str(answer.get("model_version") or "")
    if answer.get("state") not in (None, "CO"):
        raise StudioProjectError(
            f"Label Studio cannot use the ML backend at {shown} (state {answer.get('state')}: "
            f"{str(answer.get('error_message') or '')[:200]}); is `annotate serve` running there?"
        )
    if not link.model_version:  # ours always names its model in /setup: something else answered there
        if link.created:
            studio.remove_ml_backend(link.backend_id)
        kept = "nothing was connected" if link.created else "the project's ML backend now points there: connect again"
        raise StudioProjectError(
            f"{shown} answered Label Studio but named no model version: not `annotate serve`? ({kept})"
        )
    if basic_auth is not None:
        _authorize_webhook(studio, project, url, basic_auth)
    if sampling is not None:
        studio.set_sampling(project, SAMPLING[sampling])
        link.sampling = SAMPLING[sampling]
    return link


def checked_backend_url(url: str) -> str:
    """The backend URL without a trailing slash, once it is ``http://`` or ``https://`` with a host.

    Label Studio refuses anything else with a JSON body; this says so in one line, before any request.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in 0-65535)
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise StudioProjectError(
            f"--backend-url {redact_url(url)!r}: expected http:// or https:// and a host, "
            "where `annotate serve` listens (e.g. http://localhost:9090)"
        )
    return url.rstrip("/")


def _move_webhook(studio: Studio, project: Project, previous: str, url: str) -> None:
    """Label Studio made ``<url>/webhook`` when the backend was first connected and never moves it: move it."""
    hooks = {str(hook.get("url", "")).rstrip("/"): int(hook["id"]) for hook in studio.webhooks(project)}
    if f"{previous}/webhook" in hooks and f"{url}/webhook" not in hooks:
        studio.move_webhook(hooks[f"{previous}/webhook"], f"{url}/webhook")


def _authorize_webhook(studio: Studio, project: Project, url: str, basic_auth: tuple[str, str]) -> None:
    """Label Studio sends the backend's basic auth on /predict but not on the webhook it registers: add it."""
    token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
    for hook in studio.webhooks(project):
        if str(hook.get("url", "")).rstrip("/") == f"{url}/webhook":
            studio.set_webhook_headers(int(hook["id"]), {"Authorization": f"Basic {token}"})
