"""The ML backend without Label Studio: the protocol's shapes, bad input, auth, the task score, the retrainer."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from annotate.backend import state  # noqa: E402
from annotate.backend.app import create_app  # noqa: E402
from annotate.backend.retrain import (  # noqa: E402
    LiveTasks,
    Retrainer,
    StudioAddress,
    TrainingJob,
    TrainingRequest,
    run_in_child,
)
from annotate.backend.state import Backend, BackendOptions  # noqa: E402
from annotate.errors import PullError, TrainingError  # noqa: E402
from annotate.model import (  # noqa: E402
    Predictor,
    label_studio_prediction,
    load_predictor,
    model_version,
    predict_tasks,
    task_score,
)
from annotate.records import Problem, Span  # noqa: E402
from tests import child_jobs  # noqa: E402

TEXT = "Hi 😀 Hamas said Israel."


def _options(project_root: Path, tmp_path: Path, **changes) -> BackendOptions:
    return BackendOptions(
        root=project_root,
        schema_path=project_root / "guidelines" / "labels.toml",
        config_path=project_root / "configs" / "spancat.cfg",
        models_dir=tmp_path / "live",
        **changes,
    )


@pytest.fixture
def client(ruler_model_dir, schema, project_root, tmp_path):
    return TestClient(create_app(ruler_model_dir, schema, _options(project_root, tmp_path, train_every=2)))


def _task(task_id: int, text: str) -> dict:
    return {"id": task_id, "data": {"text": text, "doc_id": f"d{task_id}"}, "annotations": [], "predictions": []}


def test_predict_answers_what_push_would_send(client, ruler_model_dir, schema):
    body = {
        "tasks": [_task(1, TEXT), _task(2, "Nothing to see.")],
        "project": "1.1796166683",
        "label_config": "<View/>",
    }
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert len(results) == 2
    version = model_version(ruler_model_dir)
    predictor = load_predictor(ruler_model_dir, schema)
    expected = [label_studio_prediction(spans, version) for spans in predictor.predict([TEXT, "Nothing to see."])]
    assert results == expected
    first = results[0]
    assert first["model_version"] == version and isinstance(first["model_version"], str)
    regions = [(r["value"]["start"], r["value"]["end"], r["value"]["text"]) for r in first["result"]]
    assert regions == [(5, 10, "Hamas"), (16, 22, "Israel")]  # code points: the emoji counts one
    assert all(TEXT[start:end] == text for start, end, text in regions)
    assert results[1] == {"model_version": version, "score": 1.0, "result": []}


def test_health_and_setup_name_the_served_version(client, ruler_model_dir):
    health = client.get("/health").json()
    assert health["status"] == "UP" and health["model_version"] == model_version(ruler_model_dir)
    assert health["training"] is False
    setup = client.post("/setup", json={"project": "1.17", "schema": "<View/>", "hostname": "", "access_token": ""})
    assert setup.json() == {"model_version": model_version(ruler_model_dir)}
    assert client.get("/versions").json() == {"versions": [model_version(ruler_model_dir)]}


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/predict", {"project": "1.1"}, "malformed request: tasks: Field required"),
        ("/predict", {"tasks": "no"}, "malformed request: tasks: Input should be a valid list"),
        ("/predict", {"tasks": [{"id": 7, "data": {"title": "x"}}]}, "task 7 has no text (data.text)"),
        ("/webhook", {"annotation": {}}, "malformed request: action: Field required"),
        ("/webhook", {"action": "ANNOTATION_CREATED"}, "ANNOTATION_CREATED without annotation or task"),
        (
            "/webhook",
            {
                "action": "ANNOTATION_CREATED",
                "project": {"id": 1, "title": "P"},
                "task": _task(3, TEXT),
                "annotation": {
                    "id": 9,
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "text",
                            "type": "labels",
                            "value": {"start": 5, "end": 10, "text": "Hamas", "labels": ["VILLAIN"]},
                        }
                    ],
                },
            },
            "task 3 annotation 9: label VILLAIN is not in the schema",
        ),
    ],
)
def test_bad_input_gets_a_4xx_with_one_line_and_the_server_keeps_serving(client, path, body, reason):
    answer = client.post(path, json=body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail.startswith(reason)
    assert client.get("/health").json()["status"] == "UP"


def test_a_body_that_is_not_json_is_refused(client):
    answer = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("malformed request")


def test_other_events_are_acknowledged_and_a_repeated_annotation_counts_once(client):
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}}).json() == {
        "status": "ignored"
    }
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 1, "title": "P"},
        "task": _task(3, TEXT),
        "annotation": {"id": 9, "updated_at": "2026-01-01T00:00:00Z", "result": []},
    }
    assert client.post("/webhook", json=event).json() == {"status": "counted"}
    # Label Studio sends START_TRAINING and ANNOTATION_* for one save, and may repeat: dedupe by id + time.
    assert client.post("/webhook", json=event).json() == {"status": "already seen"}


def test_basic_auth_guards_every_route(ruler_model_dir, schema, project_root, tmp_path):
    app = create_app(ruler_model_dir, schema, _options(project_root, tmp_path), basic_auth=("ls", "s3cret"))
    client = TestClient(app)
    good = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ls:wrong").decode()}
    for method, path, body in (("GET", "/health", None), ("POST", "/predict", {"tasks": [_task(1, TEXT)]})):
        assert client.request(method, path, json=body).status_code == 401
        assert client.request(method, path, json=body, headers=bad).status_code == 401
        assert client.request(method, path, json=body, headers=good).status_code == 200
    assert client.post("/webhook", json={"action": "START_TRAINING"}).status_code == 401


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_auth_compares_user_and_password_in_constant_time_and_refuses_anything_else(
    ruler_model_dir, schema, project_root, tmp_path, monkeypatch
):
    compared: list[tuple[bytes, bytes]] = []
    constant_time = secrets.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return constant_time(given, expected)

    monkeypatch.setattr(secrets, "compare_digest", spy)
    client = TestClient(create_app(ruler_model_dir, schema, _options(project_root, tmp_path), basic_auth=("ls", "pw")))
    # A wrong user name: the password is compared all the same, so timing tells nothing about which half failed.
    answer = client.get("/health", headers=_basic(b"LS:pw"))
    assert answer.status_code == 401 and compared == [(b"LS", b"ls"), (b"pw", b"pw")]
    assert answer.json() == {"detail": "authentication required"} and answer.headers["WWW-Authenticate"] == "Basic"
    compared.clear()
    assert client.get("/health", headers=_basic(b"ls:p")).status_code == 401
    assert compared == [(b"ls", b"ls"), (b"p", b"pw")]
    refused = [
        _basic(b"ls:pw "),
        _basic(b"ls"),  # no colon
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer pw"},
        {"Authorization": "Basic " + base64.b64encode("ls:pw\u00e9".encode()).decode()},
        {},
    ]
    for headers in refused:
        answer = client.get("/health", headers=headers)
        assert answer.status_code == 401 and answer.json() == {"detail": "authentication required"}, headers
    compared.clear()
    assert client.get("/health", headers=_basic(b"ls:pw")).status_code == 200
    assert compared == [(b"ls", b"ls"), (b"pw", b"pw")]


def test_task_score_is_the_least_certain_span_so_unsure_articles_sort_first():
    span = Span(0, 5, "ACTOR", "Hamas")
    sure = label_studio_prediction([(span, 0.97), (span, 0.91)], "v")
    unsure = label_studio_prediction([(span, 0.99), (span, 0.52)], "v")
    nothing = label_studio_prediction([], "v")
    assert sure["score"] == 0.91 and unsure["score"] == 0.52 and nothing["score"] == 1.0
    ordered = sorted({"sure": sure, "unsure": unsure, "nothing": nothing}.items(), key=lambda item: item[1]["score"])
    assert [name for name, _ in ordered] == ["unsure", "sure", "nothing"]
    assert task_score([0.7, 0.6, 0.8]) == 0.6
    assert [r["score"] for r in unsure["result"]] == [0.99, 0.52]


def test_predict_tasks_is_what_the_route_calls(ruler_model_dir, schema):
    predictor = load_predictor(ruler_model_dir, schema)
    (result,) = predict_tasks(predictor, [_task(1, TEXT)])
    assert [r["value"]["labels"] for r in result["result"]] == [["ACTOR"], ["ACTOR"]]


def test_a_large_predict_request_goes_through_the_pipeline_one_bounded_batch_at_a_time_with_one_predictor(
    ruler_model_dir, schema, project_root, tmp_path, monkeypatch
):
    monkeypatch.setattr(state, "PREDICT_WORDS", 50)
    backend = Backend.load(ruler_model_dir, schema, _options(project_root, tmp_path))
    real = backend.predictor
    in_pipeline: list[int] = []

    def recording(texts: list[str]) -> list:
        in_pipeline.append(sum(len(text.split()) for text in texts))
        # A retrained model swapped in mid-request must not reach this request's later batches.
        backend.predictor = Predictor(lambda texts: [[] for _ in texts], "swapped-in")
        return real.predict(texts)

    backend.predictor = Predictor(recording, real.model_version)
    tasks = [_task(number, " ".join(["Hamas"] + ["said"] * 19)) for number in range(40)]
    answer = backend.predict(tasks)
    assert len(in_pipeline) == 20 and max(in_pipeline) <= 50  # 2 tasks of 20 words per batch, 40 tasks
    assert len(answer["results"]) == 40 and answer["model_version"] == real.model_version
    assert {result["model_version"] for result in answer["results"]} == {real.model_version}
    assert all(result["result"][0]["value"]["text"] == "Hamas" for result in answer["results"])


def test_setup_names_the_project_whose_predictions_are_refreshed_once_per_version(
    ruler_model_dir, schema, project_root, tmp_path
):
    backend = Backend.load(ruler_model_dir, schema, _options(project_root, tmp_path))
    asked = []
    backend.refresher.request = lambda project, version, once=False: asked.append((project, version, once))
    backend.setup(None, None, "12.1796166683")
    backend.setup(None, None, None)
    assert asked == [(12, backend.predictor.model_version, True)]
    assert state.project_id("7.123") == 7 and state.project_id("") is None and state.project_id("x.1") is None


# --- the retrainer: one training at a time, one queued, failures keep the old model -------------------


def _request(number: int) -> TrainingRequest:
    return TrainingRequest(1, "P", f"request {number}")


def test_retrainer_runs_one_at_a_time_and_queues_exactly_one_more(tmp_path):
    release = threading.Event()
    started: list[str] = []
    running = []

    def train(request):
        running.append(1)
        assert len(running) == 1, "two trainings ran at once"
        started.append(request.reason)
        release.wait(10)
        running.pop()
        return tmp_path / request.reason

    retrainer = Retrainer(train, lambda folder, request: folder.name)
    assert retrainer.request(_request(1)) == "started"
    while not started:
        time.sleep(0.01)
    assert retrainer.request(_request(2)) == "queued"
    assert retrainer.request(_request(3)) == "queued"  # replaces request 2: one queued, the latest
    assert retrainer.busy
    release.set()
    assert retrainer.wait(10)
    assert started == ["request 1", "request 3"]
    assert [record.model_version for record in retrainer.history] == ["request 1", "request 3"]


def test_a_failed_training_is_recorded_and_the_old_model_keeps_serving(tmp_path):
    serving = ["old"]

    def train(request):
        raise TrainingError("project 'P' has no submitted annotation to train on")

    def install(folder, request):
        serving[0] = "new"
        return "new"

    retrainer = Retrainer(train, install)
    retrainer.request(_request(1))
    assert retrainer.wait(10)
    (record,) = retrainer.history
    assert not record.ok and record.error == "project 'P' has no submitted annotation to train on"
    assert serving == ["old"]
    assert retrainer.request(_request(2)) == "started", "a failure must not leave the retrainer stuck"
    assert retrainer.wait(10)


def test_every_n_new_or_updated_annotations_start_one_training(ruler_model_dir, schema, project_root, tmp_path):
    backend = Backend.load(ruler_model_dir, schema, _options(project_root, tmp_path, train_every=2))
    trained: list[TrainingRequest] = []
    backend.retrainer = Retrainer(lambda request: trained.append(request) or tmp_path, lambda folder, request: "v2")
    project, task = {"id": 4, "title": "News"}, _task(1, TEXT)

    def event(number: int, stamp: str) -> str:
        return backend.annotation_event(project, task, {"id": number, "updated_at": stamp, "result": []})

    assert event(1, "t1") == "counted"
    assert event(1, "t1") == "already seen"
    assert event(2, "t1") == "started"
    assert backend.retrainer.wait(10)
    assert trained == [TrainingRequest(4, "News", "2 new or updated annotations")]
    assert event(1, "t2") == "counted"  # an update of annotation 1 counts again
    assert len(trained) == 1


# --- the child process: a plain call, its result or our error as raised --------------------------------


def test_a_child_returns_its_result_and_raises_our_error_intact(tmp_path):
    job = TrainingJob(
        StudioAddress(tmp_path, "http://127.0.0.1:1", "secret-key"),
        "News",
        tmp_path / "labels.toml",
        tmp_path / "spancat.cfg",
        tmp_path / "live",
        policy="latest",
    )
    assert run_in_child(child_jobs.echo, job) == job
    assert "secret-key" not in repr(job)
    with pytest.raises(PullError) as refused:
        run_in_child(child_jobs.refuse_a_bad_span, job)
    assert str(refused.value) == "1 problem(s) in project 'News' (policy latest); fix them in Label Studio first"
    (problem,) = refused.value.problems
    assert problem == Problem(
        "task 7 annotation 9 (ann@example.org)",
        "label VILLAIN is not in the schema",
        "d7",
        Span(5, 10, "VILLAIN", "Hamas"),
    )
    with pytest.raises(TrainingError, match=r"^ZeroDivisionError: division by zero$"):
        run_in_child(child_jobs.divide_by_zero)
    with pytest.raises(TrainingError, match=r"^crash_with ended without an answer \(child process exit code 3\)$"):
        run_in_child(child_jobs.crash_with, 3)


def test_a_failed_trainings_error_and_problems_arrive_in_health_with_the_policy_the_child_got(
    ruler_model_dir, schema, project_root, tmp_path, monkeypatch
):
    # The backend builds the job and starts the child as for a real training; only the function differs.
    monkeypatch.setattr(state, "train_job", child_jobs.refuse_a_bad_span)
    options = _options(project_root, tmp_path, policy="ground-truth-only")
    client = TestClient(create_app(ruler_model_dir, schema, options))
    event = {"action": "START_TRAINING", "project": {"id": 3, "title": "News"}}
    assert client.post("/webhook", json=event).json() == {"status": "started"}
    assert client.app.state.backend.retrainer.wait(60)
    health = client.get("/health").json()
    assert health["trainings"] == 1 and health["model_version"] == model_version(ruler_model_dir)
    last = health["last_training"]
    assert last["ok"] is False
    assert last["error"] == (
        "1 problem(s) in project 'News' (policy ground-truth-only); fix them in Label Studio first"
    )
    assert last["problems"] == [
        "task 7 annotation 9 (ann@example.org): d7: [5:10] VILLAIN 'Hamas': label VILLAIN is not in the schema"
    ]


def test_the_training_job_carries_the_options_and_where_label_studio_is(
    ruler_model_dir, schema, project_root, tmp_path, monkeypatch
):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    options = _options(project_root, tmp_path, policy="latest", seed=7, lang="en")
    backend = Backend.load(ruler_model_dir, schema, options)
    backend.setup("http://studio.example:8080", "token-from-setup")
    job = backend.training_job(TrainingRequest(3, "News", "Start training"))
    assert job.studio == StudioAddress(project_root, "http://studio.example:8080", "token-from-setup")
    assert (job.title, job.policy, job.seed, job.lang) == ("News", "latest", 7, "en")
    assert (job.schema_path, job.config_path) == (options.schema_path, options.config_path)
    assert job.output.parent == options.models_dir and job.output.name.startswith("live-")


def test_an_unknown_pull_policy_is_refused_before_training(tmp_path):
    from annotate.backend.retrain import train_from_project

    with pytest.raises(TrainingError, match="unknown pull policy 'newest'; choose one of ground-truth-then-latest"):
        train_from_project(None, title="P", schema=None, config_path=tmp_path, output=tmp_path, policy="newest")


def test_a_restart_with_models_dir_serves_the_newest_finished_training_unless_pinned(ruler_model_dir, tmp_path):
    import json
    import shutil

    from annotate.errors import InputError
    from annotate.model import META_FILE

    live = tmp_path / "live"
    with pytest.raises(InputError, match="holds no trained model yet; name a MODEL_DIR"):
        state.served_model(None, live)
    assert state.served_model(ruler_model_dir, live) == (ruler_model_dir, f"as given; no model trained in {live} yet")
    for name, trained_at in (("live-a", "2026-01-02T10:00:00+00:00"), ("live-b", "2026-01-01T10:00:00+00:00")):
        shutil.copytree(ruler_model_dir, live / name)
        meta = {"model_sha256": "0" * 64, "model_version": name, "trained_at": trained_at}
        (live / name / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    shutil.copytree(ruler_model_dir, live / "live-c-interrupted")  # saved, but its training never finished
    assert state.served_model(None, live) == (live / "live-a", f"the newest model trained in {live}")
    assert state.served_model(ruler_model_dir, live)[0] == live / "live-a"
    assert state.served_model(ruler_model_dir, live, pin=True) == (ruler_model_dir, "as given")
    assert state.served_model(ruler_model_dir, None) == (ruler_model_dir, "as given")


def test_live_tasks_marked_by_the_server_are_read_by_the_refresh_child_from_the_shared_array():
    from annotate.backend.retrain import LiveTasks

    served = LiveTasks()
    served.mark([7, 8])
    served.mark(range(100, 100 + LiveTasks.SLOTS))  # the ring keeps the latest SLOTS tasks
    child = LiveTasks(served.array)  # what refresh_job builds from the array it is given
    assert child.recent() == set(range(100, 100 + LiveTasks.SLOTS))
    served.mark([7])
    assert 7 in child.recent() and 100 not in child.recent()


def test_an_open_being_answered_holds_the_refresh_from_setup_until_label_studio_has_stored_the_answer(
    ruler_model_dir, schema, project_root, tmp_path
):
    """/setup (asked right before a live /predict) and /predict hold a refresh; the answer shortens the hold to the
    time Label Studio takes to store it. The refresh child reads the hold from the shared array."""
    backend = Backend.load(ruler_model_dir, schema, _options(project_root, tmp_path))
    backend.refresher.request = lambda *args, **kwargs: "queued"
    child = LiveTasks(backend.refresher.live.array)
    assert child.answering() == 0
    backend.setup(None, None, "12.1796166683")
    assert 0 < child.answering() <= state.HOLD_SETUP_MS / 1000
    seen_in_pipeline: list[float] = []
    real = backend.predictor
    backend.predictor = Predictor(
        lambda texts: seen_in_pipeline.append(child.answering()) or real.predict(texts), real.model_version
    )
    backend.predict([_task(5, TEXT)])
    assert seen_in_pipeline[0] > state.HOLD_SETUP_MS / 1000  # while predicting: the long hold
    assert 0 < child.answering() <= state.HOLD_STORE_MS / 1000  # answered: Label Studio stores it
    assert 5 in child.recent()
    time.sleep(state.HOLD_STORE_MS / 1000 + 0.05)
    assert child.answering() == 0


def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_while_an_open_is_answered_the_refresh_pauses_its_workers_and_holds_its_uploads():
    from annotate.studio.link import RefreshReport, _Yielding

    calls: list[str] = []

    class Workers:
        def pause(self) -> None:
            calls.append("pause")

        def resume(self) -> None:
            calls.append("resume")

    until = [time.monotonic() + 0.3]
    report = RefreshReport("P", "v1")
    with _Yielding(Workers(), lambda: max(0.0, until[0] - time.monotonic()), report) as yielding:
        assert _until(lambda: calls == ["pause"])
        began = time.monotonic()
        yielding.wait()  # an upload about to start
        assert calls == ["pause", "resume"] and time.monotonic() - began > 0.1
        until[0] = time.monotonic() + 0.2  # the next open
        assert _until(lambda: calls == ["pause", "resume", "pause"])
    assert calls == ["pause", "resume", "pause", "resume"]  # the refresh ended: its workers are not left stopped
    assert report.seconds["yielded to opens"] >= 0.25


def test_a_refresh_uploads_a_page_in_requests_of_bounded_regions_in_order():
    from annotate.studio.link import upload_requests

    def prediction(task: int, regions: int) -> dict:
        return {"task": task, "result": [{"value": {"start": n}} for n in range(regions)]}

    page = [prediction(1, 40), prediction(2, 40), prediction(3, 0), prediction(4, 150), prediction(5, 10)]
    requests = list(upload_requests(page, regions=100))
    assert [[p["task"] for p in request] for request in requests] == [[1, 2, 3], [4], [5]]
    assert [p for request in requests for p in request] == page  # each prediction once, in order
    assert list(upload_requests([], regions=100)) == []
