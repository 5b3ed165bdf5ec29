"""Benchmark: trainings on more workers, and the word-cluster table with and without its cache.

Figures, each next to its baseline measured in the same run:

1. The word-cluster table (annotate/features.py): built from spacy-lookups-data (the baseline,
   what every training process did before the cache) against read back from the cache file, each
   in a fresh Python process so neither is helped by the other.
2. ``annotate cv``'s trainings (the model system, leave one article out on the gold: 5 equal
   trainings on the seed gold) with 1 worker (the serial baseline), 2 worker processes, and Ray
   tasks on 2 workers. The goal is ≥ 1.7× the serial run with 2 workers; but 5 equal jobs on 2
   workers take at least 3 jobs' time, so no engine can beat 5 / 3 = 1.67× there.
3. Many independent jobs: the nested search (``cross_validate(..., nested=True)``, one candidate:
   10 inner and 5 outer trainings, 15 / 8 = 1.88× at best on 2 workers) serially and on 2 worker
   processes, where 1.7× is within reach.

Beside each figure: the ideal speed-up for its job count (jobs / ⌈jobs / workers⌉, equal jobs, no
overhead) and the efficiency against it; where the time went (each training's wall-clock and
CPU time, measured in the process that ran it; the start-up before a worker's first training;
the workers' idle time between trainings; the driver's time after the last one); the load
average before and after (the machine may be shared: a job that gets less than a core shows it).
Every run must give the same predictions as its serial baseline (checked and printed).

Run: ``PYTHONPATH=. python bench/bench_train.py [--steps 300] [--no-ray] [--only cv|nested]``.
``--steps`` overrides the config's ``training.max_steps`` (default: the config's own, 300: about
an hour for everything on 2 quiet cores; ``--steps 100`` about 20 minutes, ``--steps 20`` a few).
Each worker process pays Python's and spaCy's start-up once; a short ``--steps`` makes that share
larger and the speed-up smaller.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import annotate.train as train_module
from annotate.corpus import read_gold
from annotate.labels import load_schema
from annotate.model import pipeline_bytes
from annotate.settings import load_settings
from annotate.train import cross_validate

TABLE = "from annotate.features import cluster_table; cluster_table('en', 30000, 64, 0)"
JOBS_ENV = "ANNOTATE_BENCH_JOBS"  # folder the trainings append their timings to, one file per process
_train_pipeline = train_module.train_pipeline


def _threads() -> str:
    """This process's threads (Linux: /proc) and the OpenBLAS/OpenMP threads it was started with."""
    status = Path("/proc/self/status")
    counts = [line.split()[1] for line in status.read_text().splitlines() if line.startswith("Threads:")] or ["?"]
    variables = ", ".join(
        f"{name}={os.environ.get(name, 'unset')}" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    )
    return f"{counts[0]} ({variables})"


