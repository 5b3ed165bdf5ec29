"""Children belong to their parent's lifetime, and every wait has a limit: real processes, real signals.

Each test starts `annotate serve` or `annotate apply` as a process of its own (Linux: children are
found in /proc), sends the signal a terminal or `kill` would, and checks the exit, the output and
that no process is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.backend_process import ROOT, BackendProcess


def _children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _is_spawned(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _ignores_interrupt(pid: int) -> bool:
    """Whether the process ignores SIGINT (its SigIgn mask in /proc)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return any(_alive(int(entry.name)) and os.getpgid(int(entry.name)) == group for entry in _pids())


def _pids():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                os.getpgid(int(entry.name))
                yield entry


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.1)


@contextlib.contextmanager
def _silent_server():
    """A TCP port that accepts connections and never says a word (a hung Label Studio or Ray head)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in held:
            connection.close()


def _post(url: str, body: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(
        url, json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


# --- serve: a training child ends with the server -------------------------------------------------


@pytest.fixture
def training_backend(ruler_model_dir, tmp_path):
    """A real `annotate serve` whose training child is busy (connecting to a Label Studio that never answers)."""
    with _silent_server() as port:
        backend = BackendProcess(
            ruler_model_dir,
            tmp_path / "serve.log",
            env={"LABEL_STUDIO_URL": f"http://127.0.0.1:{port}", "LABEL_STUDIO_API_KEY": "key"},
            arguments=["--models-dir", str(tmp_path / "live")],
        ).start()
        try:
            answer = _post(f"{backend.url}/webhook", {"action": "START_TRAINING", "project": {"id": 1, "title": "P"}})
            assert answer == {"status": "started"}
            pid = backend.process.pid
            _wait_for(lambda: any(_is_spawned(child) for child in _children(pid)), 20, "no training child started")
            yield backend, _children(pid)  # the training child, and multiprocessing's resource tracker
        finally:
            backend.stop()


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_sigterm_to_serve_during_a_training_ends_the_training_child_and_writes_no_model(
    training_backend, tmp_path, sent
):
    backend, children = training_backend
    process = backend.process
    if sent == signal.SIGINT:
        spawned = [child for child in children if _is_spawned(child)]
        _wait_for(lambda: all(_ignores_interrupt(child) for child in spawned), 20, "the child did not start")
        os.killpg(process.pid, sent)  # a terminal's Ctrl-C reaches the training child too
    else:
        process.send_signal(sent)
    process.wait(timeout=30)
    _wait_for(lambda: not any(_alive(child) for child in children), 5, "the training child still runs")
    assert not (tmp_path / "live").exists() or not any((tmp_path / "live").iterdir())
    assert "Traceback" not in backend.log_path.read_text(encoding="utf-8", errors="replace")


def test_a_training_child_ends_itself_when_serve_is_killed_outright(training_backend):
    backend, children = training_backend
    backend.process.send_signal(signal.SIGKILL)
    backend.process.wait(timeout=10)
    _wait_for(lambda: not any(_alive(child) for child in children), 5, "the orphaned training child still runs")
    assert not (backend.log_path.parent / "live").exists()


# --- apply: Ctrl-C with workers, a Ray head that never answers --------------------------------------


@pytest.fixture
def big_source(tmp_path) -> Path:
    """Enough articles that two workers are still busy seconds after they start."""
    words = " ".join(["Hamas", "said", "Israel", "and", "the", "talks", "went", "on", "late"] * 40)
    path = tmp_path / "articles.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        for number in range(20_000):
            stream.write(json.dumps({"id": f"a{number}", "text": f"{words} {number}"}) + "\n")
    return path


def _start_apply(model: Path, source: Path, out: Path, terminal: bool, extra=(), env=None):
    """`annotate apply` in a session of its own, its output on a pipe or a terminal; returns it and a finisher."""
    command = [sys.executable, "-m", "annotate", "apply", str(model), str(source), "--out", str(out), *extra]
    leader, follower = pty.openpty() if terminal else (-1, -1)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=follower if terminal else subprocess.PIPE,
        stderr=follower if terminal else subprocess.STDOUT,
        start_new_session=True,
    )
    if not terminal:
        return process, lambda timeout: process.communicate(timeout=timeout)[0].decode("utf-8", "replace")
    os.close(follower)
    output = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 4096):
                output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def finish(timeout: float) -> str:
        process.wait(timeout=timeout)
        reader.join(5)
        os.close(leader)
        return output.decode("utf-8", "replace")

    return process, finish


@pytest.mark.parametrize(
    ("terminal", "sent"),
    [(False, signal.SIGINT), (True, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["ctrl-c, pipe", "ctrl-c, terminal", "sigterm"],
)
def test_ctrl_c_during_apply_with_two_workers_exits_promptly_with_no_traceback_and_no_process_left(
    ruler_model_dir, big_source, tmp_path, terminal, sent
):
    out = tmp_path / "out"
    process, finish = _start_apply(ruler_model_dir, big_source, out, terminal, ["--workers", "2"])
    try:
        _wait_for(lambda: len(_children(process.pid)) >= 2, 120, "apply's two workers did not start")
        time.sleep(0.5)
        if sent == signal.SIGINT:
            os.killpg(process.pid, sent)  # what a terminal does: the whole job gets it
        else:
            process.send_signal(sent)  # `kill PID`: only the command itself gets it
        began = time.monotonic()
        output = finish(15)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert time.monotonic() - began < 15
    assert process.returncode == (130 if sent == signal.SIGINT else 128 + signal.SIGTERM), output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    _wait_for(lambda: not _group_alive(process.pid), 5, "a worker of apply still runs")
    manifest = json.loads((out / ".apply-manifest.json").read_text(encoding="utf-8"))
    assert manifest["written_by"] == "annotate apply"  # what was done is recorded: a rerun resumes
    assert not list(out.glob(".*.tmp"))


def test_a_ray_address_that_never_answers_stops_apply_with_one_line_after_the_limit(ruler_model_dir, tmp_path):
    pytest.importorskip("ray")
    source = tmp_path / "articles.jsonl"
    source.write_text(json.dumps({"id": "a1", "text": "Hamas said so."}) + "\n", encoding="utf-8")
    with _silent_server() as port:
        process, finish = _start_apply(
            ruler_model_dir,
            source,
            tmp_path / "out",
            False,
            ["--engine", "ray", "--workers", "1"],
            env={"RAY_ADDRESS": f"127.0.0.1:{port}", "ANNOTATE_RAY_CONNECT_TIMEOUT": "3"},
        )
        try:
            output = finish(90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert lines == [f"Error: RAY_ADDRESS 127.0.0.1:{port}: no Ray cluster answered within 3 s"], output
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()  # checked before anything was written
    _wait_for(lambda: not _group_alive(process.pid), 10, "a Ray process of apply still runs")
