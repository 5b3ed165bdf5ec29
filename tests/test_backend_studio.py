"""The model in the loop against a real Label Studio and a real `annotate serve` process, both on loopback.

Label Studio is started once per session (tests/studio_server.py, the same code as `studio up`,
which allows loopback ML backends); each test starts its own backend on a free port and stops it
by pid.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from typer.testing import CliRunner

from annotate import lsformat
from annotate.cli import app
from annotate.corpus import read_gold
from annotate.model import model_version
from annotate.records import AnnotatedDoc, Article, Span
from annotate.studio.link import connect_backend, unlabeled_tasks, wait_for_refresh
from annotate.studio.push import push
from annotate.train import train
from tests.backend_process import BackendProcess, tiny_config

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from annotate.backend.app import create_app  # noqa: E402
from annotate.backend.state import BackendOptions  # noqa: E402

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio

EMOJI_TEXT = "Talks 😀 resume. Hamas said Israel must withdraw."


@pytest.fixture(scope="module")
def connection(local_studio):
    return local_studio.connect()


@pytest.fixture
def title():
    return f"Loop {uuid.uuid4().hex[:10]}"


def _backend(local_studio, model_dir, tmp_path, *arguments: str) -> BackendProcess:
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token}
    return BackendProcess(model_dir, tmp_path / "backend.log", env, list(arguments)).start()


def _open_task(connection, task_id: int) -> dict:
    """What the labeling view loads when an annotator opens a task."""
    return connection.task(task_id)


def _ml_backends(connection, project) -> list[dict]:
    return connection.ml_backends(project)


def _regions(prediction: dict) -> list[tuple[int, int, str, str]]:
    return [
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["value"]["text"])
        for r in prediction["result"]
    ]


def _wait_for_predictions(connection, task_id: int, timeout: float = 60.0) -> list[dict]:
    """The task's predictions once it has any (the backend stores them in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = connection.predictions(task_id)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} got no prediction within {timeout} s")


def _wait_for_training(backend: BackendProcess, trainings: int, timeout: float = 300.0) -> tuple[dict, list[float]]:
    """Poll /health until ``trainings`` have finished; every answer's latency is kept (Label Studio allows 1 s)."""
    latencies = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        began = time.perf_counter()
        health = backend.health(timeout=5.0)
        latencies.append(time.perf_counter() - began)
        if health["trainings"] >= trainings and not health["training"]:
            return health, latencies
        time.sleep(0.1)
    raise AssertionError(f"no training finished within {timeout} s: {backend.log_path.read_text()[-2000:]}")


