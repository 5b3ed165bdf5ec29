"""The model in the loop: our ML backend (``annotate serve``) connected to a project, its predictions refreshed.

Connecting is idempotent (our backend is found by its title), and after it, or after a retrained
model, every unlabeled task is predicted with the served version by :func:`refresh_project` (our
own loop of pages: list, predict, upload), so the labeling view and uncertainty sampling use the
newest model before anyone opens a task.
"""

from __future__ import annotations

import base64
import bisect
import queue
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotate.engine import Pool, check_workers, worker_pool
from annotate.errors import StudioAuthError, StudioError, StudioProjectError, StudioUnreachable, redact_url
from annotate.model import (
    BATCH_WORDS,
    SavedModel,
    check_pipeline_folder,
    predict_page,
    task_text,
    weighed_batches,
    word_batches,
)
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


REFRESH_PAGE = 200  # tasks listed (and checked before upload) at a time by a refresh
UPLOAD_REGIONS = 5_000  # regions in one upload request: ~50 seed-length predictions, ~0.2 s of Label Studio's time
CHUNK_WORDS = BATCH_WORDS  # words of one job given to a worker: one word batch, so no worker idles long at the end


@dataclass
class RefreshReport:
    """What :func:`refresh_project` did: how many tasks lacked the version, how many it predicted and uploaded."""

    project: str
    model_version: str
    total: int = 0
    predicted: int = 0
    shown: bool = False
    skipped: int = 0  # predicted, but the task got the version meanwhile (a live /predict): not uploaded again
    workers: int = 1
    engine: str = "local"
    seconds: dict[str, float] = field(default_factory=dict)  # where the time went (listing, waiting, uploading…)

    def spent(self, what: str, since: float) -> None:
        self.seconds[what] = round(self.seconds.get(what, 0.0) + time.perf_counter() - since, 3)


def unlabeled_tasks(studio: Studio, project: Project) -> list[int]:
    """Ids of the project's tasks that no annotation finishes yet (what a new model should pre-annotate)."""
    return sorted(int(task["id"]) for task in studio.tasks(project, "id,is_labeled") if not task.get("is_labeled"))


