"""The main job and its parts as plain functions: check gold, cross-validate, evaluate, write reports.

``annotate run``, ``annotate cv`` and ``annotate evaluate`` are thin wrappers over these.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotate.convert import blank_pipeline
from annotate.errors import EvaluationError, GoldError
from annotate.evaluate import Evaluation, evaluate
from annotate.gold import GoldCheck, inspect_gold, validated_gold
from annotate.htmlreport import INDEX_FILE, write_html_report
from annotate.labels import Schema
from annotate.model import load_pipeline, model_identity, predict, training_articles
from annotate.records import AnnotatedDoc
from annotate.report import check_report_targets, predictions_sha256, provenance, write_reports
from annotate.rules import load_patterns
from annotate.suggest import SUGGESTER
from annotate.train import SYSTEMS, Progress, TrainingProgress, cross_validate


@dataclass
class Outcome:
    """What a job computed and where it wrote it."""

    evaluations: dict[str, Evaluation]
    files: dict[str, Path]
    source: dict
    seconds: dict[str, float] = field(default_factory=dict)


def _file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_bootstrap(bootstrap: int) -> None:
    """Checked before any training starts, not minutes later when the intervals are computed."""
    if bootstrap < 0:
        raise EvaluationError(f"--bootstrap must be 0 (no intervals) or more, not {bootstrap}")


def checked_gold(gold_path: str | Path, schema: Schema, lang: str = "en") -> list[AnnotatedDoc]:
    """The gold once ``annotate gold check`` finds nothing wrong; otherwise a GoldError carrying every problem."""
    reading = inspect_gold(gold_path, schema, blank_pipeline(lang))
    if reading.problems:
        raise GoldError(f"{len(reading.problems)} problem(s) in the gold {gold_path}; fix them first", reading.problems)
    return reading.docs


def systems_knowledge(
    systems: Sequence[str], *, patterns_path: str | Path, configs: Sequence[str | Path], nested: bool
) -> dict[str, str]:
    """What each system knows when it predicts a held-out article: shown beside its figures in every report.

    Only ``memorized`` and ``model`` (nested, or with a config fixed beforehand) are honest
    held-out estimates; the hand-written patterns were written by people who had read the gold.
    """
    cues = any(SUGGESTER in Path(config).read_text(encoding="utf-8") for config in configs if Path(config).is_file())
    candidates = "span_finder and generic cue-word lists (annotate/suggest.py)" if cues else "span_finder"
    if nested:
        among = f" among {len(configs)} configs" if len(configs) > 1 else ""
        choice = (
            f"config{among} and per-label thresholds chosen per fold by an inner leave-one-article-out on the "
            "fold's training articles"
        )
    else:
        choice = (
            "thresholds fixed in the config (found by the nested search, see docs/training.md; `--nested` repeats it)"
        )
    knowledge = {
        "rules": (
            f"hand-written patterns ({patterns_path}) written while reading the gold articles they are scored on "
            "(for the shipped gold, all five): optimistic"
        ),
        "memorized": "the labeled strings of the fold's training articles only (exact match): honest, learns per fold",
        "model": f"trained per fold on the fold's training articles; candidates from {candidates}; {choice}",
        "both": "model + the hand-written patterns: optimistic",
    }
    return {system: knowledge[system] for system in systems}


def cross_validation_report(
    gold: Sequence[AnnotatedDoc],
    reports: str | Path,
    *,
    schema: Schema,
    config_path: str | Path,
    patterns_path: str | Path,
    folds: int | None = None,
    seed: int = 0,
    lang: str = "en",
    bootstrap: int = 1000,
    systems: Sequence[str] = SYSTEMS,
    overrides: dict | None = None,
    progress: Progress | None = None,
    nested: bool = False,
    configs: Sequence[str | Path] | None = None,
    acceptance_files: Sequence[Path] = (),
    workers: int = 1,
    engine: str = "local",
) -> Outcome:
    """Cross-validate rules, memorized, model and both; evaluate the pooled predictions; write reports.

    With ``nested`` each fold chooses its config (among ``configs``, default ``config_path``) and
    per-label thresholds on its own training articles; the reports list every fold's choice.
    ``workers`` and ``engine`` say where the trainings run (:mod:`annotate.engine`); the figures
    do not depend on them.
    """
    _check_bootstrap(bootstrap)
    check_report_targets(reports, systems, INDEX_FILE)
    began = time.perf_counter()
    patterns = load_patterns(patterns_path, schema.names)
    candidates = list(dict.fromkeys(str(path) for path in (configs or [config_path])))
    result = cross_validate(
        gold,
        config_path=config_path,
        patterns=patterns,
        labels=schema.names,
        folds=folds,
        seed=seed,
        lang=lang,
        systems=systems,
        overrides=overrides,
        progress=progress,
        nested=nested,
        configs=candidates,
        workers=workers,
        engine=engine,
    )
    if progress:
        progress(TrainingProgress("evaluating pooled predictions"))
    evaluations = {
        system: evaluate(gold, predicted, schema.names, bootstrap=bootstrap, seed=seed)
        for system, predicted in result.predictions.items()
    }
    seconds = {**result.seconds, "total": time.perf_counter() - began}
    source = provenance(
        gold,
        schema_sha256=schema.sha256,
        config=str(config_path),
        config_sha256=_file_sha256(config_path),
        patterns=str(patterns_path),
        patterns_sha256=_file_sha256(patterns_path),
        model="trained per fold from the config (no single model file)",
        seed=seed,
        overrides=overrides or {},
        folds=result.folds,
        nested=nested,
        **({"candidate_configs": {path: _file_sha256(path)[:12] for path in candidates}} if nested else {}),
        systems_knowledge=systems_knowledge(
            list(result.predictions), patterns_path=patterns_path, configs=candidates, nested=nested
        ),
        **({"choices": [choice.to_dict() for choice in result.choices]} if nested else {}),
        predictions_sha256={system: predictions_sha256(docs) for system, docs in result.predictions.items()},
        seconds={name: round(value, 1) for name, value in seconds.items()},
    )
    files = write_reports(
        reports,
        evaluations,
        source,
        title=f"Cross-validated evaluation ({len(result.folds)} folds by article{', nested' if nested else ''})",
        predictions=result.predictions,
    )
    files["html"] = write_html_report(reports, gold, lang=lang, acceptance_files=acceptance_files)
    return Outcome(evaluations, files, source, seconds)


def evaluate_target(
    target: str | Path,
    gold: Sequence[AnnotatedDoc],
    reports: str | Path,
    *,
    schema: Schema,
    bootstrap: int = 1000,
    seed: int = 0,
    acceptance_files: Sequence[Path] = (),
) -> Outcome:
    """Evaluate a saved pipeline (a folder) or predictions in gold format (a JSONL file) against gold."""
    _check_bootstrap(bootstrap)
    target = Path(target)
    name = "model" if target.is_dir() else "predictions"
    check_report_targets(reports, [name], INDEX_FILE)
    began = time.perf_counter()
    if name == "model":
        predicted = predict(load_pipeline(target), list(gold), f"model {target}")
        seen = set(training_articles(target)) & {doc.id for doc in gold}
        identity = {"model": str(target), **model_identity(target).to_dict(), "trained_on_gold": len(seen)}
    else:
        predicted = validated_gold(target, schema, check=GoldCheck.OFFSETS, what="predictions")
        identity = {"predictions": str(target), "predictions_sha256": _file_sha256(target)}
    evaluation = evaluate(gold, predicted, schema.names, bootstrap=bootstrap, seed=seed)
    source = provenance(gold, schema_sha256=schema.sha256, **identity, seed=seed)
    files = write_reports(
        reports, {name: evaluation}, source, title=f"Evaluation of {target.name}", predictions={name: predicted}
    )
    files["html"] = write_html_report(reports, gold, acceptance_files=acceptance_files)
    return Outcome({name: evaluation}, files, source, {"total": time.perf_counter() - began})
