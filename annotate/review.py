"""The model's spans next to the gold, for reviewing errors in Label Studio (``annotate review-errors``).

What is sent is plain: each gold article with its gold spans and the spans a model (or a
predictions file) gives it. The Label Studio side lives in :func:`annotate.studio.review.send_errors_for_review`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from annotate.gold import validated_predictions
from annotate.labels import Schema
from annotate.model import load_pipeline, model_version, predict
from annotate.records import AnnotatedDoc


def _file_version(path: Path) -> str:
    return f"{path.stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def predictions_for_review(
    target: str | Path, gold: Sequence[AnnotatedDoc], schema: Schema
) -> tuple[list[AnnotatedDoc], str]:
    """The predicted spans of every gold article (in gold order) and the version they carry in Label Studio.

    ``target`` is a saved pipeline folder (run over the gold texts; its version is the one
    ``push --predictions`` uses) or predictions JSONL in gold format covering the same articles
    (checked as :func:`annotate.gold.validated_predictions` checks every predictions file).
    """
    target = Path(target)
    if target.is_dir():
        return predict(load_pipeline(target), list(gold), f"model {target}"), model_version(target)
    return validated_predictions(target, schema, gold), _file_version(target)


@dataclass(frozen=True)
class ReviewPair:
    """A gold article and the model's version of it; ``score`` is their strict span F1 (low: look here first)."""

    gold: AnnotatedDoc
    predicted: AnnotatedDoc

    @property
    def score(self) -> float:
        gold, predicted = set(self.gold.spans), set(self.predicted.spans)
        if not gold and not predicted:
            return 1.0
        return round(2 * len(gold & predicted) / (len(gold) + len(predicted)), 4)


def review_pairs(gold: Sequence[AnnotatedDoc], predicted: Sequence[AnnotatedDoc]) -> list[ReviewPair]:
    return [ReviewPair(doc, found) for doc, found in zip(gold, predicted, strict=True)]