def test_connect_open_a_task_stop_restart_and_a_failed_training(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir
):
    push(connection, [Article("plain", "Israel and Hamas talk.")], title=title, schema=schema)
    backend = _backend(local_studio, ruler_model_dir, tmp_path)
    version = model_version(ruler_model_dir)
    try:
        link = connect_backend(connection, title=title, backend_url=backend.url)
        assert link.created and link.model_version == version
        assert wait_for_refresh(backend.url)["done"] == 1
        project = connection.project(title)
        again = connect_backend(connection, title=title, backend_url=backend.url)
        assert not again.created and again.backend_id == link.backend_id
        assert len(_ml_backends(connection, project)) == 1

        # A task pushed after connecting is predicted in the background (TASKS_CREATED), before anyone opens it.
        push(connection, [Article("emoji", EMOJI_TEXT)], title=title, schema=schema)
        task_id = connection.task_index(project)["emoji"][0][0]
        (stored,) = _wait_for_predictions(connection, task_id)
        assert stored["model_version"] == version
        assert _regions(stored) == [(16, 21, "ACTOR", "Hamas"), (27, 33, "ACTOR", "Israel")]  # code points
        assert all(EMOJI_TEXT[start:end] == text for start, end, _, text in _regions(stored))

        # Start training on a project without annotations: refused with the reason, the old model serves.
        connection.train_ml_backend(link.backend_id)
        health, _ = _wait_for_training(backend, 1)
        assert health["last_training"]["ok"] is False
        assert "has no submitted annotation to train on" in health["last_training"]["error"]
        assert health["model_version"] == version

        # The backend stops: annotators still open and label tasks.
        backend.stop()
        push(connection, [Article("while-down", "Hamas spoke again.")], title=title, schema=schema)
        down_task = connection.task_index(project)["while-down"][0][0]
        opened = _open_task(connection, down_task)
        assert opened["data"]["text"] == "Hamas spoke again."
        connection.annotate(down_task, [Span(0, 5, "ACTOR", "Hamas")])
        assert connection.predictions(down_task) == []

        # Restarted on another port: connecting again updates the URL, never adds a second backend.
        backend.start()
        moved = connect_backend(connection, title=title, backend_url=backend.url)
        assert moved.updated and not moved.created and moved.backend_id == link.backend_id
        assert [b["url"] for b in _ml_backends(connection, project)] == [backend.url]
        push(connection, [Article("after", "Israel answered.")], title=title, schema=schema)
        after = connection.task_index(project)["after"][0][0]
        assert [_regions(p) for p in _wait_for_predictions(connection, after)] == [[(0, 6, "ACTOR", "Israel")]]
        wait_for_refresh(backend.url)
        assert [_regions(p) for p in connection.predictions(after)] == [[(0, 6, "ACTOR", "Israel")]]
    finally:
        backend.stop()

    # What annotators did to the predictions, read on pull: "plain" (Israel 0-6, Hamas 11-16 predicted)
    # keeps Israel and widens Hamas; "emoji" deletes Hamas, relabels Israel and adds a span.
    tasks = {doc_id: found[0][0] for doc_id, found in connection.task_index(project).items()}
    connection.annotate(tasks["plain"], [Span(0, 6, "ACTOR", "Israel"), Span(11, 21, "ACTOR", "Hamas talk")])
    connection.annotate(tasks["emoji"], [Span(27, 33, "DEMAND", "Israel"), Span(34, 47, "DEMAND", "must withdraw")])
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token}
    pulled = tmp_path / "pulled.jsonl"
    arguments = ["pull", "--project", title, "--gold", str(tmp_path / "gold.jsonl"), "--pulled", str(pulled)]
    result = CliRunner().invoke(app, [*arguments, "--snapshots", str(tmp_path / "snapshots")], env=env)
    assert result.exit_code == 0, result.output
    assert "What annotators did to the predictions" in result.output
    figures = json.loads((tmp_path / "pulled.acceptance.json").read_text())
    assert figures["unassisted_annotations"] == 1  # labelled while the backend was down
    entry = figures["model_versions"][version]
    assert entry["annotations"] == 2
    assert {
        label: [counts[k] for k in ("kept", "boundary_changed", "label_changed", "deleted", "added")]
        for label, counts in entry["labels"].items()
    } == {"ACTOR": [1, 1, 1, 1, 0], "DEMAND": [0, 0, 0, 0, 1]}
    assert (entry["total"]["precision"], entry["total"]["recall"]) == (0.25, 0.25)

    # Agreement read from the project shows the same figures, fresh (a second annotator keeps all of "plain").
    second = connection.add_user(f"second-{uuid.uuid4().hex[:6]}@example.org")
    connection.annotate(tasks["plain"], [Span(0, 6, "ACTOR", "Israel"), Span(11, 16, "ACTOR", "Hamas")], user_id=second)
    result = CliRunner().invoke(app, ["agreement", "--project", title], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "What annotators did to the predictions" in result.output
    table = result.output.split("What annotators did to the predictions", 1)[1]
    assert f"{version}: 3 annotation(s)" in table  # two on "plain", one on "emoji"


def test_a_training_gets_the_pull_policy_and_a_refused_span_reaches_health_by_task_and_span(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir, project_root, monkeypatch
):
    """The backend in this process, the training in its real child against the real Label Studio."""
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # the child finds Label Studio through /setup, as when connected
    push(connection, [Article("plain", "Israel and Hamas talk.")], title=title, schema=schema)
    project = connection.project(title)
    task_id = connection.task_index(project)["plain"][0][0]
    connection.annotate(task_id, [Span(0, 6, "ACTOR", "Israel")])  # submitted, not ground truth

    def last_training(policy: str) -> dict:
        options = BackendOptions(
            root=project_root,
            schema_path=project_root / "guidelines" / "labels.toml",
            config_path=project_root / "configs" / "spancat.cfg",
            models_dir=tmp_path / "live",
            policy=policy,
        )
        client = TestClient(create_app(ruler_model_dir, schema, options))
        client.post("/setup", json={"hostname": local_studio.url, "access_token": local_studio.token})
        event = {"action": "START_TRAINING", "project": {"id": project.id, "title": title}}
        assert client.post("/webhook", json=event).json() == {"status": "started"}
        assert client.app.state.backend.retrainer.wait(120)
        return client.get("/health").json()["last_training"]

    # By pull's default policy the annotation would be gold; by ground-truth-only there is none.
    assert lsformat.DEFAULT_POLICY != "ground-truth-only"
    refused = last_training("ground-truth-only")
    assert refused["ok"] is False and refused["problems"] == []
    assert refused["error"] == f"project {title!r} has no submitted annotation to train on"

    # A span pull refuses stops the training: the message and every problem arrive as pull states them.
    bad = connection.annotate(task_id, [Span(11, 16, "ACTOR", "Hamaz")])
    refused = last_training(lsformat.DEFAULT_POLICY)
    assert refused["ok"] is False
    assert refused["error"].startswith(f"1 problem(s) in project {title!r}; ")
    (problem,) = refused["problems"]
    assert problem.startswith(f"task {task_id} annotation {bad} (")
    assert "): plain: [11:16] ACTOR 'Hamaz': " in problem
    assert not (tmp_path / "live").exists()


def _paragraphs(gold: list[AnnotatedDoc], count: int) -> list[AnnotatedDoc]:
    """Paragraphs of the gold articles as small articles, with the gold spans inside them."""
    found = []
    for doc in gold:
        start = 0
        for paragraph in doc.text.split("\n\n"):
            end = start + len(paragraph)
            spans = tuple(
                Span(s.start - start, s.end - start, s.label, s.text)
                for s in doc.spans
                if start <= s.start < s.end <= end
            )
            if len(paragraph) > 200 and spans:
                found.append(AnnotatedDoc(id=f"{doc.id}-p{start}", text=paragraph, spans=spans))
            start = end + 2
    return found[:count]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, project_root, schema):
    """A tiny spancat trained in-process on two gold articles (seconds), and the config to retrain with."""
    folder = tmp_path_factory.mktemp("tiny")
    config = tiny_config(folder / "tiny.cfg")
    gold = read_gold(project_root / "gold" / "gold.jsonl")
    train(gold[:2], folder / "model-tiny", config_path=config, labels=schema.names, schema_sha256=schema.sha256)
    return folder / "model-tiny", config, gold


