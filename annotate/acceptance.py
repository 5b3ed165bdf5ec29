"""What annotators did to the model's predictions: the figure that says whether pre-annotation saves work.

Each submitted annotation is compared with the prediction its annotator was shown: the latest
prediction on the task created before the annotation. Annotations made with no prediction before
them are counted apart (``unassisted``). Each predicted span is, in this order of matching:

- **kept**: the annotation has the same span (start, end, label);
- **boundary changed**: an annotated span of the same label overlaps it, with other edges;
- **label changed**: an annotated span of another label overlaps it (same or other edges);
- **deleted**: nothing in the annotation overlaps it.

Annotated spans matched by no predicted span were **added**. Precision and recall of the
predictions against the submitted annotations count kept spans only (exact match): precision =
kept / predicted, recall = kept / annotated. Kept, changed and deleted count under the predicted
label; added under the annotated label; everything per ``model_version``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from annotate.corpus import atomic_write_text
from annotate.records import PulledAnnotation, Span

KINDS = ("kept", "boundary_changed", "label_changed", "deleted", "added")


@dataclass(frozen=True)
class ShownPrediction:
    """A prediction on a task, as the annotator would have seen it."""

    task_id: int
    model_version: str
    created_at: str
    spans: tuple[Span, ...]


@dataclass
class Counts:
    kept: int = 0
    boundary_changed: int = 0
    label_changed: int = 0
    deleted: int = 0
    added: int = 0

    @property
    def predicted(self) -> int:
        return self.kept + self.boundary_changed + self.label_changed + self.deleted

    @property
    def annotated(self) -> int:
        return self.kept + self.boundary_changed + self.label_changed + self.added

    @property
    def precision(self) -> float | None:
        return self.kept / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.kept / self.annotated if self.annotated else None

    def add(self, other: Counts) -> None:
        for kind in KINDS:
            setattr(self, kind, getattr(self, kind) + getattr(other, kind))

    def to_dict(self) -> dict:
        figures = {kind: getattr(self, kind) for kind in KINDS}
        figures.update(predicted=self.predicted, annotated=self.annotated)
        figures.update(precision=_rounded(self.precision), recall=_rounded(self.recall))
        return figures


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class AcceptanceReport:
    """Counts per model version and label, and how many annotations were compared or made unassisted."""

    per_version: dict[str, dict[str, Counts]] = field(default_factory=dict)
    annotations: dict[str, int] = field(default_factory=dict)
    unassisted: int = 0

    def total(self, version: str) -> Counts:
        summed = Counts()
        for counts in self.per_version[version].values():
            summed.add(counts)
        return summed

    def to_dict(self) -> dict:
        return {
            "model_versions": {
                version: {
                    "annotations": self.annotations.get(version, 0),
                    "labels": {label: counts.to_dict() for label, counts in sorted(labels.items())},
                    "total": self.total(version).to_dict(),
                }
                for version, labels in sorted(self.per_version.items())
            },
            "unassisted_annotations": self.unassisted,
            "definitions": (
                "each annotation against the latest prediction on its task created before it; kept = same span; "
                "boundary_changed = same label, overlapping; label_changed = other label, overlapping; "
                "deleted = nothing overlaps; added = annotated span no prediction matches; "
                "precision = kept / predicted, recall = kept / annotated"
            ),
        }


def compare(predicted: Iterable[Span], annotated: Iterable[Span]) -> dict[str, Counts]:
    """Per label: what one annotation did to one prediction (see the module's definitions)."""
    counts: dict[str, Counts] = defaultdict(Counts)
    left = sorted(predicted)
    open_annotated = sorted(annotated)
    matched: list[tuple[Span, str]] = []
    for rule in ("kept", "boundary_changed", "label_changed"):
        still = []
        for span in left:
            partner = next((other for other in open_annotated if _matches(rule, span, other)), None)
            if partner is None:
                still.append(span)
                continue
            open_annotated.remove(partner)
            matched.append((span, rule))
        left = still
    for span, rule in matched:
        setattr(counts[span.label], rule, getattr(counts[span.label], rule) + 1)
    for span in left:
        counts[span.label].deleted += 1
    for span in open_annotated:
        counts[span.label].added += 1
    return dict(counts)


def _matches(rule: str, predicted: Span, annotated: Span) -> bool:
    if rule == "kept":
        return (predicted.start, predicted.end, predicted.label) == (annotated.start, annotated.end, annotated.label)
    overlapping = predicted.start < annotated.end and annotated.start < predicted.end
    if rule == "boundary_changed":
        return overlapping and predicted.label == annotated.label
    return overlapping and predicted.label != annotated.label


def _moment(stamp: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def shown_prediction(annotation: PulledAnnotation, predictions: Sequence[ShownPrediction]) -> ShownPrediction | None:
    """The latest prediction on the annotation's task created before the annotation (what its annotator saw)."""
    made = _moment(annotation.created_at)
    before = [
        p for p in predictions if made is None or ((moment := _moment(p.created_at)) is not None and moment <= made)
    ]
    return max(before, key=lambda p: _moment(p.created_at) or datetime.min.replace(tzinfo=timezone.utc), default=None)


def acceptance(annotations: Iterable[PulledAnnotation], predictions: Iterable[ShownPrediction]) -> AcceptanceReport:
    """Compare every submitted (not cancelled) annotation with the prediction its annotator was shown."""
    per_task: Mapping[int, list[ShownPrediction]] = defaultdict(list)
    for prediction in predictions:
        per_task[prediction.task_id].append(prediction)
    report = AcceptanceReport()
    for annotation in annotations:
        if annotation.was_cancelled:
            continue
        shown = shown_prediction(annotation, per_task.get(annotation.task_id, []))
        if shown is None:
            report.unassisted += 1
            continue
        labels = report.per_version.setdefault(shown.model_version, {})
        report.annotations[shown.model_version] = report.annotations.get(shown.model_version, 0) + 1
        for label, counts in compare(shown.spans, annotation.spans).items():
            labels.setdefault(label, Counts()).add(counts)
    return report


def acceptance_path(pulled: str | Path) -> Path:
    """Where pull keeps the acceptance figures: beside the pulled file (``x.jsonl`` → ``x.acceptance.json``)."""
    pulled = Path(pulled)
    return pulled.with_name(f"{pulled.stem}.acceptance.json")


def acceptance_json(figures: dict) -> str:
    """The figures (:meth:`AcceptanceReport.to_dict`) as the indented JSON file pull writes."""
    return json.dumps(figures, indent=2, ensure_ascii=False) + "\n"


def acceptance_files(pulled_dir: str | Path) -> list[Path]:
    """Every acceptance file pull wrote into ``pulled_dir`` (one per project, :func:`acceptance_path`), by name."""
    folder = Path(pulled_dir)
    return sorted(folder.glob("*.acceptance.json")) if folder.is_dir() else []


def write_acceptance(figures: dict, path: str | Path) -> None:
    """The figures as :func:`acceptance_json`, written atomically."""
    atomic_write_text(path, acceptance_json(figures))


def read_acceptance(path: str | Path) -> dict | None:
    """The figures a pull wrote, or None when there are none to read (no file, or not JSON): they are optional."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
