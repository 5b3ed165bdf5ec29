"""The local server's processes: `studio up` serves Label Studio from gunicorn's workers, not one process.

Against the real Label Studio of the test session (tests/studio_server.py), started as `studio up`
starts it. How much this shortens an annotator's wait during a refresh is measured by
bench/bench_loop.py, not here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from annotate import lsformat
from annotate.errors import StudioServerError
from annotate.records import Article, Span
from annotate.studio import launch, local
from annotate.studio.push import push
from tests.conftest import processes_of_group

pytest_plugins = ["tests.studio_server"]

ARTICLE = "Hamas said on Tuesday that it wants Israel to stop the strikes – “now”, a spokesman said."


def workers_of(leader: int) -> set[int]:
    """The server's workers: the processes of its group that its master started."""
    return {pid for pid, parent in processes_of_group(leader).items() if parent == leader}


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {condition.__doc__ or condition}")


@pytest.mark.studio
def test_up_serves_from_a_master_and_its_workers(local_studio):
    def all_started():
        """every worker has started (gunicorn starts them a fraction of a second apart)"""
        workers = workers_of(local_studio.pid)
        return workers if len(workers) == launch.DEFAULT_WORKERS else None

    workers = wait_for(all_started)
    members = set(processes_of_group(local_studio.pid))
    assert members == workers | {local_studio.pid}
    for pid in members:  # the master is the server `down` stops (with its group); a worker alone is not
        assert local._is_our_server(pid, local.StudioPaths(local_studio.root).data) == (pid == local_studio.pid)
    assert local._listens_on(local_studio.pid, local_studio.port)


@pytest.mark.studio
def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(local_studio):
    victim = min(workers_of(local_studio.pid))
    os.kill(victim, signal.SIGKILL)
    assert local.health(local_studio.url)

    def replaced():
        """a new worker takes the killed one's place"""
        workers = workers_of(local_studio.pid)
        return victim not in workers and len(workers) == launch.DEFAULT_WORKERS

    wait_for(replaced)
    assert local_studio.connect().whoami()


@pytest.mark.studio
def test_a_long_query_string_is_served_as_label_studio_serves_it(local_studio):
    # The Data Manager puts its filters in the query string; gunicorn's default refuses a request
    # line over 4 KiB with HTTP 400, Label Studio's own server takes it.
    headers = {"Authorization": f"Token {local_studio.token}"}
    long_query = {"page_size": "1", "padding": "x" * 9000}
    answer = httpx.get(f"{local_studio.url}/api/projects/", params=long_query, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text[:200]


@pytest.mark.studio
def test_writes_from_several_clients_at_once_all_land_once(local_studio, schema):
    """Several processes write to one SQLite file: imports and annotations at once all succeed, none twice."""
    title = f"Processes {uuid.uuid4().hex[:10]}"
    push(local_studio.connect(), [Article("first", ARTICLE)], title=title, schema=schema)
    project = local_studio.connect().project(title)
    span = Span(0, 5, "ACTOR", "Hamas")
    clients, rounds, batch = 6, 4, 10
    failures: list[BaseException] = []
    annotated: list[int] = []
    start = threading.Barrier(clients)

    def write(number: int) -> None:
        studio = local_studio.connect()
        start.wait()
        try:
            for round_ in range(rounds):
                payloads = [
                    lsformat.task_payload(Article(f"c{number}-r{round_}-{item}", ARTICLE)) for item in range(batch)
                ]
                task_ids = studio.import_tasks(project, payloads)
                annotated.append(studio.annotate(task_ids[0], [span]))
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    index = local_studio.connect().task_index(project)
    assert len(index) == 1 + clients * rounds * batch and all(len(tasks) == 1 for tasks in index.values())
    assert len(set(annotated)) == clients * rounds


def test_the_launcher_refuses_what_it_cannot_serve():
    for arguments in (["--workers", "0", "--timeout", "5", "start"], ["--workers", "2", "--timeout", "5", "init"]):
        run = subprocess.run([sys.executable, "-m", launch.LAUNCHER, *arguments], capture_output=True, text=True)
        assert run.returncode == 2 and "error:" in run.stderr and "Traceback" not in run.stderr


def test_up_refuses_no_workers_before_starting_anything(tmp_path):
    with pytest.raises(StudioServerError, match="--workers 0: Label Studio needs at least one process"):
        local.up(tmp_path, port=local.free_port(), workers=0)
    assert not (tmp_path / local.STUDIO_DIR).exists()


def test_a_missing_server_package_is_named_with_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "gunicorn" else real(name))
    with pytest.raises(StudioServerError, match=r"not installed in this environment \(.*\): gunicorn; pip install"):
        local.require_label_studio()


def test_gunicorn_waits_for_a_request_longer_than_label_studio_waits_for_predictions():
    settings = launch.gunicorn_settings("::1", 8080, 4, local.REQUEST_TIMEOUT_S)
    assert settings["bind"] == ["[::1]:8080"] and settings["workers"] == 4
    assert settings["timeout"] > local.ML_TIMEOUT_PREDICT_S


@pytest.mark.parametrize(
    ("program", "ours"),
    [([launch.LAUNCHER], True), (["label-studio", "start"], True), (["something-else"], False)],
)
def test_down_knows_its_server_by_the_launcher_or_an_earlier_label_studio_start(tmp_path, program, ours):
    """A server an earlier version started as `label-studio start` is still stopped by `studio down`."""
    data = local.StudioPaths(tmp_path).data
    command = [sys.executable, "-c", "import time; time.sleep(60)", *program, "--data-dir", str(data)]
    process = subprocess.Popen(command, start_new_session=True)
    try:
        assert local._is_our_server(process.pid, data) is ours
        assert not local._is_our_server(process.pid, tmp_path / "another" / "data")
    finally:
        process.kill()
        process.wait()