def refresh_project(
    studio: Studio,
    project: Project,
    model: SavedModel,
    *,
    page_size: int = REFRESH_PAGE,
    workers: int = 1,
    engine: str = "local",
    progress: Callable[[int, int], None] | None = None,
    busy: Callable[[], Collection[int]] | None = None,
    predict: Callable[[SavedModel, Sequence[Mapping]], list[dict]] = predict_page,
    answering: Callable[[], float] | None = None,
) -> RefreshReport:
    """Store ``model``'s predictions on every unlabeled task that lacks its version, then show that version.

    Our own loop, not Label Studio's single /predict call (which gives up after 100 s and stores
    nothing), on the engines ``apply`` and the trainings use (:func:`annotate.engine.worker_pool`:
    local processes, or Ray tasks with ``engine="ray"``): pages of tasks still lacking the version
    are listed in id order, cut into jobs of at most ``CHUNK_WORDS`` words, and predicted by
    ``workers`` workers at once (``predict``, a module-level function, loads the model once per
    worker); each page is uploaded as soon as its jobs are done, on a thread of its own, while the
    workers predict the next ones. At most ``2 × workers`` jobs and one page waiting for upload are
    held, so memory does not grow with the project.

    Right before a page is uploaded, Label Studio is asked which of its tasks still lack the
    version (a task opened meanwhile was predicted live and stored), and ``busy()`` names tasks a
    live /predict is answering now (the backend's); neither is uploaded twice. A page goes up in
    requests of at most ``UPLOAD_REGIONS`` regions, so an annotator's open never waits long behind
    an import on Label Studio. A task that holds the
    version is never listed again, so an interrupted refresh resumes where it stopped; tasks
    imported meanwhile are picked up. Only then does the project's ``model_version`` point at the
    version. ``progress(done, total)`` is called after every upload request.

    ``answering()`` says for how many more seconds an annotator's open is being answered (the
    backend's, from /setup and /predict): meanwhile the local workers are stopped and no upload
    starts, so Label Studio's live prediction of that task gets the CPU (:class:`_Yielding`).
    """
    check_workers(workers, engine)
    check_pipeline_folder(model.model_dir)
    version = model.version
    began = time.perf_counter()
    page, total = studio.tasks_to_predict(project, version, page_size)
    report = RefreshReport(project.title, version, total, workers=workers, engine=engine)
    report.spent("listing", began)
    if progress is not None:
        progress(0, total)
    if page:
        with (
            worker_pool(workers, engine, pausable=answering is not None) as pool,
            _Yielding(pool, answering, report) as yielding,
            _Uploads(studio, project, version, report, progress, busy, yielding) as up,
        ):
            while page:
                if report.predicted + report.skipped:  # a pass again: tasks left out as busy, or new ones
                    time.sleep(1.0)  # Label Studio is storing a live answer, or more tasks are arriving
                up.uploaded = array("q")  # this pass's uploads, in id order
                for ids, predictions in _predicted_pages(
                    studio, project, version, page, page_size, pool, predict, model, report
                ):
                    up.put(ids, predictions)
                up.join()
                # Once more from the start: tasks left out as busy whose live prediction was not stored,
                # tasks imported behind the last id listed. Usually none.
                began = time.perf_counter()
                page, remaining = studio.tasks_to_predict(project, version, page_size)
                report.spent("listing", began)
                repeated = next((int(t["id"]) for t in page if _holds(up.uploaded, int(t["id"]))), None)
                if repeated is not None:
                    raise StudioProjectError(
                        f"project {project.title!r}: task {repeated} still lacks the predictions of {version} "
                        "after they were uploaded; refresh stopped"
                    )
                report.total = max(report.total, report.predicted + report.skipped + remaining)
    report.shown = _show(studio, project, version, report.predicted > 0)
    return report


def _holds(ids: array, task_id: int) -> bool:
    at = bisect.bisect_left(ids, task_id)
    return at < len(ids) and ids[at] == task_id


def _predicted_pages(
    studio: Studio,
    project: Project,
    version: str,
    page: list[dict],
    page_size: int,
    pool: Pool,
    predict: Callable[[SavedModel, Sequence[Mapping]], list[dict]],
    model: SavedModel,
    report: RefreshReport,
) -> Iterator[tuple[list[int], list[dict]]]:
    """(task ids, predictions) of each page, in order, from ``page`` on; the pages after it are listed as needed.

    The jobs of the pages are kept ``2 × workers`` in flight, so the workers never wait for a page
    to be listed or uploaded.
    """
    in_flight: deque[tuple[list[int] | None, Any]] = deque()  # (the page's ids on its last job, handle)
    limit = 2 * pool.workers

    def jobs() -> Iterator[tuple[list[int] | None, list[dict]]]:
        current = page
        while current:
            chunks = list(word_batches(current, lambda task: task_text(task, 0), CHUNK_WORDS))
            ids = [int(task["id"]) for task in current]
            for number, chunk in enumerate(chunks):
                yield (ids if number == len(chunks) - 1 else None), chunk
            if len(current) < page_size:
                return
            began = time.perf_counter()
            current, _ = studio.tasks_to_predict(project, version, page_size, after=ids[-1])
            report.spent("listing", began)

    predictions: list[dict] = []

    def finished(keep: int) -> Iterator[tuple[list[int], list[dict]]]:
        """Collect jobs in order until ``keep`` are in flight; yield each page whose last job came in."""
        nonlocal predictions
        while len(in_flight) > keep:
            ids, handle = in_flight.popleft()
            began = time.perf_counter()
            predictions.extend(pool.result(handle))
            report.spent("waiting for workers", began)
            if ids is not None:
                yield ids, predictions
                predictions = []

    for ids, chunk in jobs():
        in_flight.append((ids, pool.submit(predict, model, chunk)))
        yield from finished(limit - 1)
    yield from finished(0)


