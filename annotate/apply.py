"""Apply a saved model to an archive: read sources in shards, label them, write parquet shards.

A run first *plans*: it reads every source once (hashing it, checking every row, finding
duplicate ids) and cuts the rows into shards of ``shard_size`` source records, so a bad row stops
the job before anything is written. Each shard's rows are then labeled by :func:`label_rows` (the
predictor of :mod:`annotate.model`), written by :func:`write_shard` as one parquet file,
atomically, and recorded in the manifest. Running the same job again does only what is missing.

The two engines call the very same :func:`label_rows` and :func:`write_shard`; they differ only
in how the work is scheduled: ``local`` streams the articles of all pending shards through one
``nlp.pipe(n_process=workers)``; ``ray`` maps the shards over a Ray Data actor pool
(:class:`ShardLabeler`: one pipeline loaded per worker, :func:`label_shard` per shard). Ray is
started or joined by :func:`annotate.engine.ray_session`, as for the trainings."""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import logging
import multiprocessing
import multiprocessing.util
import os
import re
import signal
import threading
import time
import warnings
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from annotate.articles import duplicate_problem, read_records, source_files
from annotate.artifacts import Maybe, read_artifact
from annotate.corpus import atomic_write_bytes, atomic_write_text
from annotate.engine import check_ray_address, default_workers, our_error, ray_connect_timeout, ray_session
from annotate.errors import InputError
from annotate.labels import Schema
from annotate.model import Predictor, check_pipeline_folder, load_predictor, model_identity
from annotate.records import Span, text_sha256
from annotate.targets import check_file_target, check_folder_target, os_reason

MANIFEST = ".apply-manifest.json"  # hidden: pyarrow and datasets read every other file as parquet
REJECTS = ".rejects.jsonl"
FORMAT = 1
SHARD_SIZE = 10_000
_SHARD_NAME = re.compile(r"part-\d{5}\.parquet")
_OUR_TEMPORARIES = re.compile(rf"\.(part-\d{{5}}\.parquet|{re.escape(MANIFEST)}|{re.escape(REJECTS)})\..*\.tmp")

SPAN_TYPE = pa.struct(
    [
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("label", pa.string()),
        ("text", pa.string()),
        ("score", pa.float64()),
    ]
)
ROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text_sha256", pa.string()),
        ("spans", pa.list_(SPAN_TYPE)),
        ("model_version", pa.string()),
        ("model_sha256", pa.string()),
    ]
)


# --- sources ------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the plan -----------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a run will do: sources with their hashes, the shards, and the rows refused (``--skip-bad``)."""

    sources: list[dict]
    shards: list[dict]
    rejects: list[dict]
    articles: int


