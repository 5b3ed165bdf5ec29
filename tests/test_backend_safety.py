"""The backend's HTTP layer trusts no shape: every field Label Studio sends is validated (4xx, one line)."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from annotate.backend.app import create_app, listening_socket  # noqa: E402
from annotate.backend.auth import PASSWORD_ENV, USER_ENV, basic_auth_from_env  # noqa: E402
from annotate.backend.state import BackendOptions  # noqa: E402
from annotate.cli import app  # noqa: E402
from annotate.errors import InputError  # noqa: E402
from annotate.model import Predictor  # noqa: E402

TEXT = "Hamas and Israel agreed to a pause."


@pytest.fixture(scope="module")
def client(tmp_path_factory, schema, settings):
    import spacy

    folder = tmp_path_factory.mktemp("backend-safety")
    nlp = spacy.blank("en")
    nlp.add_pipe("span_ruler", config={"spans_key": "sc"}).add_patterns([{"label": "ACTOR", "pattern": "Hamas"}])
    nlp.to_disk(folder / "model")
    options = BackendOptions(
        root=settings.root,
        schema_path=settings.schema,
        config_path=settings.train_config,
        models_dir=folder / "live",
    )
    return TestClient(create_app(folder / "model", schema, options))


PREDICT = {
    "tasks": [{"id": 3, "data": {"text": TEXT}}],
    "project": "1.1700000000",
    "label_config": "<View/>",
    "params": {"context": None},
}
WEBHOOK = {
    "action": "ANNOTATION_CREATED",
    "project": {"id": 1, "title": "Project"},
    "task": {"id": 3, "data": {"text": TEXT}},
    "annotation": {"id": 9, "updated_at": "2026-01-01T00:00:00Z", "result": [{"type": "labels"}]},
}
SETUP = {"project": "1.1700000000", "schema": "<View/>", "hostname": "http://localhost:8080", "access_token": "k"}

# Every field Label Studio sends, with the JSON type it must have.
FIELDS = (
    [
        ("/predict", PREDICT, path, kind)
        for path, kind in [
            ("tasks", list),
            ("tasks.0", dict),
            ("tasks.0.id", int),
            ("tasks.0.data", dict),
            ("tasks.0.data.text", str),
            ("project", str),
            ("label_config", str),
            ("params", dict),
        ]
    ]
    + [
        ("/webhook", WEBHOOK, path, kind)
        for path, kind in [
            ("action", str),
            ("project", dict),
            ("project.id", int),
            ("project.title", str),
            ("task", dict),
            ("task.id", int),
            ("task.data", dict),
            ("task.data.text", str),
            ("annotation", dict),
            ("annotation.id", int),
            ("annotation.updated_at", str),
            ("annotation.result", list),
            ("annotation.result.0", dict),
        ]
    ]
    + [("/setup", SETUP, path, str) for path in ("project", "schema", "hostname", "access_token")]
)

KEYS = ["tasks", "data", "text", "id", "action", "project", "task", "annotation", "result", "title", "x"]
JSON_VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _of_type(value, kind) -> bool:
    # JSON has no int/bool distinction in Python's eyes; a JSON true is not an id.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _replaced(body: dict, path: str, value) -> dict:
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return changed


def _one_line_4xx(answer) -> str:
    assert 400 <= answer.status_code < 500, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_a_wrong_type_in_any_field_label_studio_sends_is_a_422_naming_the_field(client, field, value):
    route, body, path, kind = field
    if _of_type(value, kind):
        return
    detail = _one_line_4xx(client.post(route, json=_replaced(body, path, value)))
    assert detail.startswith(f"malformed request: {path}"), detail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/predict", "/webhook", "/setup"]),
    body=st.recursive(
        JSON_VALUES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
        max_leaves=8,
    ),
)
def test_any_json_is_answered_never_a_500_and_a_refusal_is_one_line(client, route, body):
    answer = client.post(route, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        _one_line_4xx(answer)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            _replaced(WEBHOOK, "annotation.id", "nine"),
            "malformed request: annotation.id: Input should be a valid integer",
        ),
        (_replaced(WEBHOOK, "project.id", "1"), "malformed request: project.id: Input should be a valid integer"),
        (_replaced(WEBHOOK, "task.id", 3.5), "malformed request: task.id: Input should be a valid integer"),
    ],
)
def test_webhook_ids_of_the_wrong_type_are_a_422_not_a_500(client, body, reason):
    assert _one_line_4xx(client.post("/webhook", json=body)) == reason
    assert client.get("/health").json()["status"] == "UP"


def test_a_lone_surrogate_in_a_task_text_is_a_422_naming_the_task_field(client):
    body = b'{"tasks": [{"id": 3, "data": {"text": "Hamas \\ud800 and"}}]}'
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    detail = _one_line_4xx(answer)
    assert detail.startswith("malformed request: tasks.0.data.text: Value error, holds a lone surrogate at character 6")


def test_an_empty_text_gets_a_prediction_with_no_spans(client):
    answer = client.post(
        "/predict", json={"tasks": [{"id": 3, "data": {"text": ""}}, {"id": 4, "data": {"text": TEXT}}]}
    )
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [len(result["result"]) for result in results] == [0, 1]


def test_the_predictors_own_refusal_is_a_422_with_its_one_line(client):
    """The predictor's guard (a text over the readers' limit) raises our error; the route answers 422 with it."""

    def refuse(texts: list[str]) -> list:
        raise InputError(f"text of {len(texts[0]):,} characters is over the limit\nof 3")

    backend = client.app.state.backend
    served = backend.predictor
    backend.predictor = Predictor(refuse, served.model_version)
    try:
        answer = client.post("/predict", json={"tasks": [{"id": 3, "data": {"text": "four"}}]})
    finally:
        backend.predictor = served
    assert answer.status_code == 422
    assert answer.json() == {"detail": "text of 4 characters is over the limit of 3"}


def test_a_fault_of_ours_is_a_500_with_one_line_not_a_plain_text_page(client):
    def fail(texts: list[str]) -> list:
        raise ZeroDivisionError("division by zero")

    backend = client.app.state.backend
    served = backend.predictor
    backend.predictor = Predictor(fail, served.model_version)
    try:
        answer = TestClient(client.app, raise_server_exceptions=False).post("/predict", json=PREDICT)
    finally:
        backend.predictor = served
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error: ZeroDivisionError: division by zero"}


# --- starting: auth all-or-nothing, a usable address, before the model loads -------------------------


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({USER_ENV: "ls", PASSWORD_ENV: ""}, f"{USER_ENV} is set but {PASSWORD_ENV} is not"),
        ({USER_ENV: "", PASSWORD_ENV: "pw"}, f"{PASSWORD_ENV} is set but {USER_ENV} is not"),
        ({USER_ENV: "a:b", PASSWORD_ENV: "pw"}, f"{USER_ENV} holds a ':'"),
    ],
)
def test_half_set_basic_auth_refuses_to_start_serve_and_connect(monkeypatch, tmp_path, env, reason):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=reason):
        basic_auth_from_env()
    runner = CliRunner()
    for arguments in (["serve", str(tmp_path / "no-model")], ["studio", "connect", "--backend-url", "http://x:1"]):
        result = runner.invoke(app, arguments)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {reason}"), result.output


def test_both_or_neither_credentials_is_accepted(monkeypatch):
    monkeypatch.setenv(USER_ENV, "ls")
    monkeypatch.setenv(PASSWORD_ENV, "pw:with:colons")
    assert basic_auth_from_env() == ("ls", "pw:with:colons")
    monkeypatch.delenv(USER_ENV)
    monkeypatch.delenv(PASSWORD_ENV)
    assert basic_auth_from_env() is None


@pytest.fixture
def busy_port():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    yield holder.getsockname()[1]
    holder.close()


@pytest.mark.parametrize(
    ("host", "port", "reason"),
    [
        ("127.0.0.1", 0, "--port must be between 1 and 65535, not 0"),
        ("127.0.0.1", 65536, "--port must be between 1 and 65535, not 65536"),
        ("127.0.0.1", -1, "--port must be between 1 and 65535, not -1"),
        ("no-such-host.invalid", 9090, "--host 'no-such-host.invalid': not an address to listen on"),
        ("256.1.1.1", 9090, "--host '256.1.1.1': not an address to listen on"),
        ("8.8.8.8", 9090, "cannot listen on 8.8.8.8:9090 (Cannot assign requested address)"),
        ("127.0.0.1", "busy", "cannot listen on 127.0.0.1:{port} (Address already in use)"),
    ],
)
def test_a_port_or_host_serve_cannot_use_is_one_line_before_the_model_loads(tmp_path, busy_port, host, port, reason):
    if port == "busy":
        port, reason = busy_port, reason.format(port=busy_port)
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "no-model"), "--host", host, "--port", str(port)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {reason}"), result.output


def test_a_usable_address_is_bound_and_handed_over(tmp_path):
    listener = listening_socket("127.0.0.1", _free_port())
    try:
        assert listener.getsockname()[0] == "127.0.0.1"
    finally:
        listener.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- shutting down: nothing starts after close -----------------------------------------------------


def test_a_closed_retrainer_starts_no_queued_or_new_training():
    import threading

    from annotate.backend.retrain import Retrainer, TrainingRequest

    release, started = threading.Event(), []

    def train(request: TrainingRequest) -> Path:
        started.append(request.project_title)
        release.wait(10)
        return Path("model")

    retrainer = Retrainer(train, lambda folder, request: "v1")
    assert retrainer.request(TrainingRequest(1, "first", "test")) == "started"
    assert retrainer.request(TrainingRequest(1, "queued", "test")) == "queued"
    retrainer.close(timeout=1)
    release.set()
    assert retrainer.wait(timeout=10)
    assert retrainer.request(TrainingRequest(1, "after", "test")) == "shutting down"
    assert started == ["first"]
