"""Evaluation reports on disk: ``metrics.json``, a Markdown report and a PNG chart, with provenance.

Every report says what it was computed from (gold hash, model or predictions hash, versions,
date), so a figure can always be traced back. The files are written together or not at all; nothing
here prints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from annotate.artifacts import Each, Maybe, read_artifact
from annotate.corpus import encode_text, gold_jsonl, gold_sha256
from annotate.errors import InputError
from annotate.evaluate import MACRO, MICRO, SCHEMAS, Evaluation
from annotate.figures import chart_png
from annotate.model import library_versions
from annotate.presentation import evaluation_view, markdown_report
from annotate.records import AnnotatedDoc
from annotate.targets import check_file_target, check_folder_target, write_files


def provenance(gold: Sequence[AnnotatedDoc], **extra) -> dict:
    """Gold hash, library versions and date, plus whatever identifies the model or predictions.

    A saved model is named by its :class:`annotate.model.ModelIdentity` (``model_sha256``, ``model_version``).
    """
    return {
        "gold_sha256": gold_sha256(gold),
        "articles": len(gold),
        "gold_spans": sum(len(doc.spans) for doc in gold),
        **extra,
        "versions": library_versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def predictions_sha256(docs: Sequence[AnnotatedDoc]) -> str:
    return hashlib.sha256(gold_jsonl(docs).encode("utf-8")).hexdigest()


METRICS_FILE = "metrics.json"
_INTERVAL = Maybe((float, float))
_SCORE = {
    **dict.fromkeys(("precision", "recall", "f1"), float),
    **dict.fromkeys(("support", "predicted"), int),
    **dict.fromkeys(("precision_ci", "recall_ci", "f1_ci"), _INTERVAL),
}
_ERROR = {**dict.fromkeys(("doc_id", "kind", "label", "text", "left", "right"), str), "start": int, "end": int}
_CHOICE = {
    "held_out": [str],
    "seen": [str],
    "config": str,
    "thresholds": Each(float),
    "inner_f1": Maybe(Each(float)),
}
# What :func:`metrics_document` writes, as every reader of ``metrics.json`` checks it (annotate.artifacts).
METRICS_SHAPE = {
    "provenance": Maybe(
        {"gold_sha256": Maybe(str), "systems_knowledge": Maybe(Each(str)), "choices": Maybe([_CHOICE])}
    ),
    "systems": Each(
        {
            "labels": [str],
            "articles": [str],
            "bootstrap": Maybe({"samples": int, "seed": int}),
            "scores": Each(Each(_SCORE)),
            "counts": Maybe(Each(object)),
            "confusion": Maybe(Each(Each(int))),
            "errors": Maybe([_ERROR]),
        }
    ),
}


def read_metrics(folder: str | Path) -> dict:
    """``metrics.json`` of an evaluation folder, checked against :data:`METRICS_SHAPE` (one line if it is not)."""
    hint = "run `annotate evaluate` or `annotate run` again"
    path = Path(folder) / METRICS_FILE
    metrics = read_artifact(path, METRICS_SHAPE, "a metrics file of annotate", hint=hint)
    for name, system in metrics["systems"].items():
        problem = _missing_scores(system)
        if problem:
            raise InputError(f"{path}: not a metrics file of annotate (systems.{name}.{problem}); {hint}")
    return metrics


def _missing_scores(system: dict) -> str:
    """What the shape cannot say: every schema scores every label (and micro, macro); the confusion covers them."""
    names = [*system["labels"], MICRO, MACRO]
    for schema in SCHEMAS:
        per = system["scores"].get(schema)
        if per is None:
            return f"scores: no {schema!r}"
        missing = next((label for label in names if label not in per), None)
        if missing is not None:
            return f"scores.{schema}: no {missing!r}"
    confusion = system.get("confusion") or {}
    for gold in system["labels"] if confusion else ():
        missing = next((label for label in system["labels"] if label not in confusion.get(gold, {})), None)
        if missing is not None:
            return f"confusion.{gold}: no {missing!r}"
    return ""


def metrics_document(evaluations: Mapping[str, Evaluation], source: dict) -> dict:
    """What ``metrics.json`` holds: provenance, then per system every schema's scores, counts, errors."""
    return {"provenance": source, "systems": {name: result.to_dict() for name, result in evaluations.items()}}


REPORT_FILES = ("metrics.json", "scores.png", "report.md")


def check_report_targets(folder: str | Path, systems: Iterable[str], *others: str) -> None:
    """Before any training or scoring: every file :func:`write_reports` (and ``others``) will write can be written."""
    folder = Path(folder)
    check_folder_target(folder, marker=None, what="reports folder")
    for name in (*(f"predictions-{system}.jsonl" for system in systems), *REPORT_FILES, *others):
        check_file_target(folder / name)


def write_reports(
    folder: str | Path,
    evaluations: Mapping[str, Evaluation],
    source: dict,
    *,
    title: str,
    predictions: Mapping[str, Sequence[AnnotatedDoc]] | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.md, scores.png (and predictions-<system>.jsonl) into ``folder``: all or none."""
    folder = Path(folder)
    written: dict[str, Path] = {}
    files: list[tuple[Path, bytes]] = []
    for system, docs in (predictions or {}).items():
        path = folder / f"predictions-{system}.jsonl"
        files.append((path, encode_text(gold_jsonl(docs), str(path))))
        written[f"predictions-{system}"] = path
    metrics, chart, markdown = (folder / name for name in REPORT_FILES)
    document = json.dumps(metrics_document(evaluations, source), indent=2, ensure_ascii=False) + "\n"
    view = evaluation_view(evaluations, source, title=title)
    files += [
        (metrics, encode_text(document, str(metrics))),
        (chart, chart_png(evaluations)),
        (markdown, encode_text(markdown_report(view, chart=chart.name), str(markdown))),
    ]
    write_files(files)
    written.update({"metrics": metrics, "markdown": markdown, "chart": chart})
    return written
