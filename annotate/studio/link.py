"""The model in the loop: our ML backend (``annotate serve``) connected to a project, its predictions refreshed.

Connecting is idempotent (our backend is found by its title), and after it, or after a retrained
model, every unlabeled task is predicted with the served version, so the labeling view and
uncertainty sampling use the newest model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from annotate.errors import StudioProjectError, redact_url
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
    refreshed: int = 0


def unlabeled_tasks(studio: Studio, project: Project) -> list[int]:
    """Ids of the project's tasks that no annotation finishes yet (what a new model should pre-annotate)."""
    return sorted(int(task["id"]) for task in studio.tasks(project, "id,is_labeled") if not task.get("is_labeled"))


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
        studio.retrieve_predictions(project, todo)
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
        link.updated = str(ours[0].get("url", "")).rstrip("/") != url or basic_auth is not None
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
    if link.model_version:
        link.refreshed = refresh_predictions(studio, title=title, model_version=link.model_version)
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


def _authorize_webhook(studio: Studio, project: Project, url: str, basic_auth: tuple[str, str]) -> None:
    """Label Studio sends the backend's basic auth on /predict but not on the webhook it registers: add it."""
    token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
    for hook in studio.webhooks(project):
        if str(hook.get("url", "")).rstrip("/") == f"{url}/webhook":
            studio.set_webhook_headers(int(hook["id"]), {"Authorization": f"Basic {token}"})
