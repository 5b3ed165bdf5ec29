"""Benchmark: what opening a task costs with no refresh running, a live prediction next to a stored one (baseline).

Pushes ``--articles`` synthetic seed-length articles to a temporary Label Studio, serves ``--model``
with `annotate serve`, connects it and lets its refresh store every prediction. Then, task by task:
open it (its prediction stored: the baseline), delete that prediction, open it again (Label Studio
now asks /health, /setup and /predict and stores the answer before replying: a live open), and
send the same text to the backend's /predict directly (the backend's own share of a live open).

Run: ``PYTHONPATH=. python bench/bench_open.py --model DIR [--articles 60]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_apply import synthetic_archive  # noqa: E402
from bench_loop import percentile  # noqa: E402

from annotate.articles import read_articles  # noqa: E402
from annotate.labels import load_schema  # noqa: E402
from annotate.settings import load_settings  # noqa: E402
from annotate.studio import local  # noqa: E402
from annotate.studio.client import Studio  # noqa: E402
from annotate.studio.link import connect_backend, wait_for_refresh  # noqa: E402
from annotate.studio.push import push  # noqa: E402
from tests.backend_process import BackendProcess  # noqa: E402

WARM_UP = 3  # opens left out of the figures (first queries, caches)


def timed(call, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    answer = call(*args, **kwargs)
    return time.perf_counter() - began, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a pipeline saved by `annotate train`")
    parser.add_argument("--articles", type=int, default=60)
    args = parser.parse_args()
    settings = load_settings(ROOT)
    schema = load_schema(settings.schema)
    work = Path(tempfile.mkdtemp(prefix="bench-open-"))
    archive = work / "articles.jsonl"
    synthetic_archive(settings.seeds, args.articles, archive)
    url = local.up(work / "studio", port=local.free_port(), timeout=300).url
    token = local.read_credentials(local.StudioPaths(work / "studio").credentials).token
    studio = Studio(url, token)
    backend = None
    try:
        push(studio, read_articles([archive]), title="bench open", schema=schema)
        project = studio.project("bench open")
        env = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token}
        backend = BackendProcess(args.model, work / "backend.log", env, []).start()
        connect_backend(studio, title="bench open", backend_url=backend.url)
        wait_for_refresh(backend.url)
        figures: dict[str, list[float]] = {"stored (baseline)": [], "live": [], "backend /predict alone": []}
        with httpx.Client(timeout=60) as client:
            for prediction in studio.project_predictions(project):
                task_id = int(prediction["task"])
                figures["stored (baseline)"].append(timed(studio.task, task_id)[0])
                studio.delete_prediction(int(prediction["id"]))
                seconds, task = timed(studio.task, task_id)
                figures["live"].append(seconds)
                body = {"tasks": [{"id": task_id, "data": task["data"]}], "project": f"{project.id}.0"}
                seconds, answer = timed(client.post, f"{backend.url}/predict", json=body)
                answer.raise_for_status()
                figures["backend /predict alone"].append(seconds)
    finally:
        if backend is not None:
            backend.stop()
        local.down(work / "studio")
    for what, seconds in figures.items():
        kept = seconds[WARM_UP:]
        print(
            f"task open, {what}: p50 {1000 * percentile(kept, 0.5):.0f} ms, "
            f"p95 {1000 * percentile(kept, 0.95):.0f} ms over {len(kept)}"
        )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
