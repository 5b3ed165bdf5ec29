"""Benchmark: storing a refresh's predictions in Label Studio, its default import (baseline) next to the batched one.

Label Studio 1.23's prediction import recounts every task of the project on each request unless
``fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short`` is on (`annotate studio
up` turns it on; a team server's admin sets it in Label Studio's environment). For each mode this
starts a temporary Label Studio, pushes ``--tasks`` synthetic seed-length articles, and uploads one
prediction per task exactly as the refresh does (pages of ``REFRESH_PAGE``, requests of at most
``UPLOAD_REGIONS`` regions; ``--regions`` per prediction, 99 like the gold's articles), timing each
request. It prints the total, the seconds per request at the start and at the end, and, from a
straight line fitted to the seconds per request against the tasks already holding a prediction,
what ``--project`` tasks (default 100,000) would take.

Run: ``PYTHONPATH=. python bench/bench_import.py [--tasks 4000] [--regions 99] [--project 100000]``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_apply import synthetic_archive  # noqa: E402

from annotate.articles import read_articles  # noqa: E402
from annotate.labels import load_schema  # noqa: E402
from annotate.lsformat import span_result  # noqa: E402
from annotate.records import Span  # noqa: E402
from annotate.settings import load_settings  # noqa: E402
from annotate.studio import local  # noqa: E402
from annotate.studio.client import Studio  # noqa: E402
from annotate.studio.link import REFRESH_PAGE, upload_requests  # noqa: E402
from annotate.studio.push import push  # noqa: E402

MODES = {"Label Studio's default import (baseline)": "false", "batched import (what `studio up` sets)": "true"}


def prediction(text: str, regions: int, labels: list[str]) -> dict:
    """A prediction of ``regions`` one-word spans spread over the text (the shape the model's predictions have)."""
    words = list(re.finditer(r"\S+", text))
    step = max(1, len(words) // regions)
    result = []
    for number, word in enumerate(words[::step][:regions]):
        region = span_result(Span(word.start(), word.end(), labels[number % len(labels)], word.group()))
        region["score"] = 0.9
        result.append(region)
    return {"model_version": "bench-import", "score": 0.5, "result": result}


def one_mode(flag: str, count: int, regions: int, work: Path, schema) -> list[tuple[int, float, int]]:
    """(tasks holding a prediction before the request, its seconds, its predictions) for every upload request."""
    os.environ[local.BATCHED_PREDICTION_IMPORT] = flag
    root = work / f"studio-{flag}"
    url = local.up(root, port=local.free_port(), timeout=300).url
    try:
        studio = Studio(url, local.read_credentials(local.StudioPaths(root).credentials).token)
        archive = work / "articles.jsonl"
        if not archive.exists():
            synthetic_archive(load_settings(ROOT).seeds, count, archive)
        articles = {article.id: article for article in read_articles([archive])}
        push(studio, list(articles.values()), title="bench import", schema=schema)
        project = studio.project("bench import")
        index = studio.task_index(project)
        tasks = sorted((int(task_id), doc_id) for doc_id, found in index.items() for task_id, _ in found)
        timings, held = [], 0
        for start in range(0, len(tasks), REFRESH_PAGE):
            page = [
                {"task": task_id, **prediction(articles[doc_id].text, regions, schema.names)}
                for task_id, doc_id in tasks[start : start + REFRESH_PAGE]
            ]
            for request in upload_requests(page):
                began = time.perf_counter()
                studio.import_predictions(project, request)
                timings.append((held, time.perf_counter() - began, len(request)))
                held += len(request)
        return timings
    finally:
        local.down(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--regions", type=int, default=99, help="regions (spans) per prediction")
    parser.add_argument("--project", type=int, default=100_000, help="project size to project the figures to")
    args = parser.parse_args()
    schema = load_schema(load_settings(ROOT).schema)
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    print(f"{args.tasks} tasks, {args.regions} regions per prediction; work in {work}")
    for mode, flag in MODES.items():
        timings = one_mode(flag, args.tasks, args.regions, work, schema)
        held = np.array([t[0] for t in timings], dtype=float)
        seconds = np.array([t[1] for t in timings])
        per_request = float(np.mean([t[2] for t in timings]))
        tenth = max(1, len(timings) // 10)
        slope, intercept = np.polyfit(held, seconds, 1)
        starts = np.arange(0, args.project, per_request)
        projected = float(np.sum(intercept + slope * starts))
        print(
            f"{mode}: {len(timings)} requests of ~{per_request:.0f} predictions, {seconds.sum():.1f} s in all "
            f"({args.tasks / seconds.sum():.0f} tasks/s); seconds per request: "
            f"first tenth {seconds[:tenth].mean():.2f}, last tenth {seconds[-tenth:].mean():.2f}; "
            f"fitted {intercept:.3f} s + {1e6 * slope:.1f} ms per 1,000 tasks already predicted "
            f"→ {args.project:,} tasks: {projected / 60:.0f} min"
        )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
