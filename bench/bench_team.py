"""A team on one Label Studio: many annotators at once, SQLite next to PostgreSQL.

    PYTHONPATH=. python bench/bench_team.py [--annotators 8 16] [--round-seconds 45] [--databases sqlite postgresql]

For each database a server is started in a temporary folder as ``studio up`` starts it (``--database
postgresql``: the project's own cluster), everything on loopback. Annotators sign up through the
invite link and log in with their own accounts (personal access tokens, never the admin's). For
each team size a new project gets more paragraphs of the gold than the team can label in a round,
and ``annotate serve`` with a tiny model is connected with uncertainty sampling. The lead has
labeled two tasks and presses "Start training" as the team starts; the backend retrains again after
every team-size annotations, and after each training refreshes every unlabeled task's prediction.
Each annotator opens the next task of the labeling stream, "reads" it for 1-3 s (a human's
minutes, compressed) and submits the gold spans, until ``--round-seconds`` pass. Meanwhile the lead
runs ``pull --dry-run`` and ``pull`` over and over; a last ``pull`` follows the round.

Printed per database and team size: annotations submitted vs found in the last pulled file (goal:
every one), task-open (``/next``) and submit latency p50/p95, the errors annotators saw (a browser
does not retry, so neither do they), how many tasks the stream handed to two annotators although
each task wants one (Label Studio picks the next task inside a transaction only when its database
is not SQLite), the pull times, and how much of the round the backend spent retraining, with the
retrainings (each with its refresh) it finished. Exits 1 when any submitted annotation is missing from the pulled file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotate.corpus import read_gold, read_pulled  # noqa: E402
from annotate.errors import AnnotateError  # noqa: E402
from annotate.labels import load_schema  # noqa: E402
from annotate.records import AnnotatedDoc, Article  # noqa: E402
from annotate.studio import local  # noqa: E402
from annotate.studio.client import Studio  # noqa: E402
from annotate.studio.link import connect_backend  # noqa: E402
from annotate.studio.pull import pull  # noqa: E402
from annotate.studio.push import push  # noqa: E402
from annotate.train import train  # noqa: E402
from tests.backend_process import BackendProcess, tiny_config  # noqa: E402
from tests.test_agreement_studio import log_in, sign_up  # noqa: E402
from tests.test_backend_studio import _paragraphs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
THINK_S = (1.0, 3.0)  # a paragraph takes a human one to three minutes: compressed 60 times


@dataclass
class Annotator:
    """What one annotator did and saw."""

    opens: list[float] = field(default_factory=list)
    submits: list[float] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Round:
    """One team size on one database."""

    annotators: list[Annotator]
    tasks: int = 0
    found: int = 0
    extra: int = 0
    labeled_twice: int = 0
    dry_runs: list[float] = field(default_factory=list)
    pulls: list[float] = field(default_factory=list)
    lead_errors: list[str] = field(default_factory=list)
    last_pull: float = 0.0
    trainings: int = 0
    training_samples: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def submitted(self) -> int:
        return sum(len(a.submitted) for a in self.annotators)

    @property
    def errors(self) -> list[str]:
        return [error for a in self.annotators for error in a.errors]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def tiny_model(folder: Path, gold: list[AnnotatedDoc], schema) -> tuple[Path, Path]:
    """The backend's first model and its retraining config: a spancat trained for seconds (tests' tiny config)."""
    config = tiny_config(folder / "tiny.cfg")
    train(gold[:2], folder / "model-tiny", config_path=config, labels=schema.names, schema_sha256=schema.sha256)
    return folder / "model-tiny", config


def team(url: str, admin_token: str, size: int) -> list[Studio]:
    """``size`` annotators, each signed up by invite link and logged in with a token of their own."""
    handle = SimpleNamespace(url=url, token=admin_token)
    tag = uuid.uuid4().hex[:6]
    people = []
    for number in range(size):
        email = f"annotator{number:02d}-{tag}@example.org"
        sign_up(handle, email)
        people.append(Studio(url, log_in(handle, email)))
    return people


def annotate_until_done(person: Studio, project, spans_of: dict, deadline: float, seed: int) -> Annotator:
    """Open the next task, read it, submit its spans; again, until time is up (or the stream is empty)."""
    chooser, work = random.Random(seed), Annotator()
    while time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            task = person.next_task(project, attempts=1)  # asked once, as the labeling stream asks
        except AnnotateError as exc:  # whatever an annotator's browser would show
            work.errors.append(f"open: {str(exc)[:120]}")
            time.sleep(1.0)
            continue
        if task is None:
            break
        work.opens.append(time.perf_counter() - began)
        time.sleep(chooser.uniform(*THINK_S))
        began = time.perf_counter()
        try:
            work.submitted.append(person.annotate(task["id"], spans_of[task["data"]["doc_id"]]))
        except AnnotateError as exc:
            work.errors.append(f"submit: {str(exc)[:120]}")
            continue
        work.submits.append(time.perf_counter() - began)
    return work


def timed_pull(admin: Studio, title: str, schema, folder: Path, dry_run: bool) -> float:
    places = {"gold_path": folder / "gold.jsonl", "pulled_path": folder / "pulled.jsonl", "snapshots": folder / "snap"}
    began = time.perf_counter()
    pull(admin, title=title, schema=schema, dry_run=dry_run, **places)
    return time.perf_counter() - began


def lead_pulls(admin: Studio, title: str, schema, folder: Path, done: threading.Event, result: Round) -> None:
    """The lead checks what a pull would change, then pulls, again and again while the team works."""
    while not done.wait(2.0):
        try:
            result.dry_runs.append(timed_pull(admin, title, schema, folder, dry_run=True))
            result.pulls.append(timed_pull(admin, title, schema, folder, dry_run=False))
        except AnnotateError as exc:
            result.lead_errors.append(str(exc)[:160])


def watch_training(backend: BackendProcess, done: threading.Event, samples: list[bool]) -> None:
    """Whether the backend is training, once a second while the team works."""
    while not done.wait(1.0):
        with contextlib.suppress(OSError, ValueError):
            samples.append(bool(backend.health(timeout=2.0)["training"]))


def run_round(admin, token: str, people, schema, paragraphs, model, options, folder: Path) -> Round:
    size = len(people)
    title = f"Team of {size} {uuid.uuid4().hex[:6]}"
    docs = [paragraphs[n % len(paragraphs)] for n in range(size * options.tasks_each)]
    spans_of = {f"{doc.id}-{n}": doc.spans for n, doc in enumerate(docs)}
    push(admin, [Article(f"{doc.id}-{n}", doc.text) for n, doc in enumerate(docs)], title=title, schema=schema)
    folder.mkdir(parents=True)
    env = {"LABEL_STUDIO_URL": admin.url, "LABEL_STUDIO_API_KEY": token}
    arguments = [
        "--train-config",
        str(model[1]),
        "--models-dir",
        str(folder / "live"),
        "--train-every",
        str(size),
    ]
    backend = BackendProcess(model[0], folder / "backend.log", env, arguments).start()
    try:
        link = connect_backend(admin, title=title, backend_url=backend.url, sampling="uncertainty")
        project = admin.project(title)
        # The lead has labeled a little already and presses "Start training" as the team starts.
        lead_labeled = {
            admin.annotate(task, spans_of[doc]) for doc, [(task, _)] in list(admin.task_index(project).items())[:2]
        }
        admin.train_ml_backend(link.backend_id)
        result, done = Round([]), threading.Event()
        lead = threading.Thread(target=lead_pulls, args=(admin, title, schema, folder / "lead", done, result))
        watch = threading.Thread(target=watch_training, args=(backend, done, result.training_samples))
        began = time.monotonic()
        for thread in (lead, watch):
            thread.start()
        deadline = began + options.round_seconds
        with ThreadPoolExecutor(max_workers=size) as pool:
            running = [
                pool.submit(annotate_until_done, p, project, spans_of, deadline, n) for n, p in enumerate(people)
            ]
            result.annotators = [future.result() for future in running]
        result.seconds = time.monotonic() - began
        result.trainings = int(backend.health(timeout=10)["trainings"])  # finished while the team worked
        done.set()
        for thread in (lead, watch):
            thread.join()
        result.last_pull = timed_pull(admin, title, schema, folder / "last", dry_run=False)
        annotations = read_pulled(folder / "last" / "pulled.jsonl")
        pulled = {annotation.annotation_id for annotation in annotations}
        submitted = {number for a in result.annotators for number in a.submitted}
        result.found, result.extra = len(submitted & pulled), len(pulled - submitted - lead_labeled)
        per_task = Counter(annotation.doc_id for annotation in annotations)
        result.tasks, result.labeled_twice = len(docs), sum(count > 1 for count in per_task.values())
    finally:
        backend.stop()
    return result


def run_database(database: str, folder: Path, schema, paragraphs, model, options) -> dict[int, Round]:
    root = folder / database
    print(f"Starting Label Studio on {database} (first start: database set-up, not timed)…", flush=True)
    info = local.up(root, port=local.free_port(), timeout=600, database=database)
    try:
        token = local.read_credentials(local.StudioPaths(root).credentials).token
        admin = Studio(info.url, token)
        people = team(info.url, token, max(options.annotators))
        rounds = {}
        for size in options.annotators:
            print(f"  {size} annotators…", flush=True)
            folder = root / f"team{size}"
            rounds[size] = run_round(admin, token, people[:size], schema, paragraphs, model, options, folder)
        return rounds
    finally:
        local.down(root)


def report(results: dict[str, dict[int, Round]], sizes: list[int]) -> None:
    databases = list(results)
    width = 26

    def row(name: str, show) -> None:
        print(f"{name:<38}" + "".join(f"{show(results[db][size]):>{width}}" for db in databases))

    def spread(values: list[float]) -> str:
        return f"{percentile(values, 0.5):.2f} / {percentile(values, 0.95):.2f}"

    for size in sizes:
        print()
        print(f"{f'{size} annotators':<38}" + "".join(f"{db:>{width}}" for db in databases))
        row(
            "annotations submitted / found", lambda r: f"{r.submitted} / {r.found}" + (f" (+{r.extra})" * bool(r.extra))
        )
        row("task open p50 / p95 (s)", lambda r: spread([t for a in r.annotators for t in a.opens]))
        row("submit p50 / p95 (s)", lambda r: spread([t for a in r.annotators for t in a.submits]))
        row("errors seen by annotators", lambda r: str(len(r.errors)))
        row("tasks / handed out twice", lambda r: f"{r.tasks} / {r.labeled_twice}")
        row("round (s)", lambda r: f"{r.seconds:.0f}")
        row("pull --dry-run during it p50 (s)", lambda r: f"{percentile(r.dry_runs, 0.5):.2f} ({len(r.dry_runs)}x)")
        row("pull during it p50 (s)", lambda r: f"{percentile(r.pulls, 0.5):.2f} ({len(r.pulls)}x)")
        row("last pull (s)", lambda r: f"{r.last_pull:.2f}")
        row("lead's pull errors", lambda r: str(len(r.lead_errors)))
        row("backend retraining in it (share)", lambda r: f"{statistics.fmean(r.training_samples or [0]):.0%}")
        row("retrainings + refreshes finished", lambda r: str(r.trainings))
    for db in databases:
        for size in sizes:
            for error in sorted(set(results[db][size].errors + results[db][size].lead_errors)):
                print(f"{db}, {size} annotators: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--round-seconds", type=float, default=45.0, help="How long the team labels in each round.")
    parser.add_argument("--tasks-each", type=int, default=12, help="Paragraphs per annotator: more than a round needs.")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    options = parser.parse_args()
    schema = load_schema(ROOT / "guidelines/labels.toml")
    gold = read_gold(ROOT / "gold/gold.jsonl")
    paragraphs = _paragraphs(gold, 1000)
    began, load = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-team-") as folder:
        folder = Path(folder)
        print("Training the backend's tiny first model…", flush=True)
        model = tiny_model(folder, gold, schema)
        results = {db: run_database(db, folder, schema, paragraphs, model, options) for db in options.databases}
    report(results, options.annotators)
    lost = sum(r.submitted - r.found for rounds in results.values() for r in rounds.values())
    loads = f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(f"\n{time.monotonic() - began:.0f} s in all ({loads})")
    print(f"{lost} submitted annotation(s) missing from the pulled files")
    if lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