class _Uploads:
    """Uploads pages on a thread of its own, one at a time, in order; at most one page waits.

    Right before each upload, the page's tasks that got the version meanwhile (Label Studio stored
    a live /predict) or that a live /predict is answering now (``busy``) are left out.
    """

    def __init__(self, studio, project, version, report, progress, busy, yielding) -> None:
        self._studio, self._project, self._version = studio, project, version
        self._report, self._progress, self._busy = report, progress, busy
        self._yielding = yielding
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self.uploaded = array("q")  # the task ids uploaded in a pass, in id order (8 bytes a task)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="annotate-refresh-upload", daemon=True)

    def __enter__(self) -> _Uploads:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error

    def put(self, ids: list[int], predictions: list[dict]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((ids, predictions))

    def join(self) -> None:
        """Wait until every page put is uploaded (or raise why not)."""
        self._queue.join()
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._upload(*item)
            except BaseException as exc:  # handed to the refreshing thread, which raises it
                self._error = exc
            finally:
                self._queue.task_done()

    def _upload(self, ids: list[int], predictions: list[dict]) -> None:
        began = time.perf_counter()
        lacking = self._studio.lacking_version(self._project, self._version, ids)
        self._report.spent("checking", began)
        if self._busy is not None:
            lacking -= set(self._busy())
        kept = [{"task": i, **p} for i, p in zip(ids, predictions, strict=True) if i in lacking]
        report = self._report
        report.skipped += len(ids) - len(kept)
        for request in upload_requests(kept):
            self._yielding.wait()  # not while Label Studio answers an annotator's open
            began = time.perf_counter()
            self._studio.import_predictions(self._project, request)
            report.spent("uploading", began)
            self.uploaded.extend(p["task"] for p in request)
            report.predicted += len(request)
            report.total = max(report.total, report.predicted + report.skipped)
            if self._progress is not None:
                self._progress(report.predicted + report.skipped, report.total)


class _Yielding:
    """While an annotator's open is being answered (``answering()`` > 0), the workers pause and no upload starts.

    Label Studio answers an open of a task that holds no prediction by asking /predict and storing
    the answer before it replies; on a machine whose cores the refresh fills, that open would take
    twice as long. Local workers (one too: the pool is ``pausable``, so it runs in a process of its
    own) are stopped and resumed (:meth:`Pool.pause`); Ray tasks go on, only the uploads wait.
    """

    POLL_S = 0.01

    def __init__(self, pool: Pool, answering: Callable[[], float] | None, report: RefreshReport) -> None:
        self._pool, self._answering, self._report = pool, answering, report
        self._free = threading.Event()
        self._free.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="annotate-refresh-yield", daemon=True)

    def __enter__(self) -> _Yielding:
        if self._answering is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def wait(self) -> None:
        """Return once no open is being answered."""
        self._free.wait()

    def _work(self) -> None:
        answering = self._answering
        assert answering is not None
        while not self._stop.wait(self.POLL_S):
            left = answering()
            if left <= 0:
                continue
            began = time.perf_counter()
            self._free.clear()
            self._pool.pause()
            try:
                while left > 0 and not self._stop.wait(min(left, self.POLL_S)):
                    left = answering()
            finally:
                self._pool.resume()
                self._free.set()
                self._report.spent("yielded to opens", began)


def upload_requests(predictions: list[dict], regions: int | None = None) -> Iterator[list[dict]]:
    """``predictions`` in order, cut into requests of at most ``regions`` regions (``UPLOAD_REGIONS``
    unless given; a larger prediction goes alone).

    Label Studio imports a request in one go on one Python thread: while it does, an annotator's
    open of a task on the same server waits behind it, so a request is kept short rather than a page long.
    """
    limit = UPLOAD_REGIONS if regions is None else regions
    return weighed_batches(predictions, lambda prediction: max(1, len(prediction.get("result") or ())), limit)


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
