"""Independent trainings on more workers: the same figures as one after the other, a bounded number at once.

Real spaCy training on the three tiny articles of tests/nested_fixture.py (about a second a
model); the worker processes are spawned for real, and Ray is a real local Ray.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import annotate.train as train_module
from annotate.cli import app
from annotate.curve import learning_curve
from annotate.engine import check_workers, threads_per_worker, worker_pool
from annotate.errors import InputError, TrainingError
from annotate.evaluate import evaluate
from annotate.records import AnnotatedDoc
from annotate.train import cross_validate
from tests import child_jobs
from tests.nested_fixture import LABELS, articles, tiny_config

RULES = [{"label": "ACTOR", "pattern": "Hamas"}]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def config(project_root, tmp_path_factory):
    return tiny_config(project_root, tmp_path_factory.mktemp("configs"))


def _figures(result) -> dict:
    """Every pooled prediction and the strict and partial scores computed from them."""
    docs = articles()
    scores = {
        system: {
            schema: {
                name: score.to_dict()
                for name, score in evaluate(docs, predicted, LABELS, bootstrap=0).scores[schema].items()
            }
            for schema in ("strict", "partial")
        }
        for system, predicted in result.predictions.items()
    }
    return {"predictions": result.predictions, "scores": scores, "choices": result.choices}


@pytest.fixture(scope="module")
def serial(config):
    return _figures(cross_validate(articles(), config_path=config, patterns=RULES, labels=LABELS, workers=1))


def test_two_worker_processes_give_the_serial_figures(config, serial):
    parallel = _figures(cross_validate(articles(), config_path=config, patterns=RULES, labels=LABELS, workers=2))
    assert serial["scores"]["model"]["strict"]["micro"]["predicted"] > 0, "the tiny model must predict something"
    assert parallel == serial


def test_nested_search_on_two_workers_chooses_and_scores_as_the_serial_one(config):
    def run(workers: int) -> dict:
        return _figures(
            cross_validate(
                articles(),
                config_path=config,
                patterns=RULES,
                labels=LABELS,
                nested=True,
                systems=("model",),
                workers=workers,
            )
        )

    serial, parallel = run(1), run(2)
    assert len(serial["choices"]) == 3
    assert parallel == serial


def test_learning_curve_on_two_workers_is_the_serial_curve(config):
    def run(workers: int):
        curve = learning_curve(articles(), config_path=config, labels=LABELS, sizes=[1, 2], repeats=1, workers=workers)
        return [(run.size, run.train, run.test, run.f1) for run in curve.runs]

    assert run(2) == run(1)


def test_ray_tasks_give_the_serial_figures(config, serial):
    ray = pytest.importorskip("ray", reason="the [scale] extra (ray[data]) is not installed")
    result = cross_validate(articles(), config_path=config, patterns=RULES, labels=LABELS, workers=2, engine="ray")
    assert not ray.is_initialized(), "a Ray the trainings started is shut down"
    assert _figures(result) == serial


class CountingPool:
    """A pool of ``workers`` that runs each job when collected, in this process, and counts what is in flight."""

    in_process = False

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.in_flight = 0
        self.most = 0
        self.jobs = 0

    def submit(self, fn, *args):
        self.in_flight += 1
        self.jobs += 1
        self.most = max(self.most, self.in_flight)
        return lambda: fn(*args)

    def result(self, handle):
        self.in_flight -= 1
        return handle()


def test_trainings_start_ahead_but_never_more_than_two_per_worker_and_each_once(config, monkeypatch):
    """The nested search asks for 6 models (3 inner, shared by two folds each, and 3 outer); 2 workers hold 4 at most.

    One per worker running and one queued behind it, so a free worker never waits for the driver.
    """
    pools = []

    def counting_pool(workers, engine):
        from contextlib import nullcontext

        pools.append(CountingPool(workers))
        return nullcontext(pools[-1])

    monkeypatch.setattr(train_module, "worker_pool", counting_pool)
    result = cross_validate(
        articles(), config_path=config, patterns=RULES, labels=LABELS, nested=True, systems=("model",), workers=2
    )
    (pool,) = pools
    assert pool.most == 2 * 2 and pool.in_flight == 0
    assert pool.jobs == 6
    assert len(result.choices) == 3


def test_each_worker_process_gets_its_share_of_the_cores_for_numeric_threads(monkeypatch):
    """Two workers on this machine's cores: each loads OpenBLAS with cores // 2 threads, not one per core."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    share = threads_per_worker(2)
    with worker_pool(2, "local") as pool:
        variable, threads = pool.result(pool.submit(child_jobs.numeric_threads))
    assert variable == str(share)
    if threads is not None:  # Linux: OpenBLAS's threads are the worker's only ones beside its main thread
        assert threads == share
    assert "OPENBLAS_NUM_THREADS" not in os.environ, "this process's environment is put back"
    assert (
        threads_per_worker(2, cores=2) == 1 and threads_per_worker(2, cores=16) == 8 and threads_per_worker(4, 2) == 1
    )


