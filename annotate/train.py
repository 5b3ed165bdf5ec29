"""Training the span pipeline from gold with spaCy's own config and loop, and cross-validation.

Training goes through exactly what ``python -m spacy train`` runs (``init_nlp`` + the training
loop) on DocBins written from the gold, so the committed ``configs/spancat.cfg`` is the single
description of the model. The rule component (:mod:`annotate.rules`) is added at prediction time;
predictions and the saved model's identity come from :mod:`annotate.model`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from random import Random

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training.initialize import init_nlp
from spacy.training.loop import train as train_loop
from spacy.util import load_config
from spacy.vocab import Vocab

from annotate.convert import blank_pipeline, docbin_bytes, to_spacy_docs
from annotate.corpus import atomic_write_bytes, atomic_write_text, gold_sha256
from annotate.engine import Pool, check_workers, worker_pool
from annotate.errors import TrainingError
from annotate.evaluate import evaluate
from annotate.model import (
    META_FILE,
    computed_identity,
    library_versions,
    one_line,
    pipeline_bytes,
    pipeline_from_bytes,
    predict,
)
from annotate.nested import FoldChoice, choose_in_fold, with_thresholds
from annotate.records import AnnotatedDoc
from annotate.rules import MERGE_NAME, RULER_NAME, add_rules, memorized_pipeline, rule_pipeline
from annotate.targets import check_folder_target

SYSTEMS = ("rules", "memorized", "model", "both")
PROGRESS_LOGGER = "annotate.ProgressLogger.v1"


@dataclass(frozen=True)
class TrainingProgress:
    """Where long training work stands: what a progress bar or a log line shows (the library never prints).

    A ``message`` marks a new stage ("fold 2/5: training without …", "evaluating pooled
    predictions"); events without one report a training step, numbered as spaCy's log numbers
    them (0 to ``max_steps``). ``loss`` is the components' losses summed over the steps up to the
    latest evaluation (spaCy evaluates every ``eval_frequency`` steps, from step 0), as spaCy's log
    shows it. ``fold`` and ``folds`` are 0 outside cross-validation.
    """

    message: str = ""
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    fold: int = 0
    folds: int = 0


Progress = Callable[[TrainingProgress], None]
_step_listener: ContextVar[Callable[[int, int, float | None], None] | None] = ContextVar(
    "annotate_step_listener", default=None
)


@spacy.registry.loggers(PROGRESS_LOGGER)
def progress_logger(inner: Callable) -> Callable:
    """The config's own logger, unchanged, plus a call to the step listener ``train_pipeline`` set, every step."""

    def setup(nlp: Language, stdout=sys.stdout, stderr=sys.stderr):
        log_inner, finalize = inner(nlp, stdout, stderr)
        listener = _step_listener.get()
        max_steps = int(nlp.config["training"].get("max_steps") or 0)
        seen: dict = {"calls": 0, "loss": None}

        def log_step(info: dict | None) -> None:
            log_inner(info)
            seen["calls"] += 1
            if info is not None:
                seen["loss"] = float(sum(info.get("losses", {}).values()))
            if listener is not None:
                listener(seen["calls"] - 1, max_steps, seen["loss"])  # spaCy counts steps from 0 to max_steps

        return log_step, finalize

    return setup


def _config(config_path: Path, train_path: Path, dev_path: Path, seed: int, labels: Sequence[str], overrides: dict):
    if not Path(config_path).is_file():
        raise TrainingError(f"{config_path}: no such spaCy config")
    try:
        config = load_config(
            config_path,
            overrides={"paths.train": str(train_path), "paths.dev": str(dev_path), "system.seed": seed, **overrides},
            interpolate=False,
        )
    except Exception as exc:  # thinc raises ConfigValidationError / several parse errors
        raise TrainingError(f"{config_path}: cannot read the config ({one_line(exc)})") from None
    if not isinstance(config.get("components"), dict):
        raise TrainingError(f"{config_path}: the config has no [components]")
    if "spancat" in config["components"]:
        config["initialize"]["components"]["spancat"] = {"labels": list(labels)}
    return config


@dataclass(frozen=True)
class ConvertedGold:
    """The gold as spaCy Docs, converted once per run; every training of the run takes its articles from here.

    Each article is kept as a one-Doc ``DocBin`` (bytes), so the whole of it travels to worker
    processes and Ray tasks as it is.
    """

    docbins: dict[str, bytes]

    @classmethod
    def of(cls, gold: Sequence[AnnotatedDoc], lang: str = "en") -> ConvertedGold:
        docs, _ = to_spacy_docs(blank_pipeline(lang), gold)
        return cls({annotated.id: docbin_bytes([doc]) for annotated, doc in zip(gold, docs, strict=True)})

    def docs(self, doc_ids: Sequence[str], vocab: Vocab) -> list[Doc]:
        return [doc for doc_id in doc_ids for doc in DocBin().from_bytes(self.docbins[doc_id]).get_docs(vocab)]


def train_pipeline(
    train_docs: Sequence[AnnotatedDoc],
    config_path: str | Path,
    labels: Sequence[str],
    *,
    seed: int = 0,
    lang: str = "en",
    overrides: dict | None = None,
    log: io.TextIOBase | None = None,
    on_step: Callable[[int, int, float | None], None] | None = None,
    converted: ConvertedGold | None = None,
) -> Language:
    """Train in memory on these articles; deterministic for a seed.

    There is no dev set to select on (cross-validation holds the only unseen article out), so
    the config fixes the number of steps and the returned pipeline is the one after the last
    step. spaCy's loop is given an empty dev set: it used to score the training articles every
    ``eval_frequency`` steps (from step 0, where the untrained span_finder proposes thousands of
    spans) for a log no one read, a quarter of a short training's time; the weights are the same.
    ``on_step(step, max_steps, loss)`` is called after every step (see :class:`TrainingProgress`).
    ``converted`` holds these articles already converted (a run's :class:`ConvertedGold`).
    """
    if not train_docs:
        raise TrainingError("no articles to train on")
    nlp = blank_pipeline(lang)
    if converted is not None:
        docs = converted.docs([doc.id for doc in train_docs], nlp.vocab)
    else:
        docs, _ = to_spacy_docs(nlp, train_docs)
    if not any(len(doc.spans["sc"]) for doc in docs):
        raise TrainingError("the training articles have no spans")
    stream = log if log is not None else io.StringIO()
    with tempfile.TemporaryDirectory(prefix="annotate-train-") as folder:
        train_path, dev_path = Path(folder) / "train.spacy", Path(folder) / "dev.spacy"
        atomic_write_bytes(train_path, docbin_bytes(docs))
        atomic_write_bytes(dev_path, docbin_bytes([]))
        config = _config(Path(config_path), train_path, dev_path, seed, labels, overrides or {})
        own_logger = config["training"]["logger"]
        if on_step is not None:
            config["training"]["logger"] = {"@loggers": PROGRESS_LOGGER, "inner": own_logger}
        listening = _step_listener.set(on_step)
        try:
            nlp = init_nlp(config)
            nlp, _ = train_loop(nlp, None, stdout=stream, stderr=stream)
        except (ValueError, KeyError) as exc:
            raise TrainingError(f"{config_path}: training failed ({one_line(exc)})") from None
        finally:
            _step_listener.reset(listening)
    nlp.config["training"]["logger"] = own_logger  # the saved config is the project's, loadable without us
    return nlp


def check_model_folder(output: str | Path, *, force: bool = False) -> None:
    """Refuse to replace anything but an absent or empty folder or an earlier model (see :mod:`annotate.targets`)."""
    check_folder_target(output, marker=META_FILE, what="model folder", force=force)


@dataclass
class TrainResult:
    output: Path
    meta: dict


def _save_pipeline(nlp: Language, output: Path) -> None:
    """Save next to ``output`` and swap it in, so a failed save never leaves half a model."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        nlp.to_disk(staging)
        previous = output.with_name(f".{output.name}.previous")
        if output.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(output, previous)
        os.replace(staging, output)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def train(
    gold: Sequence[AnnotatedDoc],
    output: str | Path,
    *,
    config_path: str | Path,
    labels: Sequence[str],
    schema_sha256: str,
    seed: int = 0,
    lang: str = "en",
    overrides: dict | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Train on all of ``gold`` and save the pipeline plus ``annotate_meta.json`` (provenance, identity, scores).

    The scores in the meta file are on the training articles themselves (a fit check, not an
    estimate of quality); ``annotate cv`` gives held-out figures. ``output`` must be absent, empty
    or a model folder this function wrote (it holds ``annotate_meta.json``), unless ``force``.
    ``progress`` hears every step.
    """
    output = Path(output)
    check_model_folder(output, force=force)
    began = time.perf_counter()
    on_step = None
    if progress is not None:
        progress(TrainingProgress(f"training on {len(gold)} article(s)"))

        def on_step(step: int, max_steps: int, loss: float | None) -> None:
            progress(TrainingProgress(step=step, max_steps=max_steps, loss=loss))

    nlp = train_pipeline(gold, config_path, labels, seed=seed, lang=lang, overrides=overrides, on_step=on_step)
    seconds = time.perf_counter() - began
    fit = evaluate(gold, predict(nlp, gold, "model"), labels, bootstrap=0, with_errors=False)
    provenance = {
        "gold_sha256": gold_sha256(gold),
        "schema_sha256": schema_sha256,
        "config": str(config_path),
        "config_sha256": hashlib.sha256(Path(config_path).read_bytes()).hexdigest(),
        "seed": seed,
        "articles": [doc.id for doc in gold],
        "spans": sum(len(doc.spans) for doc in gold),
        "versions": library_versions(),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(seconds, 1),
    }
    nlp.meta["annotate"] = provenance
    _save_pipeline(nlp, output)
    meta = {
        **provenance,
        **computed_identity(output).to_dict(),
        "scores_on_training_data": {
            schema: {name: score.to_dict() for name, score in per.items()}
            for schema, per in fit.scores.items()
            if schema in ("strict", "partial")
        },
    }
    atomic_write_text(output / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return TrainResult(output, meta)


def article_folds(doc_ids: Sequence[str], folds: int | None = None, seed: int = 0) -> list[list[str]]:
    """Leave-one-article-out when ``folds`` is None or ≥ the number of articles, else K folds by article."""
    ids = sorted(doc_ids)
    if len(ids) < 2:
        raise TrainingError(f"cross-validation needs at least 2 articles, the gold has {len(ids)}")
    if folds is not None and folds < 2:
        raise TrainingError(f"--folds must be at least 2, not {folds}")
    if folds is None or folds >= len(ids):
        return [[doc_id] for doc_id in ids]
    shuffled = ids[:]
    Random(seed).shuffle(shuffled)
    return [sorted(shuffled[k::folds]) for k in range(folds)]


@dataclass
class CrossValidation:
    """Pooled held-out predictions of every system, in gold order, and how the folds were made.

    ``choices`` holds each fold's nested choice (recipe, thresholds), empty unless nested.
    """

    folds: list[list[str]]
    predictions: dict[str, list[AnnotatedDoc]]
    seconds: dict[str, float] = field(default_factory=dict)
    choices: list[FoldChoice] = field(default_factory=list)


def trained_pipeline(
    docs: Sequence[AnnotatedDoc],
    config_path: str,
    labels: Sequence[str],
    seed: int,
    lang: str,
    overrides: dict | None,
    converted: ConvertedGold | None = None,
) -> tuple[str, bytes]:
    """What a worker process or Ray task runs: :func:`train_pipeline`, sent back as (config, bytes)."""
    nlp = train_pipeline(docs, config_path, labels, seed=seed, lang=lang, overrides=overrides, converted=converted)
    return pipeline_bytes(nlp)


Key = tuple[str, tuple[str, ...]]
# Trainings submitted and not yet collected, per worker: one running, one queued to start when it ends.
AHEAD_PER_WORKER = 2


class Trainings:
    """Pipelines trained once per (config, articles) and handed to every fold that needs the same one.

    Nested cross-validation trains, inside each outer fold, one model per training article left
    out; with leave-one-article-out the model without articles a and b serves the outer folds of
    both a and b. A model is dropped once the last fold that needs it is done (``release``).

    With a pool of several workers (:mod:`annotate.engine`) the trainings announced by
    ``needed_by`` are submitted ahead, in the order they will be asked for, up to
    :data:`AHEAD_PER_WORKER` per worker not yet collected: the pool then starts the next one the
    moment a worker is free, even while the driver waits for an earlier one or predicts with it
    (with one per worker, a worker that finished before the one the driver waits for stood idle).
    A collected model's bytes are all that is held in memory for one not yet used. ``get`` waits
    for its own. In-process, ``train`` runs when asked (it may report every step).
    """

    def __init__(
        self,
        train: Callable[[Sequence[AnnotatedDoc], Path], Language],
        *,
        docs: Sequence[AnnotatedDoc] = (),
        pool: Pool | None = None,
        options: tuple = (),
    ) -> None:
        self._train = train
        self._by_id = {doc.id: doc for doc in docs}
        self._pool = None if pool is None or pool.in_process else pool
        self._options = options
        self._models: dict[Key, Language] = {}
        self._last_use: dict[Key, int] = {}
        self._upcoming: deque[tuple[Key, list[str]]] = deque()
        self._running: dict[Key, object] = {}
        self._started: set[Key] = set()
        self.trained = 0

    @staticmethod
    def key(config: str | Path, doc_ids: Sequence[str]) -> Key:
        return str(config), tuple(sorted(doc_ids))

    def needed_by(self, fold: int, config: str | Path, doc_ids: Sequence[str], *, ahead: bool = True) -> None:
        """Fold ``fold`` is the last to use this model; ``ahead``: it is sure to be asked for (start it early).

        ``doc_ids`` in the order the articles will be asked for: the order is part of the training.
        """
        key = self.key(config, doc_ids)
        if ahead and key not in self._last_use and self._pool is not None:
            self._upcoming.append((key, list(doc_ids)))  # in the order the training will get them
        self._last_use[key] = fold

    def has(self, config: str | Path, docs: Sequence[AnnotatedDoc]) -> bool:
        return self.key(config, [doc.id for doc in docs]) in self._models

    def get(self, docs: Sequence[AnnotatedDoc], config: str | Path) -> Language:
        key = self.key(config, [doc.id for doc in docs])
        if key not in self._models:
            if self._pool is None:
                self._models[key] = self._train(docs, Path(config))
            else:
                self._start(key, docs)
                self._start_ahead()
                self._models[key] = pipeline_from_bytes(*self._pool.result(self._running.pop(key)))
                self._start_ahead()
            self.trained += 1
        return self._models[key]

    def _start(self, key: Key, docs: Sequence[AnnotatedDoc]) -> None:
        if key not in self._started:
            self._started.add(key)
            self._running[key] = self._pool.submit(trained_pipeline, list(docs), key[0], *self._options)

    def _start_ahead(self) -> None:
        while self._upcoming and len(self._running) < AHEAD_PER_WORKER * self._pool.workers:
            key, doc_ids = self._upcoming.popleft()
            self._start(key, [self._by_id[doc_id] for doc_id in doc_ids])

    def release(self, fold: int) -> None:
        for key in [key for key, last in self._last_use.items() if last <= fold]:
            self._models.pop(key, None)
            del self._last_use[key]


def _remove_rules(nlp: Language) -> None:
    for name in (RULER_NAME, MERGE_NAME):
        if name in nlp.pipe_names:
            nlp.remove_pipe(name)


def _inner_trainer(
    shared: Trainings,
    report: Progress,
    fold: dict,
    held_out: Sequence[str],
    train_docs: Sequence[AnnotatedDoc],
    *,
    several: bool,
) -> Callable[[Sequence[AnnotatedDoc], Path], Language]:
    """The trainer a fold's inner choice uses: shared models, and a progress line naming what each one leaves out."""
    seen = [doc.id for doc in train_docs]
    where = f"fold {fold['fold']}/{fold['folds']}"

    def trainer(docs: Sequence[AnnotatedDoc], config: Path) -> Language:
        kept = {doc.id for doc in docs}
        left = [doc_id for doc_id in seen if doc_id not in kept]
        which = f"{where}, inner {seen.index(left[0]) + 1}/{len(seen)}" if len(left) == 1 else where
        if several:
            which += f" ({Path(config).name})"
        without = ", ".join([*held_out, *left])
        what = "reusing the model trained" if shared.has(config, docs) else "training"
        report(TrainingProgress(f"{which}: {what} without {without}", **fold))
        return shared.get(docs, config)

    return trainer


def cross_validate(
    gold: Sequence[AnnotatedDoc],
    *,
    config_path: str | Path,
    patterns: list[dict],
    labels: Sequence[str],
    folds: int | None = None,
    seed: int = 0,
    lang: str = "en",
    systems: Sequence[str] = SYSTEMS,
    overrides: dict | None = None,
    progress: Progress | None = None,
    nested: bool = False,
    configs: Sequence[str | Path] | None = None,
    workers: int = 1,
    engine: str = "local",
) -> CrossValidation:
    """Train one model per fold, predict its held-out articles with each system, pool the predictions.

    ``rules`` needs no training; ``memorized`` matches the labeled strings of the fold's training
    articles; ``model`` is the fold's trained pipeline; ``both`` is that pipeline with the rule
    component after it. ``progress`` hears each fold and every training step.

    Without ``nested`` the model is the pipeline as ``config_path`` defines it (its thresholds
    too). With ``nested``, each fold first chooses among ``configs`` (default: ``config_path``
    alone) and per-label thresholds by an inner leave-one-article-out over its own training
    articles (:func:`annotate.nested.choose_in_fold`), then trains the chosen config on all its
    training articles and predicts the held-out ones with the chosen thresholds. Inner models are
    trained once and shared between the outer folds that need them.

    The trainings run on ``workers`` processes (or Ray tasks with ``engine="ray"``, see
    :mod:`annotate.engine`) with the same results as one after the other; steps are reported only
    for trainings in this process (one local worker).
    """
    check_workers(workers, engine)
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        raise TrainingError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    candidates = list(dict.fromkeys(str(path) for path in (configs or [config_path])))
    for candidate in candidates if {"model", "both"} & set(systems) else ():
        if not Path(candidate).is_file():
            raise TrainingError(f"{candidate}: no such spaCy config")
    report = progress or (lambda event: None)
    by_id = {doc.id: doc for doc in gold}
    plan = article_folds(list(by_id), folds, seed)
    learned = bool({"model", "both"} & set(systems))
    if nested and learned and any(len(by_id) - len(held_out) < 2 for held_out in plan):
        raise TrainingError(
            f"nested cross-validation needs at least 2 training articles in every fold (the gold has {len(by_id)})"
        )
    pooled: dict[str, dict[str, AnnotatedDoc]] = {system: {} for system in systems}
    seconds: dict[str, float] = {}
    choices: list[FoldChoice] = []
    if "rules" in systems:
        began = time.perf_counter()
        pooled["rules"] = {doc.id: doc for doc in predict(rule_pipeline(patterns, lang), list(gold), "rules")}
        seconds["rules"] = time.perf_counter() - began
    current = {"fold": 0}

    def on_step(step: int, max_steps: int, loss: float | None) -> None:
        report(TrainingProgress(step=step, max_steps=max_steps, loss=loss, fold=current["fold"], folds=len(plan)))

    converted = ConvertedGold.of(gold, lang) if learned else None

    def train(docs: Sequence[AnnotatedDoc], config: Path) -> Language:
        listener = on_step if progress else None
        return train_pipeline(
            docs, config, labels, seed=seed, lang=lang, overrides=overrides, on_step=listener, converted=converted
        )

    with worker_pool(workers, engine) as pool:
        shared = Trainings(train, docs=gold, pool=pool, options=(labels, seed, lang, overrides, converted))
        for number, held_out in enumerate(plan, start=1):
            seen = [doc_id for doc_id in by_id if doc_id not in held_out]
            if learned and not nested:
                shared.needed_by(number, config_path, seen)
            for config in candidates if learned and nested else ():
                for inner in seen:
                    shared.needed_by(number, config, [doc_id for doc_id in seen if doc_id != inner])
            for config in candidates if learned and nested else ():
                shared.needed_by(number, config, seen, ahead=len(candidates) == 1)
        for number, held_out in enumerate(plan, start=1):
            fold = {"fold": number, "folds": len(plan)}
            current["fold"] = number
            began = time.perf_counter()
            train_docs = [doc for doc in gold if doc.id not in held_out]
            test_docs = [by_id[doc_id] for doc_id in held_out]
            if "memorized" in systems:
                memorized = memorized_pipeline(train_docs, lang)
                found = predict(memorized, test_docs, f"memorized fold {number}")
                pooled["memorized"].update((doc.id, doc) for doc in found)
            if not learned:
                seconds[f"fold {number}"] = time.perf_counter() - began
                continue
            where = f"fold {number}/{len(plan)}"
            if nested:
                inner_trainer = _inner_trainer(shared, report, fold, held_out, train_docs, several=len(candidates) > 1)
                choice = choose_in_fold(train_docs, held_out, [Path(c) for c in candidates], labels, inner_trainer)
                choices.append(choice)
                named = f" {Path(choice.config).name}" if len(candidates) > 1 else ""
                report(TrainingProgress(f"{where}: training{named} without {', '.join(held_out)}", **fold))
                nlp = with_thresholds(shared.get(train_docs, choice.config), choice.thresholds)
            else:
                report(TrainingProgress(f"{where}: training without {', '.join(held_out)}", **fold))
                nlp = shared.get(train_docs, config_path)
            if "model" in systems:
                pooled["model"].update((doc.id, doc) for doc in predict(nlp, test_docs, f"model fold {number}"))
            if "both" in systems:
                combined = add_rules(nlp, patterns)
                pooled["both"].update((doc.id, doc) for doc in predict(combined, test_docs, f"both fold {number}"))
                _remove_rules(nlp)
            shared.release(number)
            seconds[f"fold {number}"] = time.perf_counter() - began
    return CrossValidation(
        folds=plan,
        predictions={system: [pooled[system][doc.id] for doc in gold] for system in systems},
        seconds=seconds,
        choices=choices,
    )
