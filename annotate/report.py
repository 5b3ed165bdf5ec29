"""Evaluation reports on disk: ``metrics.json``, a Markdown report and a PNG chart, with provenance.

Every report says what it was computed from (gold hash, model or predictions hash, versions,
date), so a figure can always be traced back. Writing is atomic; nothing here prints.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from annotate.corpus import atomic_write_bytes, atomic_write_text, gold_jsonl, gold_sha256
from annotate.evaluate import MACRO, MICRO, SCHEMAS, Evaluation
from annotate.model import library_versions
from annotate.records import AnnotatedDoc

REPORT_SCHEMAS = SCHEMAS
CHART_SCHEMAS = ("strict", "partial")
ERRORS_IN_MARKDOWN = 40
SECTIONS = ("systems_knowledge", "choices")  # provenance keys shown as sections of their own, not table rows


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


def _cell(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def _ci(interval: Sequence[float]) -> str:
    low, high = interval
    return "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"


def metrics_document(evaluations: Mapping[str, Evaluation], source: dict) -> dict:
    """What ``metrics.json`` holds: provenance, then per system every schema's scores, counts, errors."""
    return {"provenance": source, "systems": {name: result.to_dict() for name, result in evaluations.items()}}


def _knowledge_lines(source: dict) -> list[str]:
    """What each system knows, and (nested cross-validation) what each fold chose, as Markdown."""
    lines: list[str] = []
    if source.get("systems_knowledge"):
        lines += ["## What each system knows", ""]
        lines += [f"- **{system}**: {text}" for system, text in source["systems_knowledge"].items()]
        lines.append("")
    if source.get("choices"):
        lines += [
            "## Choices per fold (nested: made on the fold's training articles only)",
            "",
            "| held out | choice seen | config | thresholds | inner strict micro F1 |",
            "|---|---|---|---|---|",
        ]
        for choice in source["choices"]:
            thresholds = ", ".join(f"{label} {value:g}" for label, value in choice["thresholds"].items())
            inner = ", ".join(f"{Path(config).name} {f1:.3f}" for config, f1 in choice["inner_f1"].items())
            lines.append(
                f"| {' '.join(choice['held_out'])} | {' '.join(choice['seen'])} | {Path(choice['config']).name} "
                f"| {thresholds} | {inner} |"
            )
        lines.append("")
    return lines


def markdown_report(evaluations: Mapping[str, Evaluation], source: dict, *, title: str, chart: str = "") -> str:
    lines = [f"# {title}", "", "## Provenance", "", "| what | value |", "|---|---|"]
    for key, value in source.items():
        if key in SECTIONS:
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(" ".join(item) if isinstance(item, list) else str(item) for item in value)
        lines.append(f"| {key} | {value} |")
    lines += [
        "",
        "Scores: precision, recall, F1 with 95% bootstrap intervals (articles resampled). `strict`: same",
        "boundaries and label (as spaCy's scorer). `exact`, `partial`, `type`: SemEval-2013 schemas as in",
        "nervaluate (`partial` counts a boundary overlap as half). Macro: mean over labels present in gold",
        "or predictions.",
        "",
    ]
    lines += _knowledge_lines(source)
    if chart:
        lines += [f"![P/R/F per label]({chart})", ""]
    for name, result in evaluations.items():
        lines += [f"## {name}", ""]
        for schema in REPORT_SCHEMAS:
            lines += [f"### {name}: {schema}", "", "| label | P | R | F1 | support | predicted |", "|---" * 6 + "|"]
            for label, score in result.scores[schema].items():
                lines.append(
                    f"| {label} | {_cell(score.precision)}{_ci(score.precision_ci)} "
                    f"| {_cell(score.recall)}{_ci(score.recall_ci)} | {_cell(score.f1)}{_ci(score.f1_ci)} "
                    f"| {score.support} | {score.predicted} |"
                )
            lines.append("")
        if result.confusion:
            lines += [
                f"### {name}: labels of overlapping spans (rows gold, columns predicted)",
                "",
                "| gold \\ predicted | " + " | ".join(result.labels) + " |",
                "|---|" + "---|" * len(result.labels),
            ]
            for gold_label, row in result.confusion.items():
                lines.append(f"| {gold_label} | " + " | ".join(str(row[label]) for label in result.labels) + " |")
            lines.append("")
        if result.errors:
            shown = result.errors[:ERRORS_IN_MARKDOWN]
            lines += [
                f"### {name}: strict errors ({len(result.errors)}; first {len(shown)}, all in metrics.json)",
                "",
                "| article | kind | label | span in context |",
                "|---|---|---|---|",
            ]
            for error in shown:
                context = f"…{error.left}**{error.span.text}**{error.right}…".replace("\n", " ").replace("|", "\\|")
                lines.append(f"| {error.doc_id} | {error.kind} | {error.span.label} | {context} |")
            lines.append("")
    return "\n".join(lines)


def chart_png(evaluations: Mapping[str, Evaluation]) -> bytes:
    """Per-label P/R/F bars with 95% CI whiskers: one panel per system and schema."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(evaluations)
    figure, axes = plt.subplots(
        len(CHART_SCHEMAS), len(systems), figsize=(4.5 * len(systems), 3.6 * len(CHART_SCHEMAS)), squeeze=False
    )
    for column, system in enumerate(systems):
        result = evaluations[system]
        names = [*result.labels, MICRO, MACRO]
        for row, schema in enumerate(CHART_SCHEMAS):
            axis = axes[row][column]
            for offset, metric in enumerate(("precision", "recall", "f1")):
                values = [getattr(result.scores[schema][n], metric) for n in names]
                intervals = [getattr(result.scores[schema][n], f"{metric}_ci") for n in names]
                pairs = list(zip(values, intervals, strict=True))
                below = [0 if math.isnan(lo) else max(0.0, v - lo) for v, (lo, _) in pairs]
                above = [0 if math.isnan(hi) else max(0.0, hi - v) for v, (_, hi) in pairs]
                positions = [i + (offset - 1) * 0.27 for i in range(len(names))]
                axis.bar(positions, values, width=0.27, label=metric, yerr=[below, above], capsize=2)
            axis.set_xticks(range(len(names)))
            axis.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
            axis.set_ylim(0, 1.05)
            axis.set_title(f"{system}: {schema}", fontsize=10)
            if row == 0 and column == 0:
                axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def write_reports(
    folder: str | Path,
    evaluations: Mapping[str, Evaluation],
    source: dict,
    *,
    title: str,
    predictions: Mapping[str, Sequence[AnnotatedDoc]] | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.md, scores.png (and predictions-<system>.jsonl) into ``folder``."""
    folder = Path(folder)
    written: dict[str, Path] = {}
    for system, docs in (predictions or {}).items():
        path = folder / f"predictions-{system}.jsonl"
        atomic_write_text(path, gold_jsonl(docs))
        written[f"predictions-{system}"] = path
    metrics = folder / "metrics.json"
    atomic_write_text(metrics, json.dumps(metrics_document(evaluations, source), indent=2, ensure_ascii=False) + "\n")
    chart = folder / "scores.png"
    atomic_write_bytes(chart, chart_png(evaluations))
    markdown = folder / "report.md"
    atomic_write_text(markdown, markdown_report(evaluations, source, title=title, chart=chart.name) + "\n")
    written.update({"metrics": metrics, "markdown": markdown, "chart": chart})
    return written
