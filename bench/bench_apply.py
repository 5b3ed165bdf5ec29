"""Benchmark: `annotate apply` words/s with 2 workers (local and Ray) next to single-process nlp.pipe.

A synthetic archive is made from the seed articles' sentences, shuffled into articles of seed
length (``--articles`` of them). In one run it measures:

- the baseline: one process loads the model, reads the JSONL and runs ``nlp.pipe(texts, batch_size=64)``;
- ``apply --engine local --workers 2`` and ``apply --engine ray --workers 2`` over the same
  archive as JSONL, everything included (loading the model, reading, checking, hashing, writing
  shards and manifest), except the start of the local Ray itself, timed and printed on its own line;
- peak memory (RSS of the apply process and of its worker processes) of the local engine at two
  archive sizes 4× apart, each in a fresh process.

Goals on a 2-core machine: each engine ≥ 1.7× the baseline; peak memory at the larger size within
10% of the smaller. Run: ``PYTHONPATH=. python bench/bench_apply.py [--model DIR] [--articles 400]``.
Without ``--model`` it trains one on the gold first with configs/spancat.cfg (a minute or more).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotate.apply import MANIFEST, apply  # noqa: E402
from annotate.articles import read_articles  # noqa: E402
from annotate.labels import load_schema  # noqa: E402
from annotate.settings import load_settings  # noqa: E402

# Runs apply in a fresh process and prints its peak RSS and its worker processes' peak RSS (KiB).
MEMORY_PROBE = """
import resource, sys
from annotate.apply import apply
from annotate.labels import load_schema
apply(sys.argv[1], [sys.argv[2]], sys.argv[3], schema=load_schema(sys.argv[4]), workers=2, shard_size=int(sys.argv[5]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def synthetic_archive(seeds: Path, count: int, path: Path, seed: int = 0) -> int:
    """Seed sentences shuffled into ``count`` articles of seed lengths, as JSONL; returns the words written."""
    articles = read_articles([seeds])
    sentences = [s for a in articles for s in re.split(r"(?<=[.!?])\s+", a.text.replace("\n", " ")) if s.strip()]
    lengths = [len(a.text.split()) for a in articles]
    rng = random.Random(seed)
    words = 0
    with path.open("w", encoding="utf-8") as stream:
        for number in range(count):
            target, chosen, size = rng.choice(lengths), [], 0
            while size < target:
                sentence = rng.choice(sentences)
                chosen.append(sentence)
                size += len(sentence.split())
            stream.write(json.dumps({"id": f"synthetic-{number:07d}", "text": " ".join(chosen)}) + "\n")
            words += size
    return words


def baseline(model: Path, path: Path, words: int) -> tuple[float, float]:
    """The job as one plain script would do it: load the model, read the texts, ``nlp.pipe`` over them.

    Loading is counted, as it is in the engines' figures (each of their workers loads or forks the model).
    """
    import spacy

    started, cpu = time.perf_counter(), time.process_time()
    nlp = spacy.load(model)
    texts = (json.loads(line)["text"] for line in path.open(encoding="utf-8"))
    for _doc in nlp.pipe(texts, batch_size=64):
        pass
    return words / (time.perf_counter() - started), words / (time.process_time() - cpu)


def engine(model: Path, path: Path, out: Path, schema, name: str, words: int, shard_size: int) -> float:
    started = time.perf_counter()
    apply(model, [path], out, schema=schema, engine=name, workers=2, shard_size=shard_size)
    return words / (time.perf_counter() - started)


def peak_memory(model: Path, path: Path, out: Path, schema_path: Path, shard_size: int) -> tuple[int, int, float]:
    """Peak RSS (KiB) of an apply process and of its workers, and the CPU seconds all of them used."""
    command = [sys.executable, "-c", MEMORY_PROBE, str(model), str(path), str(out), str(schema_path), str(shard_size)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    main, workers = result.stdout.split()[-2:]
    return int(main), int(workers), cpu


def _shards(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("part-*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a pipeline saved by `annotate train`")
    parser.add_argument("--articles", type=int, default=400, help="articles in the archive for the speed runs")
    parser.add_argument("--memory-articles", type=int, default=200, help="smaller archive for memory (×4 as well)")
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is shown")
    parser.add_argument("--skip-ray", action="store_true", help="without the [scale] extra")
    args = parser.parse_args()
    settings = load_settings(ROOT)
    schema = load_schema(settings.schema)
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as folder:
        work = Path(folder)
        model = args.model
        if model is None:
            from annotate.corpus import read_gold
            from annotate.train import train_pipeline

            model = work / "model"
            train_pipeline(read_gold(settings.gold), settings.root / "configs" / "spancat.cfg", schema.names).to_disk(
                model
            )
        archive = work / "archive.jsonl"
        words = synthetic_archive(settings.seeds, args.articles, archive)
        print(f"{args.articles} articles, {words:,} words (whitespace-separated), model {model}")
        print(
            f"shards of {args.shard_size} articles; 2 workers; {args.rounds} round(s), the three runs alternating, "
            "best of each (on a shared machine figures are noisy)"
        )
        names = ["baseline: nlp.pipe, 1 process", "apply --engine local --workers 2"]
        ray_start = None
        if not args.skip_ray:
            import ray

            names.append("apply --engine ray --workers 2")
            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            ray_start = time.perf_counter() - started
        rates: dict[str, list[float]] = {name: [] for name in names}
        baseline_cpu = []
        try:
            for number in range(args.rounds):
                wall, cpu = baseline(model, archive, words)
                rates[names[0]].append(wall)
                baseline_cpu.append(cpu)
                for name, kind in zip(names[1:], ("local", "ray"), strict=False):
                    out = work / f"{kind}-{number}"
                    rates[name].append(engine(model, archive, out, schema, kind, words, args.shard_size))
        finally:
            if ray_start is not None:
                ray.shutdown()
        base = max(rates[names[0]])
        print(f"{'':<40} {'words/s':>10} {'× baseline':>11}   each round")
        for name, found in rates.items():
            rounds = ", ".join(f"{rate:,.0f}" for rate in found)
            print(f"{name:<40} {max(found):>10,.0f} {max(found) / base:>10.2f}×   {rounds}")
        size = sum(len(data) for data in _shards(work / "local-0").values())
        spans = json.loads((work / "local-0" / MANIFEST).read_text())["counts"]["spans"]
        print(f"output: {size / args.articles:,.0f} bytes per article, {spans / args.articles:.1f} spans per article")
        if ray_start is not None:
            print(f"(starting the local Ray, not counted above: {ray_start:.1f} s)")
            same = _shards(work / "local-0") == _shards(work / "ray-0")
            print(f"local and ray shards byte-identical: {'yes' if same else 'NO'}")
        sizes = (args.memory_articles, 4 * args.memory_articles)
        peaks, sized_words = [], []
        for size in sizes:
            path = work / f"memory-{size}.jsonl"
            sized_words.append(synthetic_archive(settings.seeds, size, path, seed=1))
            peaks.append(peak_memory(model, path, work / f"memory-out-{size}", settings.schema, args.shard_size))
        print(f"{'peak RSS, local engine, 2 workers':<40} {'apply':>10} {'a worker':>11}")
        for size, (main_kib, worker_kib, _) in zip(sizes, peaks, strict=True):
            print(f"{f'{size} articles':<40} {main_kib / 1024:>8,.0f} MB {worker_kib / 1024:>8,.0f} MB")
        growth = peaks[1][0] / peaks[0][0] - 1
        print(f"apply process at 4× the articles: {growth:+.1%} (goal: within 10%)")
        # CPU time moves much less with the load of other jobs than wall-clock time: it shows what the
        # engine itself costs. The difference between the two sizes leaves out the fixed start-up.
        whole = sized_words[1] / peaks[1][2]
        marginal = (sized_words[1] - sized_words[0]) / (peaks[1][2] - peaks[0][2])
        fixed = peaks[0][2] - sized_words[0] / marginal
        best = max(baseline_cpu)
        print(f"words per CPU-second (all processes): baseline, 1 process {best:,.0f}")
        print(f"  local engine, 2 workers, {sizes[1]} articles, start-up included: {whole:,.0f} ({whole / best:.2f}×)")
        print(f"  local engine, 2 workers, per added article (no start-up): {marginal:,.0f} ({marginal / best:.2f}×)")
        print(f"  fixed start-up of an apply process (Python, imports, model, plan): {fixed:.1f} CPU-seconds")


if __name__ == "__main__":
    main()