def _unlabeled_scores(connection, project, version: str) -> dict[int, float]:
    scores = {}
    for task_id in unlabeled_tasks(connection, project):
        (prediction,) = [p for p in connection.predictions(task_id) if p["model_version"] == version]
        scores[task_id] = prediction["score"]
    return scores


@pytest.mark.slow
def test_retraining_from_label_studio_and_uncertainty_sampling(
    local_studio, connection, schema, title, tmp_path, tiny, project_root
):
    model_dir, config, gold = tiny
    articles = _paragraphs(gold[2:], 10)
    assert len(articles) == 10
    by_id = {doc.id: doc for doc in articles}
    push(connection, [Article(doc.id, doc.text) for doc in articles], title=title, schema=schema)
    gold_file = project_root / "gold" / "gold.jsonl"
    gold_hash = hashlib.sha256(gold_file.read_bytes()).hexdigest()
    live = tmp_path / "live"
    backend = _backend(local_studio, model_dir, tmp_path, "--train-config", str(config), "--models-dir", str(live))
    try:
        link = connect_backend(connection, title=title, backend_url=backend.url, sampling="uncertainty")
        first = model_version(model_dir)
        assert link.model_version == first and link.sampling == "Uncertainty sampling"
        assert wait_for_refresh(backend.url)["done"] == 10
        project = connection.project(title)
        doc_of_task = {tasks[0][0]: doc_id for doc_id, tasks in connection.task_index(project).items()}

        # Uncertainty sampling: the stream serves the unlabeled task whose prediction scores lowest.
        for _ in range(3):
            scores = _unlabeled_scores(connection, project, first)
            assert len(set(scores.values())) > 2, "the scores must differ for the order to mean anything"
            served = connection.next_task(project)
            assert scores[served["id"]] == min(scores.values())
            connection.annotate(served["id"], by_id[doc_of_task[served["id"]]].spans)

        connection.train_ml_backend(link.backend_id)
        health, latencies = _wait_for_training(backend, 1)
        assert health["last_training"]["ok"] is True, health["last_training"]
        second = health["model_version"]
        assert second != first and second == health["last_training"]["model_version"]
        assert max(latencies) < 1.0, f"/health took {max(latencies):.2f} s during the training"
        assert len(latencies) > 10, "the training was too short to say anything about /health"
        assert [path.name for path in live.iterdir() if not path.name.startswith(".")] == [second.rsplit("-", 1)[0]]
        assert hashlib.sha256(gold_file.read_bytes()).hexdigest() == gold_hash, "retraining must not touch gold"

        # The project follows the new model: its version, predictions of every unlabeled task, the order.
        assert wait_for_refresh(backend.url)["done"] == 7
        settings = connection.project_settings(project)
        assert settings["model_version"] == second
        scores = _unlabeled_scores(connection, project, second)
        assert len(scores) == 7
        served = connection.next_task(project)
        assert [p["model_version"] for p in served["predictions"]] == [second]
        assert scores[served["id"]] == min(scores.values())
    finally:
        backend.stop()


def test_basic_auth_reaches_the_backend_on_predictions_and_on_the_webhook(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir
):
    push(connection, [Article("plain", "Israel and Hamas talk.")], title=title, schema=schema)
    credentials = {"ANNOTATE_BACKEND_USER": "ls", "ANNOTATE_BACKEND_PASSWORD": f"pw-{uuid.uuid4().hex}"}
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token, **credentials}
    backend = BackendProcess(ruler_model_dir, tmp_path / "backend.log", env).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{backend.url}/health", timeout=5)
        assert refused.value.code == 401
        link = connect_backend(connection, title=title, backend_url=backend.url, basic_auth=tuple(credentials.values()))
        assert link.created
        assert wait_for_refresh(backend.url, basic_auth=tuple(credentials.values()))["done"] == 1
        project = connection.project(title)
        task_id = connection.task_index(project)["plain"][0][0]
        assert [p["model_version"] for p in connection.predictions(task_id)] == [link.model_version]
        # Label Studio's own webhook carries no credentials; connect added them, so annotations arrive.
        connection.annotate(task_id, [Span(0, 6, "ACTOR", "Israel")])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not backend.health(timeout=5)["annotations_seen"]:
            time.sleep(0.2)
        assert backend.health(timeout=5)["annotations_seen"] == 1
    finally:
        backend.stop()
