"""Choices made inside a fold, never on its held-out article (nested cross-validation).

A held-out figure is honest only if nothing about the held-out article shaped the system that
is scored on it: not its thresholds, not its recipe. So for each outer fold, the choices are
made by an inner leave-one-article-out over that fold's *training* articles alone: every
candidate recipe is trained on all but one of them and predicts the one left out; the
per-label thresholds and the recipe that score best on those inner predictions are the fold's
choice; then the chosen recipe is trained on all the fold's training articles and predicts the
held-out article once.

Inner models over the same articles are shared between outer folds (with five articles, the
inner trainings are the ten three-article subsets, each used by two outer folds), which keeps
the full search to fifteen trainings per recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spacy.language import Language

from annotate.convert import SPAN_KEY
from annotate.evaluate import evaluate
from annotate.records import AnnotatedDoc, Span
from annotate.suggest import OVERLAP_FILTER

THRESHOLD_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

Trainer = Callable[[Sequence[AnnotatedDoc], Path], Language]
ScoredDoc = tuple[AnnotatedDoc, tuple[tuple[Span, float], ...]]


@dataclass(frozen=True)
class FoldChoice:
    """What one outer fold chose and exactly which articles the choice looked at."""

    held_out: tuple[str, ...]
    seen: tuple[str, ...]
    config: str
    thresholds: dict[str, float]
    inner_f1: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def with_thresholds(nlp: Language, thresholds: dict[str, float]) -> Language:
    """Give the pipeline per-label thresholds (adding the per-label filter after spancat if it lacks one)."""
    if OVERLAP_FILTER not in nlp.pipe_names and "best_per_label" not in nlp.pipe_names:
        nlp.add_pipe(OVERLAP_FILTER, name="best_per_label", after="spancat")
    name = "best_per_label" if "best_per_label" in nlp.pipe_names else OVERLAP_FILTER
    nlp.get_pipe(name).thresholds = dict(thresholds)
    return nlp


def scored_predictions(nlp: Language, docs: Sequence[AnnotatedDoc], floor: float) -> list[ScoredDoc]:
    """Every span the pipeline keeps at ``floor``, with its spancat score: enough to apply any higher threshold.

    The per-label filter keeps the best-scoring spans that do not overlap; raising a label's
    threshold only drops that label's spans below it, so filtering these scores gives exactly
    what the pipeline would predict with the higher threshold.
    """
    spancat = nlp.get_pipe("spancat")
    before = spancat.cfg["threshold"]
    spancat.cfg["threshold"] = floor
    with_thresholds(nlp, {})
    try:
        result = []
        for annotated, doc in zip(docs, nlp.pipe(d.text for d in docs), strict=True):
            group = doc.spans.get(SPAN_KEY, [])
            scores = group.attrs.get("scores") if group else None
            scored = tuple(
                (Span.from_offsets(doc.text, span.start_char, span.end_char, span.label_), float(score))
                for span, score in zip(group, scores if scores is not None else [1.0] * len(group), strict=False)
            )
            result.append((annotated, scored))
        return result
    finally:
        spancat.cfg["threshold"] = before


def thresholded(scored: Sequence[ScoredDoc], thresholds: dict[str, float], default: float) -> list[AnnotatedDoc]:
    """The predictions in gold format with each label's threshold applied."""
    return [
        AnnotatedDoc(
            doc.id,
            doc.text,
            tuple(sorted({span for span, score in spans if score >= thresholds.get(span.label, default)})),
            annotator="",
            source="inner fold",
        )
        for doc, spans in scored
    ]


def best_thresholds(
    gold: Sequence[AnnotatedDoc], scored: Sequence[ScoredDoc], labels: Sequence[str], grid: Sequence[float]
) -> tuple[dict[str, float], float]:
    """Per label, the grid value with the best strict F1 on these (inner) predictions; ties go to the lower value.

    Labels are independent under the per-label filter, so each is chosen on its own. Returns
    the thresholds and the strict micro F1 they give.
    """
    chosen: dict[str, float] = {}
    for label in labels:
        best = None
        for value in grid:
            predicted = thresholded(scored, {label: value}, default=value)
            score = evaluate(gold, predicted, labels, bootstrap=0, with_errors=False).scores["strict"][label].f1
            if best is None or score > best[0] + 1e-12:
                best = (score, value)
        chosen[label] = best[1] if best else 0.5
    micro = evaluate(gold, thresholded(scored, chosen, default=0.5), labels, bootstrap=0, with_errors=False)
    return chosen, micro.scores["strict"]["micro"].f1


def choose_in_fold(
    train_docs: Sequence[AnnotatedDoc],
    held_out: Sequence[str],
    configs: Sequence[Path],
    labels: Sequence[str],
    trainer: Trainer,
    grid: Sequence[float] = THRESHOLD_GRID,
) -> FoldChoice:
    """Choose a recipe and per-label thresholds by leave-one-article-out over ``train_docs`` only."""
    leaked = sorted({doc.id for doc in train_docs} & set(held_out))
    if leaked:
        raise ValueError(f"held-out article(s) {', '.join(leaked)} among the articles a choice may see")
    results: dict[str, tuple[float, dict[str, float]]] = {}
    for config in configs:
        scored: list[ScoredDoc] = []
        for inner in train_docs:
            nlp = trainer([doc for doc in train_docs if doc.id != inner.id], config)
            scored.extend(scored_predictions(nlp, [inner], min(grid)))
        thresholds, micro = best_thresholds(list(train_docs), scored, labels, grid)
        results[str(config)] = (micro, thresholds)
    best_config = max(results, key=lambda name: results[name][0])  # first listed wins a tie
    return FoldChoice(
        held_out=tuple(held_out),
        seen=tuple(doc.id for doc in train_docs),
        config=best_config,
        thresholds=results[best_config][1],
        inner_f1={name: round(value[0], 4) for name, value in results.items()},
    )
