"""Benchmark: the model in the loop at project scale, next to `annotate apply` on the same texts in the same run.

For each size (``--articles 1000,4000``: synthetic articles of seed length, as bench_apply makes
them) it pushes the articles twice, into two fresh projects of a real Label Studio, starts `annotate
serve`, and measures:

- connect → every unlabeled task holds the served version, on the first project with nobody
  opening tasks (our refresh, ``--workers`` processes, default the cores), next to ``annotate
  apply`` (local engine, the same number of workers) on the same texts (goal ≤ 1.3×); where the
  refresh's time went (its report, from the backend's log);
- then the same refresh of the second project while a random task is opened every ~0.6 s (a
  large team's pace, at the start of a project: the worst case), its time and the seconds it
  yielded to those opens;
- task-open latency p50/p95 meanwhile (``GET /api/tasks/<id>/``, what the labeling view loads; a
  task not yet predicted is predicted live by Label Studio through /predict, counted apart as well;
  goal p95 ≤ 300 ms);
- the backend's peak RSS over both: the serving process (VmHWM), and sampled, the largest of its
  processes and the sum over it, its refresh child and the child's workers, at each size (goal ≤
  1.5 GB, and within 10% of each other across sizes).

Starts a temporary Label Studio as ``studio up`` does (gunicorn's workers; their memory is printed
at the end), or uses LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY (which must allow loopback ML
backends), and stops what it started. Run:
``PYTHONPATH=. python bench/bench_loop.py [--model DIR | --tiny] [--articles 1000,4000] [--workers N] [--keep]``.
Without ``--model`` it trains a model on the gold first (``--tiny``: the tests' tiny config, seconds).
Figures on a busy shared machine are noisy.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_apply import synthetic_archive  # noqa: E402

from annotate.apply import apply  # noqa: E402
from annotate.articles import read_articles  # noqa: E402
from annotate.corpus import read_gold  # noqa: E402
from annotate.engine import default_workers  # noqa: E402
from annotate.labels import load_schema  # noqa: E402
from annotate.settings import load_settings  # noqa: E402
from annotate.studio import local  # noqa: E402
from annotate.studio.client import Studio  # noqa: E402
from annotate.studio.link import connect_backend, wait_for_refresh  # noqa: E402
from annotate.studio.push import push  # noqa: E402
from annotate.train import train  # noqa: E402
from tests.backend_process import BackendProcess, tiny_config  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def rss_kib(pid: int, field: str) -> int:
    """VmRSS or VmHWM of a process, in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def children(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them (/proc lists them per thread)."""
    found = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in listing.read_text().split())
        except OSError:
            continue
    return found


def pss_mib(pids: list[int]) -> float:
    """Memory the processes use together, shared pages split between them (Pss of /proc/PID/smaps_rollup)."""
    total = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith("Pss:")), 0)
    return total / 1024


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


def live_prediction(task: dict, since: datetime) -> bool:
    """Whether the opened task's prediction was made by this open (Label Studio asked /predict for it)."""
    for prediction in task.get("predictions") or []:
        stamp = str(prediction.get("created_at") or "") if isinstance(prediction, dict) else ""
        try:
            if stamp and datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= since:
                return True
        except ValueError:
            continue
    return False


class Watcher(threading.Thread):
    """Samples the backend's processes' RSS; with ``opening``, opens random tasks as annotators would, until stopped."""

    def __init__(self, connection: Studio, task_ids: list[int], backend_pid: int, opening: bool) -> None:
        super().__init__(daemon=True)
        self.connection, self.task_ids, self.backend_pid, self.opening = connection, task_ids, backend_pid, opening
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.live: list[float] = []  # opens that waited for a live /predict
        self.process_peak_kib = 0
        self.tree_peak_kib = 0

    def sample(self) -> None:
        sizes = [rss_kib(pid, "VmRSS") for pid in tree(self.backend_pid)]
        self.process_peak_kib = max(self.process_peak_kib, *sizes)
        self.tree_peak_kib = max(self.tree_peak_kib, sum(sizes))

    def run(self) -> None:
        rng = random.Random(0)
        while not self.stop.is_set():
            self.sample()
            if self.opening:
                since = datetime.now().astimezone()
                began = time.perf_counter()
                task = self.connection.task(rng.choice(self.task_ids))
                spent = time.perf_counter() - began
                (self.live if live_prediction(task, since) else self.latencies).append(spent)
            for _ in range(5):
                if self.stop.wait(0.1):
                    break
                self.sample()


def refresh_seconds(log: Path) -> dict:
    """Where the last refresh's time went, as the backend logged it."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        if "task(s) predicted with" in line and "seconds: " in line:
            found = ast.literal_eval(line.rsplit("seconds: ", 1)[1].rstrip(")"))
    return found


def one_size(
    count: int, model: Path, schema, connection: Studio, env: dict, work: Path, seeds: Path, workers: int
) -> dict:
    archive = work / f"articles-{count}.jsonl"
    words = synthetic_archive(seeds, count, archive)
    began = time.perf_counter()
    apply(model, [archive], work / f"apply-{count}", schema=schema, engine="local", workers=workers)
    apply_s = time.perf_counter() - began

    log = work / f"backend-{count}.log"
    projects = []
    for phase in ("quiet", "opens"):  # the same texts twice: refreshed alone, then while tasks are opened
        title = f"Bench loop {count} {phase} {time.strftime('%H%M%S')}"
        push(connection, read_articles([archive]), title=title, schema=schema)
        projects.append(connection.project(title))
    task_ids = [int(task["id"]) for task in connection.tasks(projects[1], "id")]
    rng = random.Random(1)
    idle = []
    for task_id in rng.sample(task_ids, min(20, len(task_ids))):  # no backend yet: Label Studio alone
        began = time.perf_counter()
        connection.task(task_id)
        idle.append(time.perf_counter() - began)
    backend = BackendProcess(model, log, env, ["--workers", str(workers)]).start()
    row: dict = {"articles": count, "words": words, "workers": workers, "apply_s": apply_s}
    try:
        for phase, project in zip(("quiet", "opens"), projects, strict=True):
            watcher = Watcher(connection, task_ids, backend.process.pid, opening=phase == "opens")
            began = time.perf_counter()
            connect_backend(connection, title=project.title, backend_url=backend.url)
            watcher.start()
            state = wait_for_refresh(backend.url, poll_s=0.2)
            row[f"{phase}_s"] = time.perf_counter() - began
            watcher.stop.set()
            watcher.join()
            row[f"{phase}_predicted"] = state.get("done", 0)
            row[f"{phase}_seconds"] = refresh_seconds(log)
            row["process_peak_mib"] = max(row.get("process_peak_mib", 0), watcher.process_peak_kib / 1024)
            row["tree_peak_mib"] = max(row.get("tree_peak_mib", 0), watcher.tree_peak_kib / 1024)
        row["server_peak_mib"] = rss_kib(backend.process.pid, "VmHWM") / 1024
    finally:
        backend.stop()
    row.update(
        {
            "open_p50_ms": 1000 * percentile(watcher.latencies, 0.5),
            "open_p95_ms": 1000 * percentile(watcher.latencies, 0.95),
            "opens": len(watcher.latencies),
            "live_p50_ms": 1000 * percentile(watcher.live, 0.5),
            "live_p95_ms": 1000 * percentile(watcher.live, 0.95),
            "live_opens": len(watcher.live),
            "all_p95_ms": 1000 * percentile(watcher.latencies + watcher.live, 0.95),
            "idle_p50_ms": 1000 * percentile(idle, 0.5),
            "idle_p95_ms": 1000 * percentile(idle, 0.95),
            "load": os.getloadavg(),
        }
    )
    return row


def show(row: dict) -> None:
    ratio = row["quiet_s"] / row["apply_s"]
    print(
        f"{row['articles']} articles ({row['words']} words): annotate apply, {row['workers']} worker(s) "
        f"(baseline) {row['apply_s']:.1f} s; connect → all {row['quiet_predicted']} predicted "
        f"{row['quiet_s']:.1f} s = {ratio:.2f}× apply (goal ≤ 1.3×); the refresh's seconds: {row['quiet_seconds']}"
    )
    print(
        f"    backend peak RSS: server {row['server_peak_mib']:.0f} MiB, largest process "
        f"{row['process_peak_mib']:.0f} MiB, all its processes together {row['tree_peak_mib']:.0f} MiB "
        f"(goal ≤ 1,536 MiB)"
    )
    print(
        f"    the same refresh while a task is opened every ~0.6 s: {row['opens_s']:.1f} s "
        f"= {row['opens_s'] / row['apply_s']:.2f}× apply; its seconds: {row['opens_seconds']}"
    )
    print(
        f"    task open meanwhile: p95 {row['all_p95_ms']:.0f} ms over {row['opens'] + row['live_opens']} opens "
        f"(goal ≤ 300 ms); its prediction stored: p50 {row['open_p50_ms']:.0f} ms, p95 {row['open_p95_ms']:.0f} ms "
        f"over {row['opens']}; waiting for a live /predict: p50 {row['live_p50_ms']:.0f} ms, "
        f"p95 {row['live_p95_ms']:.0f} ms over {row['live_opens']}; baseline, no backend connected: "
        f"p50 {row['idle_p50_ms']:.0f} ms, p95 {row['idle_p95_ms']:.0f} ms; load average then "
        f"{row['load'][0]:.1f} / {row['load'][1]:.1f} (1 / 5 min)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a pipeline saved by `annotate train`")
    parser.add_argument("--tiny", action="store_true", help="without --model: train the tests' tiny model")
    parser.add_argument("--articles", default="1000,4000", help="project sizes, comma-separated")
    parser.add_argument("--workers", type=int, default=default_workers(), help="refresh and apply workers")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, Label Studio's data)")
    args = parser.parse_args()
    settings = load_settings(ROOT)
    schema = load_schema(settings.schema)
    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    model = args.model
    if model is None:
        config = tiny_config(work / "tiny.cfg") if args.tiny else settings.train_config
        model = work / "model-bench"
        train(read_gold(settings.gold), model, config_path=config, labels=schema.names, schema_sha256=schema.sha256)
    url, token = os.environ.get("LABEL_STUDIO_URL", ""), os.environ.get("LABEL_STUDIO_API_KEY", "")
    studio_root, studio = None, None
    if not (url and token):
        studio_root = work / "studio"
        studio = local.up(studio_root, port=local.free_port(), timeout=300)
        url = studio.url
        token = local.read_credentials(local.StudioPaths(studio_root).credentials).token
    env = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token}
    print(f"model {model}{' (tiny)' if args.tiny and args.model is None else ''}; work in {work}")
    rows = []
    try:
        for count in args.articles.split(","):  # each size printed as soon as measured
            rows.append(
                one_size(int(count), model, schema, Studio(url, token), env, work, settings.seeds, args.workers)
            )
            show(rows[-1])
        if studio is not None:
            processes = tree(studio.pid)
            print(
                f"Label Studio (`studio up`, {studio.workers} workers) after the runs: {len(processes)} processes, "
                f"{pss_mib(processes):.0f} MiB together (PSS)"
            )
    finally:
        if studio_root is not None:
            local.down(studio_root)
        if not args.keep:  # ~250 MB per run at these sizes
            shutil.rmtree(work, ignore_errors=True)
    if len(rows) > 1:
        for what in ("process_peak_mib", "tree_peak_mib"):
            peaks = [row[what] for row in rows]
            spread = (max(peaks) - min(peaks)) / min(peaks)
            print(f"peak RSS spread across sizes ({what}): {100 * spread:.0f}% (goal ≤ 10%)")
    print(f"load average at the end: {os.getloadavg()}")
    print("(a busy shared 2-core machine: figures are noisy)")


if __name__ == "__main__":
    main()
