"""Benchmark: the ML backend (`annotate serve`) against plain ``nlp.pipe`` in the same run.

Figures: ``/predict`` latency p50/p95 for one seed article and for a batch of 10, next to
``nlp.pipe`` on the same texts in this process (goal: p50 overhead ≤ 1.2×); ``/health`` p95 while
a training runs (goal < 100 ms); retraining time on the seed gold from "Start training" in a real
Label Studio to the new model served, next to ``annotate.train.train`` on the same gold in this
process. Starts a temporary Label Studio (or uses LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY, which must
allow loopback ML backends) and a backend on loopback, and stops what it started. Run:
``PYTHONPATH=. python bench/bench_backend.py [--model DIR] [--config CFG] [--repeat 30]``.
Without ``--model`` it trains one on the gold first with the config (default configs/spancat.cfg).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotate.articles import read_articles  # noqa: E402
from annotate.corpus import read_gold  # noqa: E402
from annotate.labels import load_schema  # noqa: E402
from annotate.model import load_pipeline  # noqa: E402
from annotate.settings import load_settings  # noqa: E402
from annotate.studio import local  # noqa: E402
from annotate.studio.client import Studio  # noqa: E402
from annotate.studio.link import connect_backend  # noqa: E402
from annotate.studio.push import push  # noqa: E402
from annotate.train import train  # noqa: E402
from tests.backend_process import BackendProcess  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def timed(function, repeat: int) -> list[float]:
    function()  # warm-up
    found = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        found.append(time.perf_counter() - began)
    return found


def interleaved(first, second, repeat: int) -> tuple[list[float], list[float]]:
    """Time two functions turn about, so a machine shared with other work loads both alike."""
    first(), second()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for function, found in zip((first, second), times, strict=True):
            began = time.perf_counter()
            function()
            found.append(time.perf_counter() - began)
    return times


def row(name: str, values: list[float], baseline: list[float] | None = None) -> str:
    p50, p95 = statistics.median(values) * 1000, percentile(values, 0.95) * 1000
    text = f"{name:<44} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms"
    if baseline is not None:
        text += f"   p50 overhead {statistics.median(values) / statistics.median(baseline):.2f}x"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--latency-only", action="store_true", help="skip Label Studio and the retraining")
    args = parser.parse_args()
    settings = load_settings()
    schema = load_schema(settings.schema)
    gold = read_gold(settings.gold)
    config = args.config or settings.root / "configs" / "spancat.cfg"
    work = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    began = time.perf_counter()
    model = args.model
    if model is None:
        model = work / "model-bench"
        train(gold, model, config_path=config, labels=schema.names, schema_sha256=schema.sha256)
    in_process_training = time.perf_counter() - began
    nlp = load_pipeline(model)
    articles = read_articles([settings.seeds])
    one = [articles[0].text]
    ten = [article.text for article in (articles * 2)[:10]]
    words = [sum(len(text.split()) for text in texts) for texts in (one, ten)]
    print(f"model {model}; one article {words[0]} words, batch of 10 {words[1]} words; {args.repeat} requests each")

    backend = BackendProcess(
        model, work / "backend.log", {}, ["--train-config", str(config), "--models-dir", str(work / "live")]
    )
    studio_root = work / "studio"
    try:
        backend.start()
        for name, texts in (("one article", one), ("batch of 10", ten)):
            tasks = [{"id": number, "data": {"text": text}} for number, text in enumerate(texts)]
            pipe, served = interleaved(
                lambda texts=texts: list(nlp.pipe(texts)),
                lambda tasks=tasks: post(f"{backend.url}/predict", {"tasks": tasks}),
                args.repeat,
            )
            print(row(f"nlp.pipe, {name} (baseline)", pipe))
            print(row(f"POST /predict, {name}", served, pipe))
        idle = timed(lambda: backend.health(), args.repeat)
        print(row("GET /health, idle (baseline)", idle))
        if args.latency_only:
            return

        url, token = os.environ.get("LABEL_STUDIO_URL", ""), os.environ.get("LABEL_STUDIO_API_KEY", "")
        if not (url and token):
            url = local.up(studio_root, port=local.free_port(), timeout=300).url
            token = local.read_credentials(local.StudioPaths(studio_root).credentials).token
        connection = Studio(url, token)
        backend.stop()
        backend.env = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token}
        backend.start()
        title = f"Bench backend {time.strftime('%H%M%S')}"
        push(connection, articles, title=title, schema=schema)
        tasks = {doc_id: found[0][0] for doc_id, found in connection.task_index(connection.project(title)).items()}
        for doc in gold:
            connection.annotate(tasks[doc.id], doc.spans)
        link = connect_backend(connection, title=title, backend_url=backend.url)
        pressed = time.perf_counter()
        connection.train_ml_backend(link.backend_id)
        during = []
        while True:
            began = time.perf_counter()
            health = backend.health(timeout=5.0)
            during.append(time.perf_counter() - began)
            if health["trainings"] >= 1 and not health["training"]:
                break
            time.sleep(0.05)
        retraining = time.perf_counter() - pressed
        print(row(f"GET /health during the training ({len(during)} calls)", during, idle))
        outcome = health["last_training"]
        state = "new model served" if outcome["ok"] else f"FAILED: {outcome['error']}"
        print(
            f"retraining on the seed gold ({len(gold)} articles), Start training → {state}: {retraining:.1f} s "
            f"(training in the child {outcome['seconds']:.1f} s incl. re-predicting; "
            f"baseline annotate.train in-process: {in_process_training:.1f} s{'' if args.model is None else ', n/a'})"
        )
    finally:
        backend.stop()
        local.down(studio_root)


if __name__ == "__main__":
    main()
