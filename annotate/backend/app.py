"""Label Studio's ML backend protocol on FastAPI: a thin layer over :mod:`annotate.backend.state`.

The routes live on an ``APIRouter`` and get the backend's state (and, when credentials are set,
basic auth) as dependencies. They parse bodies with pydantic and call the backend's plain
methods; our errors and malformed bodies become a 4xx with a one-line ``detail``. ``/health`` and
``/setup`` only read memory, so they stay fast while a training runs in its child process. Needs
the ``serve`` extra (fastapi, uvicorn).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from annotate.backend.auth import BasicAuth
from annotate.backend.state import Backend, BackendOptions
from annotate.errors import AnnotateError, InputError
from annotate.labels import Schema

log = logging.getLogger(__name__)


class PredictRequest(BaseModel):
    """What Label Studio POSTs to /predict (it adds keys we do not need; they are ignored)."""

    model_config = ConfigDict(extra="ignore")
    tasks: list[dict[str, Any]]
    project: str | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


class SetupRequest(BaseModel):
    """What Label Studio POSTs to /setup: where it is, and a token the backend may use to read the project."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    project: str | None = None
    label_schema: str | None = Field(default=None, alias="schema")
    hostname: str | None = None
    access_token: str | None = None


class WebhookEvent(BaseModel):
    """A project event; ``ANNOTATION_*`` carry the annotation and its task, ``START_TRAINING`` the project."""

    model_config = ConfigDict(extra="ignore")
    action: str
    project: dict[str, Any] | None = None
    task: dict[str, Any] | None = None
    annotation: dict[str, Any] | None = None


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
    return JSONResponse(backend.predict(body.tasks))


@router.post("/webhook")
async def webhook(event: WebhookEvent, backend: ServedBackend) -> dict:
    if event.action == "START_TRAINING":
        return {"status": backend.start_training(event.project or {}, "Start training in Label Studio")}
    if event.action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        if event.annotation is None or event.task is None:
            raise InputError(f"{event.action} without annotation or task")
        return {"status": backend.annotation_event(event.project or {}, event.task, event.annotation)}
    if event.action == "TASKS_CREATED":
        return {"status": backend.tasks_created(event.project or {})}
    return {"status": "ignored"}


def _one_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return f"malformed request: {where}: {first.get('msg', 'invalid')}"


async def _malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _one_line(exc)}, status_code=422)


async def _refused(request: Request, exc: AnnotateError) -> JSONResponse:
    log.warning("%s %s refused: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=422)


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
    app = FastAPI(title="annotate ML backend", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = Backend.load(Path(model_dir), schema, options)
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(AnnotateError, _refused)
    guards = [Depends(BasicAuth(basic_auth))] if basic_auth is not None else []
    app.include_router(router, dependencies=guards)
    return app


def run(app: FastAPI, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn; one process, so the loaded model and the retrainer are shared)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
