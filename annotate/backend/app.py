"""Label Studio's ML backend protocol on FastAPI: a thin layer over :mod:`annotate.backend.state`.

The routes live on an ``APIRouter`` and get the backend's state (and, when credentials are set,
basic auth) as dependencies. They parse bodies with pydantic and call the backend's plain
methods; our errors and malformed bodies become a 4xx with a one-line ``detail``. ``/health`` and
``/setup`` only read memory, so they stay fast while a training runs in its child process. Needs
the ``serve`` extra (fastapi, uvicorn).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from annotate.backend.auth import BasicAuth
from annotate.backend.state import Backend, BackendOptions
from annotate.errors import AnnotateError, InputError
from annotate.labels import Schema
from annotate.targets import os_reason

log = logging.getLogger(__name__)


class _Message(BaseModel):
    """A part of a Label Studio message: strict types (``"7"`` is not an id), keys we do not need ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)


def _valid_text(text: str) -> str:
    """Article text must encode as UTF-8: a lone surrogate would fail the reply, not the request."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"holds a lone surrogate at character {exc.start} (not valid Unicode)") from None
    return text


class TaskData(_Message):
    """A task's data as ``push`` imports it; ``text`` is checked by the backend (naming the task) when absent."""

    text: Annotated[str, AfterValidator(_valid_text)] | None = None


class Task(_Message):
    """One task of /predict or a webhook event."""

    id: int | None = None
    data: TaskData


class ProjectRef(_Message):
    """The project a webhook event names (START_TRAINING needs its title)."""

    id: int | None = None
    title: str | None = None


class Annotation(_Message):
    """A submitted or updated annotation: its id (to count it once), time, and regions."""

    id: int
    updated_at: str | None = None
    result: list[dict[str, Any]] | None = None


class PredictRequest(_Message):
    """What Label Studio POSTs to /predict (``project`` is "<id>.<created timestamp>")."""

    tasks: list[Task]
    project: str | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


class SetupRequest(_Message):
    """What Label Studio POSTs to /setup: where it is, and a token the backend may use to read the project."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)
    project: str | None = None
    label_schema: str | None = Field(default=None, alias="schema")
    hostname: str | None = None
    access_token: str | None = None


class WebhookEvent(_Message):
    """A project event; ``ANNOTATION_*`` carry the annotation and its task, ``START_TRAINING`` the project."""

    action: str
    project: ProjectRef | None = None
    task: Task | None = None
    annotation: Annotation | None = None


def served_backend(request: Request) -> Backend:
    """The app's one :class:`Backend` (loaded by :func:`create_app`), for the routes that need it."""
    return request.app.state.backend


ServedBackend = Annotated[Backend, Depends(served_backend)]
router = APIRouter()


@router.get("/health")
async def health(backend: ServedBackend) -> dict:
    return backend.health()


@router.post("/setup")
async def setup(body: SetupRequest, backend: ServedBackend) -> dict:
    return backend.setup(body.hostname, body.access_token, body.project)


@router.get("/versions")
async def versions(backend: ServedBackend) -> dict:
    return {"versions": [backend.predictor.model_version]}


@router.post("/predict", response_class=JSONResponse)
def predict(body: PredictRequest, backend: ServedBackend) -> JSONResponse:
    # A plain `def`: FastAPI runs it on a worker thread, so /health is answered meanwhile. The reply
    # is plain JSON already: returned as is, it skips FastAPI's encoder (10x json.dumps on 100 spans).
    return JSONResponse(backend.predict([task.model_dump() for task in body.tasks]))


@router.post("/webhook")
async def webhook(event: WebhookEvent, backend: ServedBackend) -> dict:
    project = event.project.model_dump() if event.project is not None else {}
    if event.action == "START_TRAINING":
        return {"status": backend.start_training(project, "Start training in Label Studio")}
    if event.action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        if event.annotation is None or event.task is None:
            raise InputError(f"{event.action} without annotation or task")
        return {"status": backend.annotation_event(project, event.task.model_dump(), event.annotation.model_dump())}
    if event.action == "TASKS_CREATED":
        return {"status": backend.tasks_created(project)}
    return {"status": "ignored"}


def _line(text: str) -> str:
    """A reason as one line that always encodes (it may quote what the request sent)."""
    flat = " ".join(text.split())
    return flat.encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return _line(f"malformed request: {where}: {first.get('msg', 'invalid')}")


async def _malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _one_line(exc)}, status_code=422)


async def _refused(request: Request, exc: AnnotateError) -> JSONResponse:
    reason = _line(str(exc))
    log.warning("%s %s refused: %s", request.method, request.url.path, reason)
    return JSONResponse({"detail": reason}, status_code=422)


async def _failed(request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours, not of the request: still one line for Label Studio; the traceback goes to the log."""
    return JSONResponse({"detail": _line(f"internal error: {type(exc).__name__}: {exc}")[:300]}, status_code=500)


def create_app(
    model_dir: Path,
    schema: Schema,
    options: BackendOptions,
    *,
    basic_auth: tuple[str, str] | None = None,
) -> FastAPI:
    """The backend app serving ``model_dir``; the model is loaded once, here, not per request.

    With ``basic_auth`` (user, password) every route demands those credentials.
    """
    backend = Backend.load(Path(model_dir), schema, options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()  # SIGINT/SIGTERM: uvicorn re-raises the signal after this, and atexit never runs

    app = FastAPI(title="annotate ML backend", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.backend = backend
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(AnnotateError, _refused)
    app.add_exception_handler(Exception, _failed)
    guards = [Depends(BasicAuth(basic_auth))] if basic_auth is not None else []
    app.include_router(router, dependencies=guards)
    return app


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, or one line saying why not (before the model is loaded).

    The socket is handed to uvicorn as it is, so nothing else can take the port in between.
    """
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, not {port}")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"--host {host!r}: not an address to listen on ({reason})") from None
    family, kind, protocol, _, address = found[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise InputError(f"cannot listen on {host}:{port} ({os_reason(exc)})") from None
    return listener


def run(app: FastAPI, listener: socket.socket) -> None:
    """Serve on ``listener`` until SIGINT/SIGTERM (uvicorn; one process, so the model and retrainer are shared)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=False))
    server.run(sockets=[listener])
