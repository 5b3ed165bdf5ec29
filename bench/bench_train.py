"""Benchmark: cross-validation on more workers, and the word-cluster table with and without its cache.

Two figures, each next to its baseline measured in the same run:

1. ``annotate cv``'s trainings (the model system, leave one article out on the gold) with 1 worker
   (the serial baseline), 2 worker processes, and Ray tasks on 2 workers; the goal is ≥ 1.7× the
   serial run with 2 workers. Every run must give the same predictions (checked and printed).
2. The word-cluster table (annotate/features.py): built from spacy-lookups-data (the baseline,
   what every training process did before the cache) against read back from the cache file, each
   in a fresh Python process so neither is helped by the other.

Run: ``PYTHONPATH=. python bench/bench_train.py [--steps 300] [--no-ray]``. ``--steps`` overrides
the config's ``training.max_steps`` (default: the config's own, 300: about 10 minutes per run on
2 quiet cores). Each worker process pays Python's and spaCy's start-up once; a short ``--steps``
makes that share larger and the speed-up smaller.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from annotate.corpus import read_gold
from annotate.labels import load_schema
from annotate.settings import load_settings
from annotate.train import cross_validate

TABLE = "from annotate.features import cluster_table; cluster_table('en', 30000, 64, 0)"


def timed_cv(gold, settings, labels, *, workers: int, engine: str, overrides: dict | None) -> tuple[float, list]:
    began = time.perf_counter()
    result = cross_validate(
        gold,
        config_path=settings.train_config,
        patterns=[],
        labels=labels,
        systems=("model",),
        overrides=overrides,
        workers=workers,
        engine=engine,
    )
    return time.perf_counter() - began, result.predictions["model"]


def table_seconds(cache_dir: str) -> float:
    """The table built or read in a fresh process (Python and numpy start-up subtracted)."""
    env = {**os.environ, "ANNOTATE_CACHE_DIR": cache_dir}
    code = f"import time, numpy, spacy; t = time.perf_counter(); {TABLE}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training.max_steps (default: the config's)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    args = parser.parse_args()
    settings = load_settings()
    labels = load_schema(settings.schema).names
    gold = read_gold(settings.gold)
    overrides = {"training.max_steps": args.steps} if args.steps else None

    with tempfile.TemporaryDirectory(prefix="annotate-bench-cache-") as cache:
        built = table_seconds(cache)
        cached = table_seconds(cache)
    print("word-cluster table (30,000 words × 64), fresh process each")
    print(f"  built from spacy-lookups-data (baseline, no cache) {built:8.2f} s")
    print(f"  read from the cache file                           {cached:8.2f} s  ({built / cached:.0f}× faster)")

    steps = args.steps or "the config's"
    print(f"\ncv on {settings.gold} ({len(gold)} articles, leave one out, model only, steps: {steps})")
    runs = [("1 worker (serial baseline)", 1, "local"), ("2 worker processes", 2, "local")]
    if not args.no_ray:
        runs.append(("Ray, 2 workers (local Ray)", 2, "ray"))
    baseline, expected = None, None
    for name, workers, engine in runs:
        seconds, predicted = timed_cv(gold, settings, labels, workers=workers, engine=engine, overrides=overrides)
        baseline = baseline or seconds
        expected = expected or predicted
        same = "same predictions" if predicted == expected else "DIFFERENT predictions"
        print(f"  {name:<28} {seconds:8.1f} s  {baseline / seconds:5.2f}× the serial run  ({same})")
    print("goal: ≥ 1.7× the serial run with 2 workers")


if __name__ == "__main__":
    main()