def _id_key(article_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(article_id.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def plan(sources: Sequence[str | Path], *, shard_size: int = SHARD_SIZE, skip_bad: bool = False) -> Plan:
    """Read every source once: hash it, check each row, cut the records into shards.

    Memory grows by 8 bytes per article (a hash of each id, to find duplicates), never by text.
    Without ``skip_bad`` the first bad row raises :class:`InputError` naming its file and line/row.
    """
    if shard_size < 1:
        raise InputError(f"shard size must be at least 1, not {shard_size}")
    files = source_files(sources)
    described, shards, rejects = [], [], []
    keys = array("q")
    current: dict = {"index": 0, "segments": [], "skip": []}
    in_shard = 0
    for number, path in enumerate(files):
        records = 0
        for record in read_records(path):
            records += 1
            if in_shard == shard_size:
                shards.append(current)
                current = {"index": len(shards), "segments": [], "skip": []}
                in_shard = 0
            segments = current["segments"]
            if not segments or segments[-1]["source"] != number:
                segments.append(
                    {"source": number, "path": str(path), "start": record.position, "offset": record.offset}
                )
            segments[-1]["stop"] = record.position + 1
            in_shard += 1
            if record.problem:
                _refuse(record.where, record.problem, skip_bad)
                rejects.append({"where": record.where, "id": record.id, "problem": record.problem})
                current["skip"].append([number, record.position])
            else:
                keys.append(_id_key(record.id))
        described.append({"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size})
        described[-1]["records"] = records
    if in_shard:
        shards.append(current)
    duplicates = _duplicate_keys(keys)
    repeated = _reject_duplicates(files, shards, duplicates, rejects, skip_bad) if duplicates else 0
    return Plan(described, shards, rejects, len(keys) - repeated)


def _refuse(where: str, problem: str, skip_bad: bool) -> None:
    if not skip_bad:
        raise InputError(f"{where}: {problem} (--skip-bad writes such rows to {REJECTS} and goes on)")


def _duplicate_keys(keys: array) -> set[int]:
    import numpy as np

    ordered = np.sort(np.frombuffer(keys, dtype=np.int64)) if len(keys) else np.zeros(0, dtype=np.int64)
    return set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())


def _reject_duplicates(files: list[Path], shards: list[dict], duplicates: set[int], rejects: list, skip_bad) -> int:
    """A second look at the rows whose id hash repeats: the second and later of one id are refused."""
    first: dict[str, str] = {}
    repeated = 0
    shard_of = _shard_locator(shards)
    for number, path in enumerate(files):
        for record in read_records(path):
            if record.problem or _id_key(record.id) not in duplicates:
                continue
            if record.id not in first:
                first[record.id] = record.where
                continue
            problem = duplicate_problem(record.id, first[record.id])
            _refuse(record.where, problem, skip_bad)
            rejects.append({"where": record.where, "id": record.id, "problem": problem})
            shards[shard_of(number, record.position)]["skip"].append([number, record.position])
            repeated += 1
    return repeated


def _shard_locator(shards: list[dict]) -> Callable[[int, int], int]:
    """Which shard holds record ``position`` of source ``source`` (segments are in source order)."""
    starts = [(seg["source"], seg["start"], shard["index"]) for shard in shards for seg in shard["segments"]]

    def locate(source: int, position: int) -> int:
        return starts[bisect.bisect_right(starts, (source, position, len(shards))) - 1][2]

    return locate


# --- labeling one shard: what both engines call ------------------------------------------------


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def shard_articles(shard: dict) -> Iterator[tuple[str, str]]:
    """The (id, text) pairs of one shard, in source order, less the rows the plan refused."""
    skip = {tuple(pair) for pair in shard["skip"]}
    for segment in shard["segments"]:
        for record in read_records(Path(segment["path"]), segment["start"], segment["offset"]):
            if record.position >= segment["stop"]:
                break
            if (segment["source"], record.position) in skip:
                continue
            if record.problem:
                raise InputError(f"{record.where}: {record.problem} (the source changed during the run)")
            yield record.id, record.text


def label_rows(
    predictor: Predictor,
    model_hash: str,
    articles: Iterable[tuple[str, str]],
    *,
    n_process: int = 1,
    batch_size: int = 64,
) -> Iterator[dict]:
    """Rows of spans (code-point offsets, scores) for (id, text) pairs, in order, as the shards hold them.

    A stream: the articles are read as the predictor takes them, so memory does not grow with them.
    """
    in_flight: deque[tuple[str, str]] = deque()

    def texts() -> Iterator[str]:
        for article in articles:
            in_flight.append(article)
            yield article[1]

    if predictor.stream is not None:
        found = predictor.stream(texts(), n_process=n_process, batch_size=batch_size)
    else:
        found = iter(predictor.predict(list(texts())))
    try:
        for spans in found:
            article_id, text = in_flight.popleft()
            yield {
                "id": article_id,
                "text_sha256": text_sha256(text),
                "spans": [{**span.to_dict(), "score": score} for span, score in sorted(spans)],
                "model_version": predictor.model_version,
                "model_sha256": model_hash,
            }
    finally:  # stopped early (Ctrl-C, an error): let the pipeline end its workers and queues now, not at exit
        close = getattr(found, "close", None)
        if close is not None:
            close()


def write_shard(out_dir: Path, shard: dict, rows: list[dict], words: int, started: float) -> dict:
    """Write one shard's rows as parquet, atomically; returns what the manifest records of it."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), buffer)
    data = buffer.getvalue()
    name = shard_name(shard["index"])
    atomic_write_bytes(out_dir / name, data)
    return {
        "index": shard["index"],
        "file": name,
        "rows": len(rows),
        "spans": sum(len(row["spans"]) for row in rows),
        "words": words,
        "sha256": hashlib.sha256(data).hexdigest(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def label_shard(predictor: Predictor, model_hash: str, shard: dict, out_dir: Path, *, batch_size: int = 64) -> dict:
    """Read, label and write one shard: what each Ray worker does with the shards it is given."""
    started = time.perf_counter()
    articles = list(shard_articles(shard))
    rows = list(label_rows(predictor, model_hash, articles, batch_size=batch_size))
    return write_shard(out_dir, shard, rows, sum(len(text.split()) for _, text in articles), started)


class ShardLabeler:
    """Ray Data's callable class: loads the pipeline once per worker, then labels whole shards."""

    def __init__(self, model_dir: str, schema: Schema, model_hash: str, out_dir: str, batch_size: int) -> None:
        self.predictor = load_predictor(Path(model_dir), schema)
        self.model_hash = model_hash
        self.out_dir = Path(out_dir)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        records = [
            label_shard(self.predictor, self.model_hash, json.loads(shard), self.out_dir, batch_size=self.batch_size)
            for shard in batch["shard"]
        ]
        return {"record": [json.dumps(record) for record in records]}


# --- the run ------------------------------------------------------------------------------------


@dataclass
class ApplyReport:
    out_dir: Path
    engine: str
    workers: int
    articles: int = 0
    rejected: int = 0
    shards: int = 0
    shards_done_before: int = 0
    shards_written: int = 0
    spans: int = 0
    words: int = 0
    seconds: float = 0.0
    model_version: str = ""
    rejects_path: Path | None = None
    manifest: dict = field(default_factory=dict)


def apply(
    model_dir: str | Path,
    sources: Sequence[str | Path],
    out_dir: str | Path,
    *,
    schema: Schema,
    engine: str = "local",
    workers: int | None = None,
    batch_size: int = 64,
    shard_size: int = SHARD_SIZE,
    force: bool = False,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ApplyReport:
    """Label every article of ``sources`` with the model into parquet shards under ``out_dir``.

    Resumable: shards already recorded in the folder's manifest are kept, the rest are written.
    A folder written for other sources, another model or another shard size is refused unless
    ``force``, which removes what apply wrote there and starts over. ``progress(done, total)``
    counts articles.
    """
    if engine not in {"local", "ray"}:
        raise InputError(f"engine must be 'local' or 'ray', not {engine!r}")
    workers = default_workers() if workers is None else workers  # 0 is refused below, never the default
    if workers < 1 or batch_size < 1:
        raise InputError(f"workers and batch size must be at least 1 (got {workers} and {batch_size})")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_pipeline_folder(model_dir)
    check_folder_target(out_dir, marker=None, what="apply output folder")
    previous = _previous_manifest(out_dir)
    the_plan = plan(sources, shard_size=shard_size, skip_bad=skip_bad)
    identity = model_identity(model_dir)
    model = {"path": str(model_dir), "version": identity.version, "sha256": identity.sha256}
    manifest = {
        "written_by": "annotate apply",
        "format": FORMAT,
        "model": model,
        "sources": the_plan.sources,
        "shard_size": shard_size,
        "shards_total": len(the_plan.shards),
        "counts": {"articles": the_plan.articles, "rejected": len(the_plan.rejects)},
        "shards": [],
        "runs": [],
    }
    difference = _difference(previous, manifest) if previous is not None else ""
    if difference and not force:
        raise InputError(
            f"{out_dir}: holds apply output for {difference}; rerun with --force to start over, or choose another --out"
        )
    # Everything that can fail before labeling fails here, while the folder is as it was: every file
    # apply will write can be written, the model loads (once, here, for the local engine; the Ray
    # workers load their own), the cluster answers.
    for name in (MANIFEST, REJECTS, *(shard_name(shard["index"]) for shard in the_plan.shards)):
        check_file_target(out_dir / name)
    predictor = load_predictor(model_dir, schema)
    if engine == "ray" and os.environ.get("RAY_ADDRESS"):
        check_ray_address(os.environ["RAY_ADDRESS"], ray_connect_timeout())
    if previous is not None:
        if difference:
            _remove_ours(out_dir)
        else:
            manifest["shards"] = [s for s in previous["shards"] if (out_dir / s["file"]).is_file()]
            for shard in manifest["shards"]:
                check_shard(out_dir, shard)
            manifest["runs"] = previous["runs"]
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(out_dir)
    _write_manifest(out_dir, manifest)  # first, so that the folder is recognisably apply's
    report = ApplyReport(out_dir, engine, workers, the_plan.articles, len(the_plan.rejects), len(the_plan.shards))
    report.model_version = model["version"]
    if the_plan.rejects:
        report.rejects_path = out_dir / REJECTS
        lines = (json.dumps(reject, ensure_ascii=False) + "\n" for reject in the_plan.rejects)
        atomic_write_text(report.rejects_path, "".join(lines))
    done = {s["index"] for s in manifest["shards"]}
    report.shards_done_before = len(done)
    pending = [shard for shard in the_plan.shards if shard["index"] not in done]
    run = {"engine": engine, "workers": workers, "batch_size": batch_size, "started": _now(), "shards": 0}
    manifest["runs"].append(run)
    started = time.perf_counter()
    articles_done = sum(s["rows"] for s in manifest["shards"])

    in_shard = 0

    def tick() -> None:
        nonlocal in_shard
        in_shard += 1
        if progress and in_shard % 16 == 0:
            progress(articles_done + in_shard, the_plan.articles)

    def record(shard_record: dict) -> None:
        nonlocal articles_done, in_shard
        manifest["shards"] = sorted([*manifest["shards"], shard_record], key=lambda s: s["index"])
        run["shards"] += 1
        run["seconds"] = round(time.perf_counter() - started, 3)
        articles_done += shard_record["rows"]
        in_shard = 0
        report.shards_written += 1
        report.words += shard_record["words"]
        _write_manifest(out_dir, manifest)
        if progress:
            progress(articles_done, the_plan.articles)

    _write_manifest(out_dir, manifest)
    if progress:
        progress(articles_done, the_plan.articles)
    if engine == "local":
        _run_local(predictor, model["sha256"], pending, out_dir, workers, batch_size, record, tick)
    else:
        _run_ray(model_dir, schema, model["sha256"], pending, out_dir, workers, batch_size, record)
    run["finished"] = _now()
    run["seconds"] = round(time.perf_counter() - started, 3)
    manifest["counts"]["spans"] = sum(s["spans"] for s in manifest["shards"])
    _write_manifest(out_dir, manifest)
    report.spans = manifest["counts"]["spans"]
    report.seconds = run["seconds"]
    report.manifest = manifest
    return report


def _run_local(predictor, model_hash, pending, out_dir, workers, batch_size, record, tick) -> None:
    """One ``nlp.pipe(n_process=workers)`` over the articles of every pending shard, in order.

    The worker processes start once for the whole run; the rows coming back are cut into shards
    again (a shard whose rows were all refused is written empty) and each is written as it completes.
    """
    if not pending:
        return
    shard_of: deque[tuple[int, int]] = deque()  # (shard index, words) of each article in flight
    unwritten = deque(pending)

    def articles() -> Iterator[tuple[str, str]]:
        for shard in pending:
            for article_id, text in shard_articles(shard):
                shard_of.append((shard["index"], len(text.split())))
                yield article_id, text

    rows: list[dict] = []
    words, started = 0, time.perf_counter()
    labeled = label_rows(predictor, model_hash, articles(), n_process=workers, batch_size=batch_size)
    with _workers_end_on_interrupt(), closing(labeled):
        for row in labeled:
            index, count = shard_of.popleft()
            while unwritten[0]["index"] != index:
                record(write_shard(out_dir, unwritten.popleft(), rows, words, started))
                rows, words, started = [], 0, time.perf_counter()
            rows.append(row)
            words += count
            tick()
    while unwritten:
        record(write_shard(out_dir, unwritten.popleft(), rows, words, started))
        rows, words, started = [], 0, time.perf_counter()


class _WorkerSignals:
    """Registered with multiprocessing: a worker forked while ``ignore_interrupt`` is set ignores Ctrl-C."""

    ignore_interrupt = False

    @staticmethod
    def after_fork(state: _WorkerSignals) -> None:
        if state.ignore_interrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


_WORKER_SIGNALS = _WorkerSignals()
multiprocessing.util.register_after_fork(_WORKER_SIGNALS, _WorkerSignals.after_fork)


@contextmanager
def _workers_end_on_interrupt() -> Iterator[None]:
    """Ctrl-C or SIGTERM during ``nlp.pipe(n_process=…)``: end its workers first, then stop.

    A terminal sends Ctrl-C to every process of the job; the workers ignore it (no traceback from
    each), and this process terminates them before raising, so spaCy's wait for them returns at once
    instead of waiting for queued batches (or forever, for a worker stuck writing its output).
    Shards already written stay, recorded in the manifest: the next run resumes from them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def end_workers(number: int, frame: object) -> None:
        for child in multiprocessing.active_children():
            child.terminate()
        _forget_queued_input()
        warnings.filterwarnings("ignore", message=r"\[W127\]")  # "not all workers completed": we ended them
        raise KeyboardInterrupt if number == signal.SIGINT else SystemExit(128 + number)

    previous = {number: signal.signal(number, end_workers) for number in (signal.SIGINT, signal.SIGTERM)}
    _WORKER_SIGNALS.ignore_interrupt = True
    try:
        with warnings.catch_warnings():
            yield
    finally:
        _WORKER_SIGNALS.ignore_interrupt = False
        for number, handler in previous.items():
            signal.signal(number, handler)


def _forget_queued_input() -> None:
    """Let the process exit without delivering what was queued for the ended workers.

    spaCy's ``pipe`` feeds its workers through ``multiprocessing.Queue``s whose feeder threads are
    joined at exit; with the workers gone, a feeder blocked on a full pipe would hold the exit for ever.
    """
    import gc
    from multiprocessing.queues import Queue

    for found in gc.get_objects():
        if isinstance(found, Queue):
            found.cancel_join_thread()


def _run_ray(model_dir, schema, model_hash, pending, out_dir, workers, batch_size, record) -> None:
    """Shards mapped over a Ray Data actor pool; the driver records each shard as it comes back.

    With ``RAY_ADDRESS`` set the job runs on that cluster (every node must see the model, the
    sources and ``out_dir`` at the same paths); without it a local Ray is started and shut down.
    """
    if not pending:
        return
    import ray.data

    data_logger = logging.getLogger("ray.data")  # its INFO lines would break through our progress bar
    level = data_logger.level
    with ray_session(workers):
        try:
            data_logger.setLevel(logging.ERROR)
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            items = [{"shard": json.dumps(shard)} for shard in pending]
            dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                ShardLabeler,
                fn_constructor_kwargs={
                    "model_dir": str(model_dir.resolve()),
                    "schema": schema,
                    "model_hash": model_hash,
                    "out_dir": str(out_dir.resolve()),
                    "batch_size": batch_size,
                },
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
                num_cpus=1,
            )
            try:
                for row in dataset.iter_rows():
                    record(json.loads(row["record"]))
            except Exception as exc:
                ours = our_error(exc)
                if ours is None:
                    raise
                raise type(ours)(str(ours)) from None
        finally:
            data_logger.setLevel(level)


# --- the output folder --------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_SHARD_RECORD = {
    "index": int,
    "file": str,
    **dict.fromkeys(("rows", "spans", "words"), int),
    "sha256": str,
    "seconds": float,
}
# What :func:`apply` writes as ``.apply-manifest.json``, as every reader of it checks it (annotate.artifacts).
MANIFEST_SHAPE = {
    "written_by": str,
    "format": int,
    "model": dict.fromkeys(("path", "version", "sha256"), str),
    "sources": [{"path": str, "sha256": str, "bytes": int, "records": int}],
    "shard_size": int,
    "shards_total": int,
    "counts": {"articles": int, "rejected": int, "spans": Maybe(int)},
    "shards": [_SHARD_RECORD],
    "runs": [object],
}


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest of an apply output folder, checked against :data:`MANIFEST_SHAPE`; a folder without one
    is not apply's. A shard it lists must be named as apply names shards, once each."""
    path = Path(out_dir) / MANIFEST
    what = "a manifest written by annotate apply"
    hint = "rerun with --force to start over, or choose another --out"
    if not path.is_file():
        raise InputError(f"{out_dir}: not an apply output (no {MANIFEST})")
    manifest = read_artifact(path, MANIFEST_SHAPE, what, hint=hint)
    if manifest["written_by"] != "annotate apply":
        raise InputError(f"{path}: not {what}")
    seen: set[int] = set()
    for shard in manifest["shards"]:
        if not _SHARD_NAME.fullmatch(shard["file"]) or shard["file"] != shard_name(shard["index"]):
            raise InputError(f"{path}: not {what} (shard file {shard['file']!r} is not one apply writes); {hint}")
        if shard["index"] in seen:
            raise InputError(f"{path}: not {what} (shard {shard['index']} listed twice); {hint}")
        seen.add(shard["index"])
    return manifest


def check_shard(out_dir: Path, shard: dict) -> None:
    """A shard file is what the manifest recorded of it (its SHA-256), before anything reads or keeps it."""
    path = out_dir / shard["file"]
    try:
        same = file_sha256(path) == shard["sha256"]
    except OSError as exc:
        raise InputError(f"{path}: cannot read this shard ({os_reason(exc)})") from None
    if not same:
        raise InputError(
            f"{path}: changed since annotate apply wrote it (not the SHA-256 its manifest records); "
            "delete it and rerun apply to label its articles again"
        )


def _previous_manifest(out_dir: Path) -> dict | None:
    """The folder's manifest if apply wrote it; an absent or empty folder has none; anything else is refused."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder; choose another --out")
    if (out_dir / MANIFEST).is_file():
        return read_manifest(out_dir)
    if any(not _OUR_TEMPORARIES.fullmatch(path.name) for path in out_dir.iterdir()):
        raise InputError(f"{out_dir}: not empty and not an apply output (no {MANIFEST}); choose another --out")
    return None


def _difference(previous: dict, wanted: dict) -> str:
    """What makes a folder's earlier run another job: model, sources or shard size ('' when the same)."""
    if previous.get("format") != FORMAT:
        return f"another format ({previous.get('format')})"
    if previous["model"]["sha256"] != wanted["model"]["sha256"]:
        return f"another model ({previous['model']['version']}, now {wanted['model']['version']})"
    before = [(s["path"], s["sha256"]) for s in previous["sources"]]
    now = [(s["path"], s["sha256"]) for s in wanted["sources"]]
    if [p for p, _ in before] != [p for p, _ in now]:
        return "other sources"
    for (path, old), (_, new) in zip(before, now, strict=True):
        if old != new:
            return f"{path} as it was before (it changed since)"
    if previous.get("shard_size") != wanted["shard_size"]:
        return f"another shard size ({previous.get('shard_size')})"
    return ""


def _remove_ours(out_dir: Path) -> None:
    """--force: remove the shards, rejects and manifest apply wrote, and nothing else."""
    for path in out_dir.iterdir():
        if path.is_file() and (_SHARD_NAME.fullmatch(path.name) or path.name in {REJECTS, MANIFEST}):
            path.unlink()


def _remove_temporaries(out_dir: Path) -> None:
    for path in out_dir.iterdir():
        if path.is_file() and _OUR_TEMPORARIES.fullmatch(path.name):
            path.unlink()


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


# --- reading an output back ---------------------------------------------------------------------


def predictions_from(out_dir: str | Path, articles: Sequence, schema: Schema) -> Predictor:
    """A predictor that answers from an apply output instead of running the model (push --predictions-from).

    Each article is matched by id and checked against the text hash the output recorded, so
    spans are never shown on a text other than the one they were predicted on.
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wanted = {article.id: article for article in articles}
    for shard in manifest["shards"]:
        check_shard(out_dir, shard)
    files = [str(out_dir / s["file"]) for s in manifest["shards"]]
    by_hash: dict[str, list[tuple[Span, float]]] = {}
    found: set[str] = set()
    if files and wanted:
        table = ds.dataset(files, format="parquet", schema=ROW_SCHEMA).to_table(
            columns=["id", "text_sha256", "spans"], filter=pc.field("id").isin(list(wanted))
        )
        for row in table.to_pylist():
            article = wanted[row["id"]]
            if row["text_sha256"] != article.text_sha256:
                raise InputError(
                    f"{out_dir}: article {article.id} was labeled with other text than it has now; "
                    "run annotate apply on the current text"
                )
            by_hash[article.text_sha256] = [_span(article, span, schema, out_dir) for span in row["spans"]]
            found.add(article.id)
    missing = [article_id for article_id in wanted if article_id not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise InputError(f"{out_dir}: {len(missing)} article(s) not in this apply output ({shown}); run apply on them")

    def predict(texts: list[str]) -> list[list[tuple[Span, float]]]:
        return [by_hash[text_sha256(text)] for text in texts]

    return Predictor(predict, manifest["model"]["version"])


def _span(article, span: dict, schema: Schema, out_dir: Path) -> tuple[Span, float]:
    found = Span(span["start"], span["end"], span["label"], span["text"])
    if found.label not in schema:
        raise InputError(f"{out_dir}: article {article.id}: label {found.label!r} is not in the schema")
    if article.text[found.start : found.end] != found.text or not 0 <= found.start < found.end <= len(article.text):
        raise InputError(f"{out_dir}: article {article.id}: span {found.describe()} does not match the text")
    return found, float(span["score"])