def _record(began: float, cpu: float) -> None:
    record = {
        "pid": os.getpid(),
        "start": began,
        "end": time.time(),
        "cpu": time.process_time() - cpu,
        "threads": _threads(),
    }
    with open(Path(os.environ[JOBS_ENV]) / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def timed_train_pipeline(*args, **kwargs):
    """A training in this process (one worker), timed."""
    began, cpu = time.time(), time.process_time()
    try:
        return _train_pipeline(*args, **kwargs)
    finally:
        _record(began, cpu)


def timed_trained_pipeline(docs, config_path, labels, seed, lang, overrides, converted=None):
    """What a worker process or Ray task runs (``annotate.train.trained_pipeline``), timed there."""
    began, cpu = time.time(), time.process_time()
    try:
        nlp = train_module.train_pipeline(
            docs, config_path, labels, seed=seed, lang=lang, overrides=overrides, converted=converted
        )
        return pipeline_bytes(nlp)
    finally:
        _record(began, cpu)


@contextmanager
def timing(workers: int, engine: str) -> Iterator[None]:
    """Every training of the block timed where it runs: in this process, or in the worker it was handed to.

    Only the name the run calls is replaced, and only for the block, so that a worker (or Ray,
    which pickles functions by name where it can) finds spaCy's own ``train_pipeline``.
    """
    name, wrapper = (
        ("train_pipeline", timed_train_pipeline)
        if workers == 1 and engine == "local"
        else ("trained_pipeline", timed_trained_pipeline)
    )
    real = getattr(train_module, name)
    setattr(train_module, name, wrapper)
    try:
        yield
    finally:
        setattr(train_module, name, real)


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def ideal(jobs: int, workers: int) -> float:
    """The speed-up of ``jobs`` equal jobs on ``workers`` workers with no overhead."""
    return jobs / math.ceil(jobs / workers)


def timed(run, folder: Path) -> tuple[float, object, list[dict], float, float]:
    for old in folder.glob("*.jsonl"):
        old.unlink()
    began = time.time()
    result = run()
    ended = time.time()
    jobs = [json.loads(line) for path in folder.glob("*.jsonl") for line in path.read_text().splitlines()]
    return ended - began, result, sorted(jobs, key=lambda job: job["start"]), began, ended


def where_the_time_went(jobs: list[dict], began: float, ended: float, workers: int) -> str:
    walls = [job["end"] - job["start"] for job in jobs]
    cpus = [job["cpu"] for job in jobs]
    by_worker: dict[int, list[dict]] = {}
    for job in jobs:
        by_worker.setdefault(job["pid"], []).append(job)
    first = [min(job["start"] for job in own) - began for own in by_worker.values()]
    idle = sum(
        later["start"] - earlier["end"]
        for own in by_worker.values()
        for earlier, later in zip(own, own[1:], strict=False)
    )
    after = ended - max(job["end"] for job in jobs)
    threads = sorted({job["threads"] for job in jobs})
    return (
        f"      {len(jobs)} trainings in {len(by_worker)} process(es): wall {min(walls):.1f}–{max(walls):.1f} s "
        f"(sum {sum(walls):.0f} s), CPU {min(cpus):.1f}–{max(cpus):.1f} s (sum {sum(cpus):.0f} s, "
        f"{sum(cpus) / sum(walls):.0%} of a core while training)\n"
        f"      before each process's first training {min(first):.1f}–{max(first):.1f} s; idle between trainings "
        f"{idle:.1f} s in all; after the last {after:.1f} s; threads of a training process {', '.join(threads)}"
    )


def table_seconds(cache_dir: str) -> float:
    """The table built or read in a fresh process (Python and numpy start-up subtracted)."""
    env = {**os.environ, "ANNOTATE_CACHE_DIR": cache_dir}
    code = f"import time, numpy, spacy; t = time.perf_counter(); {TABLE}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def compare(title: str, runs: list[tuple[str, int, str]], job, folder: Path) -> None:
    print(f"\n{title}")
    baseline, expected = None, None
    for name, workers, engine in runs:
        before = load()
        with timing(workers, engine):
            seconds, predicted, jobs, began, ended = timed(lambda w=workers, e=engine: job(w, e), folder)
        baseline = baseline or seconds
        expected = expected or predicted
        same = "same predictions" if predicted == expected else "DIFFERENT predictions"
        bound = ideal(len(jobs), workers)
        speed = baseline / seconds
        print(
            f"  {name:<28} {seconds:7.1f} s  {speed:5.2f}× the serial run; ideal for {len(jobs)} jobs on {workers} "
            f"worker(s) {bound:.2f}× → {speed / bound:4.0%} of it  ({same}; load average {before} → {load()})"
        )
        print(where_the_time_went(jobs, began, ended, workers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training.max_steps (default: the config's)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    parser.add_argument("--only", choices=("cv", "nested"), help="only this comparison (and the table)")
    args = parser.parse_args()
    settings = load_settings()
    labels = load_schema(settings.schema).names
    gold = read_gold(settings.gold)
    overrides = {"training.max_steps": args.steps} if args.steps else None
    print(f"{os.cpu_count()} cores; load average (1/5/15 min) {load()} at the start")

    with tempfile.TemporaryDirectory(prefix="annotate-bench-cache-") as cache:
        built = table_seconds(cache)
        cached = table_seconds(cache)
    print("word-cluster table (30,000 words × 64), fresh process each")
    print(f"  built from spacy-lookups-data (baseline, no cache) {built:8.2f} s")
    print(f"  read from the cache file                           {cached:8.2f} s  ({built / cached:.0f}× faster)")

    def cv(workers: int, engine: str, nested: bool = False):
        result = cross_validate(
            gold,
            config_path=settings.train_config,
            patterns=[],
            labels=labels,
            systems=("model",),
            overrides=overrides,
            nested=nested,
            workers=workers,
            engine=engine,
        )
        return result.predictions["model"], [choice.to_dict() for choice in result.choices]

    steps = args.steps or "the config's"
    with tempfile.TemporaryDirectory(prefix="annotate-bench-jobs-") as jobs:
        os.environ[JOBS_ENV] = jobs  # before any worker starts: they inherit it
        if args.only in (None, "cv"):
            runs = [("1 worker (serial baseline)", 1, "local"), ("2 worker processes", 2, "local")]
            if not args.no_ray:
                runs.append(("Ray, 2 workers (local Ray)", 2, "ray"))
            title = f"cv on {settings.gold} ({len(gold)} articles, leave one out, model only, steps: {steps})"
            compare(title, runs, cv, Path(jobs))
        if args.only in (None, "nested"):
            runs = [("1 worker (serial baseline)", 1, "local"), ("2 worker processes", 2, "local")]
            title = f"nested cv on {settings.gold} (one candidate: inner and outer trainings, steps: {steps})"
            compare(title, runs, lambda w, e: cv(w, e, nested=True), Path(jobs))
    print(f"\ngoal: ≥ 1.7× the serial run with 2 workers; load average at the end {load()}")


if __name__ == "__main__":
    main()
