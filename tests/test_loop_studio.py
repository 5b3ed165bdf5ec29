"""The model in the loop at project scale: a real Label Studio, a real `annotate serve`, a few hundred articles.

Our own refresh stores the predictions ahead of the annotators (after connect, for tasks created
later, after a restart), resumes after the backend is killed without storing any task twice, and
a Data Manager "Retrieve predictions" over every task leaves the backend answering.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from collections import Counter

import pytest

from annotate.model import META_FILE, SavedModel, model_version, predict_page
from annotate.records import Article, Span
from annotate.studio import link
from annotate.studio.link import connect_backend, refresh_project, wait_for_refresh
from annotate.studio.push import push
from tests.backend_process import BackendProcess

pytest.importorskip("fastapi")
pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio

ARTICLES = 300
ACTORS = ("Hamas", "Israel", "Egypt", "Qatar")


def _articles(count: int, prefix: str = "a") -> list[Article]:
    """Short articles, each naming one or two actors (what the ruler model marks)."""
    return [
        Article(
            f"{prefix}{number}",
            f"{ACTORS[number % 4]} said the talks in round {number} would go on. Israel answered on day {number}.",
        )
        for number in range(count)
    ]


@pytest.fixture(scope="module")
def connection(local_studio):
    return local_studio.connect()


@pytest.fixture
def title():
    return f"Loop scale {uuid.uuid4().hex[:8]}"


def _backend(local_studio, model_dir, tmp_path, *arguments: str, env: dict | None = None) -> BackendProcess:
    environment = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token, **(env or {})}
    return BackendProcess(model_dir, tmp_path / "backend.log", environment, list(arguments)).start()


def _versions_per_task(connection, project, version: str) -> Counter:
    """How many predictions of ``version`` each task holds (one request for the whole project)."""
    return Counter(int(p["task"]) for p in connection.project_predictions(project) if p["model_version"] == version)


def _unlabeled(connection, project) -> set[int]:
    return {int(task["id"]) for task in connection.tasks(project, "id,is_labeled") if not task.get("is_labeled")}


def _kill(backend: BackendProcess) -> None:
    """SIGKILL the backend and its refresh child, as a crash or the OOM killer would."""
    os.killpg(backend.process.pid, signal.SIGKILL)
    backend.process.wait(timeout=20)
    backend.process = None


def test_connect_predicts_every_task_ahead_a_killed_refresh_resumes_once_and_late_tasks_follow(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir
):
    push(connection, _articles(ARTICLES), title=title, schema=schema)
    project = connection.project(title)
    labeled = sorted(_unlabeled(connection, project))[:3]
    for task_id in labeled:
        connection.annotate(task_id, [Span(0, 5, "ACTOR", "Hamas")])
    version = model_version(ruler_model_dir)
    backend = _backend(local_studio, ruler_model_dir, tmp_path, "--refresh-page", "20", "--workers", "2")
    try:
        connect_backend(connection, title=title, backend_url=backend.url)
        # Killed mid-refresh: some pages uploaded, not all.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            refresh = backend.health(timeout=5)["refresh"]
            if refresh["done"] >= 40:
                break
            time.sleep(0.05)
        _kill(backend)
        assert 40 <= refresh["done"] < refresh["total"] == ARTICLES - 3, refresh
        partial = _versions_per_task(connection, project, version)
        assert 0 < len(partial) < ARTICLES - 3
        assert connection.shown_version(project) != version  # shown only once every task holds it

        # Restarted and connected again: the refresh resumes, skipping what it stored.
        backend.start()
        connect_backend(connection, title=title, backend_url=backend.url)
        finished = wait_for_refresh(backend.url, timeout_s=300)
        assert finished["error"] == "" and finished["total"] <= ARTICLES - 3 - len(partial) + 20
        held = _versions_per_task(connection, project, version)
        assert set(held) == _unlabeled(connection, project) and len(held) == ARTICLES - 3
        assert set(held.values()) == {1}, "a task got the same version twice"
        assert not set(labeled) & set(held)
        assert connection.shown_version(project) == version

        # Articles pushed after connecting are predicted in the background (TASKS_CREATED), within a minute.
        push(connection, _articles(5, prefix="late"), title=title, schema=schema)
        late = {
            task_id
            for doc_id, found in connection.task_index(project).items()
            if doc_id.startswith("late")
            for task_id, _ in found
        }
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not late <= set(_versions_per_task(connection, project, version)):
            time.sleep(0.5)
        held = _versions_per_task(connection, project, version)
        assert late <= set(held) and set(held.values()) == {1}
        assert backend.health(timeout=5)["status"] == "UP"
    finally:
        backend.stop()


def test_retrieve_predictions_over_every_task_leaves_the_backend_answering(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir
):
    push(connection, _articles(ARTICLES), title=title, schema=schema)
    project = connection.project(title)
    # The backend cannot reach Label Studio for its own refresh: Label Studio's one /predict is all there is.
    backend = _backend(local_studio, ruler_model_dir, tmp_path, env={"LABEL_STUDIO_URL": "http://127.0.0.1:9"})
    version = model_version(ruler_model_dir)
    try:
        link = connect_backend(connection, title=title, backend_url=backend.url)
        failed = backend.health(timeout=5)["refresh"]
        deadline = time.monotonic() + 120
        while (failed["running"] or not failed["finished"]) and time.monotonic() < deadline:
            time.sleep(0.2)
            failed = backend.health(timeout=5)["refresh"]
        assert "cannot reach Label Studio at http://127.0.0.1:9" in failed["error"]
        assert _versions_per_task(connection, project, version) == Counter()

        tasks = sorted(_unlabeled(connection, project))
        connection.retrieve_predictions(project, tasks)  # the Data Manager action over all tasks: one /predict
        health = backend.health(timeout=5)
        assert health["status"] == "UP" and health["model_version"] == link.model_version == version
        held = _versions_per_task(connection, project, version)
        assert sorted(held) == tasks and set(held.values()) == {1}
    finally:
        backend.stop()
    log = (tmp_path / "backend.log").read_text()
    assert "Killed" not in log and "MemoryError" not in log


def test_a_restart_with_models_dir_serves_the_newest_trained_model_and_says_which(
    local_studio, tmp_path, ruler_model_dir
):
    live = tmp_path / "live"
    for name, trained_at in (("live-1", "2026-01-01T10:00:00+00:00"), ("live-2", "2026-01-02T10:00:00+00:00")):
        shutil.copytree(ruler_model_dir, live / name)
        meta = {"model_sha256": "0" * 64, "model_version": f"{name}-000000000000", "trained_at": trained_at}
        (live / name / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    backend = _backend(local_studio, ruler_model_dir, tmp_path, "--models-dir", str(live))
    try:
        assert backend.health(timeout=5)["model_version"] == "live-2-000000000000"
    finally:
        backend.stop()
    assert (
        f"Serving {live / 'live-2'} (the newest model trained in {live}, not {ruler_model_dir})"
        in (tmp_path / "backend.log").read_text()
    )
    pinned = _backend(local_studio, ruler_model_dir, tmp_path, "--models-dir", str(live), "--pin")
    try:
        assert pinned.health(timeout=5)["model_version"] == model_version(ruler_model_dir)
    finally:
        pinned.stop()


def test_studio_refresh_predicts_what_lacks_the_version_and_a_second_run_finds_nothing(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir
):
    from typer.testing import CliRunner

    from annotate.cli import app

    push(connection, _articles(30), title=title, schema=schema)
    project = connection.project(title)
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token}
    version = model_version(ruler_model_dir)
    command = ["studio", "refresh", "--project", title, "--workers", "2", "--page", "8", str(ruler_model_dir)]
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 0, result.output
    assert f"30 task(s) of {title!r} predicted with {version} (local, 2 worker(s))" in result.output
    assert f"The project shows {version}'s predictions" in result.output
    held = _versions_per_task(connection, project, version)
    assert len(held) == 30 and set(held.values()) == {1}
    assert connection.shown_version(project) == version
    again = CliRunner().invoke(app, ["studio", "refresh", "--project", title, str(ruler_model_dir)], env=env)
    assert again.exit_code == 0 and f"0 task(s) of {title!r} predicted" in again.output
    assert _versions_per_task(connection, project, version) == held
    refused = CliRunner().invoke(app, ["studio", "refresh", "--project", title, str(tmp_path)], env=env)
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == (
        f"Error: {tmp_path}: not a saved spaCy pipeline (no config.cfg); run `annotate train` first"
    )


def test_a_task_opened_while_its_page_is_predicted_ends_with_one_prediction_of_the_version(
    local_studio, connection, schema, title, tmp_path, ruler_model_dir, monkeypatch
):
    """The annotator opens a task the refresh has listed but not uploaded yet: Label Studio stores the
    backend's live prediction, and the refresh, asking again right before its upload, leaves that task out.

    Each page goes up in several requests here (a few regions each, as long articles' pages do)."""
    monkeypatch.setattr(link, "UPLOAD_REGIONS", 5)
    requests: list[int] = []
    real_import = connection.import_predictions

    def counted_import(project, payloads):
        requests.append(len(payloads))
        return real_import(project, payloads)

    monkeypatch.setattr(connection, "import_predictions", counted_import)
    push(connection, _articles(40), title=title, schema=schema)
    project = connection.project(title)
    # The backend serves /predict, but its own refresh cannot reach Label Studio: this test's refresh is the one.
    backend = _backend(local_studio, ruler_model_dir, tmp_path, env={"LABEL_STUDIO_URL": "http://127.0.0.1:9"})
    opened: list[int] = []

    def predict_while_opening(model, tasks):
        if not opened:
            for task in tasks[:2]:
                connection.task(int(task["id"]))  # the labeling view: Label Studio asks /predict and stores it
                opened.append(int(task["id"]))
        return predict_page(model, tasks)

    version = model_version(ruler_model_dir)
    try:
        connect_backend(connection, title=title, backend_url=backend.url)
        live = _versions_per_task(connection, project, version)
        report = refresh_project(
            connection, project, SavedModel(ruler_model_dir, schema), page_size=20, predict=predict_while_opening
        )
    finally:
        backend.stop()
    assert live == Counter() and len(opened) == 2
    held = _versions_per_task(connection, project, version)
    assert len(held) == 40 and set(held.values()) == {1}, {task: n for task, n in held.items() if n > 1}
    assert (report.predicted, report.skipped) == (38, 2)
    assert sum(requests) == 38 and len(requests) > 2 and max(requests) <= 5  # 2 pages, many requests
    assert connection.shown_version(project) == version


def test_the_ray_engine_refreshes_a_project(connection, schema, title, ruler_model_dir):
    ray = pytest.importorskip("ray", reason="the [scale] extra (ray[data]) is not installed")
    push(connection, _articles(30), title=title, schema=schema)
    project = connection.project(title)
    report = refresh_project(
        connection, project, SavedModel(ruler_model_dir, schema), page_size=8, workers=2, engine="ray"
    )
    assert not ray.is_initialized(), "a Ray the refresh started is shut down"
    version = model_version(ruler_model_dir)
    held = _versions_per_task(connection, project, version)
    assert len(held) == 30 and set(held.values()) == {1}
    assert (report.predicted, report.engine, report.workers) == (30, "ray", 2)
    assert connection.shown_version(project) == version
