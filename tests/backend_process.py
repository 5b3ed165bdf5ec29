"""A real `annotate serve` process on a free loopback port, for tests and the benchmark; stopped by its pid."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from spacy.util import load_config

from annotate.studio import local

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BackendProcess:
    """``annotate serve MODEL_DIR`` started in a session of its own (its training children die with it)."""

    model_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> BackendProcess:
        self.port = local.free_port()
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        command = [sys.executable, "-m", "annotate", "serve", str(self.model_dir), "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command + self.arguments,
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the backend exited with {self.process.returncode}: {self.log_path.read_text()}")
            with contextlib.suppress(OSError, ValueError):
                if self.health(timeout=1.0)["status"] == "UP":
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the backend did not answer within {timeout} s: {self.log_path.read_text()}")

    def health(self, timeout: float = 1.0) -> dict:
        """GET /health, with the basic auth the backend was started with (if any)."""
        request = urllib.request.Request(f"{self.url}/health")
        user, password = self.env.get("ANNOTATE_BACKEND_USER"), self.env.get("ANNOTATE_BACKEND_PASSWORD")
        if user and password:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        """SIGTERM the process group (uvicorn and any training child), SIGKILL after 20 s."""
        if self.process is None:
            return
        for sent in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sent)
            try:
                self.process.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None


def tiny_config(path: Path) -> Path:
    """The project's spancat config, shrunk so a training on a few articles takes seconds (60 steps, width 32).

    60, not 30: with one tok2vec shared by span_finder and spancat, 30 steps leave span_finder
    proposing nothing, and these tests need spans with differing scores.
    """
    config = load_config(ROOT / "configs" / "spancat.cfg", interpolate=False)
    config["training"]["max_steps"] = 60
    config["training"]["eval_frequency"] = 60
    tok2vec = config["components"]["tok2vec"]["model"]  # span_finder and spancat listen to it
    tok2vec["embed"]["width"] = 32
    tok2vec["encode"]["width"] = 32
    tok2vec["embed"]["rows"] = [500, 100, 250, 100]
    tok2vec["embed"]["include_static_vectors"] = False  # no cluster table to load: seconds, not minutes
    config["components"]["spancat"]["model"]["hidden_size"] = 32
    config["initialize"]["before_init"] = None
    # After 60 steps, a model that must also score the cue-word candidates predicts no span at
    # all; these tests need spans with differing scores (as the project's model gives after full
    # training), so the tiny model keeps span_finder's candidates only and one threshold.
    config["components"]["spancat"]["suggester"] = {"@misc": "spacy.preset_spans_suggester.v1", "spans_key": "sc"}
    config["components"]["spancat"]["threshold"] = 0.5
    config["components"]["best_per_label"]["thresholds"] = {}
    config.to_disk(path)
    return path
