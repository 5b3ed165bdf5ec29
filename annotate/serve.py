"""Label Studio's ML backend protocol on FastAPI: a thin layer over :mod:`annotate.backend`.

Routes parse bodies with pydantic and call the backend's plain methods; our errors and malformed
bodies become a 4xx with a one-line ``detail``. ``/health`` and ``/setup`` only read memory, so
they stay fast while a training runs in its child process. Optional basic auth (credentials from
the environment) guards every route. Needs the ``serve`` extra (fastapi, uvicorn).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.base import BaseHTTPMiddleware

from annotate.backend import Backend, BackendOptions
from annotate.errors import AnnotateError
from annotate.labels import Schema

USER_ENV = "ANNOTATE_BACKEND_USER"
PASSWORD_ENV = "ANNOTATE_BACKEND_PASSWORD"
log = logging.getLogger("annotate.backend")


class PredictRequest(BaseModel):
    """What Label Studio POSTs to /predict (it adds keys we do not need; they are ignored)."""

    model_config = ConfigDict(extra="ignore")
    tasks: list[dict[str, Any]]
    project: str | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


class SetupRequest(BaseModel):
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


def basic_auth_from_env() -> tuple[str, str] | None:
    """Credentials the backend demands, from ANNOTATE_BACKEND_USER / ANNOTATE_BACKEND_PASSWORD (both or none)."""
    user, password = os.environ.get(USER_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    return (user, password) if user and password else None


def _one_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return f"malformed request: {where}: {first.get('msg', 'invalid')}"


class _BasicAuth(BaseHTTPMiddleware):
    def __init__(self, app, credentials: tuple[str, str]) -> None:
        super().__init__(app)
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        self._expected = f"Basic {token}"

    async def dispatch(self, request: Request, call_next):
        given = request.headers.get("authorization", "")
        try:
            ok = secrets.compare_digest(given.encode(), self._expected.encode())
        except (TypeError, binascii.Error):
            ok = False
        if not ok:
            return JSONResponse(
                {"detail": "authentication required"}, status_code=401, headers={"WWW-Authenticate": "Basic"}
            )
        return await call_next(request)


def create_app(
    model_dir: Path,
    schema: Schema,
    options: BackendOptions,
    *,
    basic_auth: tuple[str, str] | None = None,
) -> FastAPI:
    """The backend app serving ``model_dir``; the model is loaded once, here, not per request."""
    backend = Backend.load(Path(model_dir), schema, options)
    app = FastAPI(title="annotate ML backend", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend
    if basic_auth is not None:
        app.add_middleware(_BasicAuth, credentials=basic_auth)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(AnnotateError)
    async def refused(request: Request, exc: AnnotateError) -> JSONResponse:
        log.warning("%s %s refused: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/health")
    async def health() -> dict:
        return backend.health()

    @app.post("/setup")
    async def setup(body: SetupRequest) -> dict:
        return backend.setup(body.hostname, body.access_token)

    @app.get("/versions")
    async def versions() -> dict:
        return {"versions": [backend.predictor.model_version]}

    @app.post("/predict", response_class=JSONResponse)
    def predict(body: PredictRequest) -> JSONResponse:
        # A plain `def`: FastAPI runs it on a worker thread, so /health is answered meanwhile. The reply
        # is plain JSON already: returned as is, it skips FastAPI's encoder (10x json.dumps on 100 spans).
        results = backend.predict(body.tasks)
        return JSONResponse({"results": results, "model_version": backend.predictor.model_version})

    @app.post("/webhook")
    async def webhook(event: WebhookEvent) -> dict:
        if event.action == "START_TRAINING":
            return {"status": backend.start_training(event.project or {}, "Start training in Label Studio")}
        if event.action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            if event.annotation is None or event.task is None:
                return JSONResponse({"detail": f"{event.action} without annotation or task"}, status_code=422)
            return {"status": backend.annotation_event(event.project or {}, event.task, event.annotation)}
        return {"status": "ignored"}

    return app


def run(app: FastAPI, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn; one process, so the loaded model and the retrainer are shared)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