def _state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from Linux's /proc")
def test_a_pausable_pool_stops_its_workers_until_resumed_and_their_jobs_finish_after():
    with worker_pool(2, "local", pausable=True) as pool:
        pids = {pool.result(job) for job in [pool.submit(child_jobs.pid_after, 0.3) for _ in range(2)]}
        assert len(pids) == 2
        jobs = [pool.submit(child_jobs.count_for, 0.6) for _ in range(2)]
        time.sleep(0.2)
        pool.pause()
        try:
            time.sleep(0.2)
            assert {_state(pid) for pid in pids} == {"T"}
            assert not any(job.done() for job in jobs)
        finally:
            pool.resume()
        assert all(pool.result(job) > 0 for job in jobs)
        assert "T" not in {_state(pid) for pid in pids}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from Linux's /proc")
def test_paused_workers_end_with_the_process_that_started_them_however_it_died(tmp_path):
    """A stopped worker cannot see its pool go away: the kernel kills it when its parent dies (no stopped orphan)."""
    pids_file = tmp_path / "pids"
    parent = multiprocessing.get_context("spawn").Process(
        target=child_jobs.pause_workers_then_die, args=(str(pids_file),)
    )
    parent.start()
    parent.join(60)
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(_state(pid) not in ("", "Z") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_state(pid) in ("", "Z") for pid in pids), [(pid, _state(pid)) for pid in pids]


def test_an_error_in_a_worker_comes_back_as_our_one_line_error(config):
    docs = articles()
    bare = [AnnotatedDoc(doc.id, doc.text, ()) for doc in docs[1:]]
    with pytest.raises(TrainingError, match="^the training articles have no spans$"):
        cross_validate([docs[0], *bare], config_path=config, patterns=RULES, labels=LABELS, workers=2)


def test_bad_workers_or_engine_are_refused_before_any_work():
    with pytest.raises(InputError, match="--workers must be at least 1, not 0"):
        check_workers(0, "local")
    with pytest.raises(InputError, match="--engine must be one of local, ray, not 'spark'"), worker_pool(2, "spark"):
        pass


@pytest.mark.parametrize("command", ["cv", "run", "curve"])
def test_commands_take_workers_and_engine(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert "--workers" in result.output and "--engine" in result.output
    result = CliRunner().invoke(app, [command, "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_the_gold_is_converted_once_per_run_and_trains_the_same_model(config, monkeypatch):
    conversions = []
    real = train_module.to_spacy_docs

    def counting(nlp, docs, **kwargs):
        docs = list(docs)
        conversions.append(len(docs))
        return real(nlp, docs, **kwargs)

    docs = articles()
    once = train_module.ConvertedGold.of(docs)
    from_run = train_module.train_pipeline(docs[:2], config, LABELS, converted=once)
    direct = train_module.train_pipeline(docs[:2], config, LABELS)
    assert from_run.get_pipe("spancat").model.to_bytes() == direct.get_pipe("spancat").model.to_bytes()

    monkeypatch.setattr(train_module, "to_spacy_docs", counting)
    cross_validate(docs, config_path=config, patterns=RULES, labels=LABELS, systems=("model",), workers=1)
    assert conversions == [3], "three trainings, one conversion of the three articles"


def test_trainings_started_ahead_get_their_articles_in_the_serial_order(config, monkeypatch):
    """The order of the training articles is part of the training: a gold not sorted by id must not be re-sorted."""
    unsorted = articles()[::-1]
    serial = cross_validate(unsorted, config_path=config, patterns=RULES, labels=LABELS, systems=("model",))
    submitted: list[list[str]] = []

    class RecordingPool(CountingPool):
        def submit(self, fn, *args):
            submitted.append([doc.id for doc in args[0]])
            return super().submit(fn, *args)

    def recording_pool(workers, engine):
        from contextlib import nullcontext

        return nullcontext(RecordingPool(workers))

    monkeypatch.setattr(train_module, "worker_pool", recording_pool)
    ahead = cross_validate(unsorted, config_path=config, patterns=RULES, labels=LABELS, systems=("model",), workers=2)
    order = [doc.id for doc in unsorted]
    assert submitted == [
        [doc_id for doc_id in order if doc_id != held_out] for held_out in sorted(order)
    ]  # folds by id
    assert ahead.predictions == serial.predictions
