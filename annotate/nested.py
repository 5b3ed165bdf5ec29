"""Choices made inside a fold, never on its held-out article (nested cross-validation).

A held-out figure is honest only if nothing about the held-out article shaped the system that
is scored on it: not its thresholds, not its recipe. So for each outer fold, the choices are
made by an inner leave-one-article-out over that fold's *training* articles alone: every
candidate recipe is trained on all but one of them and predicts the one left out; the
per-label thresholds and the recipe that score best on those inner predictions are the fold's
choice; then the chosen recipe is trained on all the fold's training articles and predicts the
held-out article once.

Inner models over the same articles are shared between outer folds (with five articles, the
inner trainings are the ten three-article subsets, each used by two outer folds; the sharing
lives in :func:`annotate.train.cross_validate`), which keeps the full search to ten trainings
per recipe plus the five outer ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spacy.language import Language

from annotate.convert import SPAN_KEY
from annotate.errors import TrainingError
from annotate.evaluate import evaluate
from annotate.model import scored_spans
from annotate.records import AnnotatedDoc, Span
from annotate.suggest import OVERLAP_FILTER

THRESHOLD_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
FILTER_PIPE = "best_per_label"

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
    """Give the pipeline per-label thresholds: the per-label filter after spancat holds them.

    The filter is added after spancat if the pipeline lacks one, and replaced (not mutated) if it
    has one, so ``nlp.config`` and a saved pipeline carry the thresholds. spancat's own threshold
    is lowered to the lowest of them: spancat drops every span below its threshold before the
    filter sees it, so a label's threshold under spancat's would otherwise have no effect.
    """
    config = {"spans_key": SPAN_KEY, "thresholds": {label: float(value) for label, value in thresholds.items()}}
    name = next((pipe for pipe in nlp.pipe_names if nlp.get_pipe_meta(pipe).factory == OVERLAP_FILTER), None)
    if name is None:
        nlp.add_pipe(OVERLAP_FILTER, name=FILTER_PIPE, after="spancat", config=config)
    else:
        config["spans_key"] = nlp.get_pipe(name).spans_key
        nlp.replace_pipe(name, OVERLAP_FILTER, config=config)
    if thresholds:
        nlp.get_pipe("spancat").cfg["threshold"] = min(config["thresholds"].values())
    return nlp


def scored_predictions(nlp: Language, docs: Sequence[AnnotatedDoc], floor: float) -> list[ScoredDoc]:
    """Every span the pipeline keeps at ``floor``, with its spancat score: enough to apply any higher threshold.

    The pipeline gets the per-label filter (without thresholds; see :func:`with_thresholds`),
    which stays; spancat's own threshold is put back afterwards.

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
            result.append((annotated, tuple(scored_spans(doc, annotated.text))))
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
    values = sorted(grid)
    if not values:
        raise TrainingError("no threshold values to choose among")
    chosen: dict[str, float] = {}
    for label in labels:
        best: tuple[float, float] | None = None
        for value in values:
            predicted = thresholded(scored, {label: value}, default=value)
            score = evaluate(gold, predicted, labels, bootstrap=0, with_errors=False).scores["strict"][label].f1
            score = 0.0 if math.isnan(score) else score
            if best is None or score > best[0] + 1e-12:
                best = (score, value)
        chosen[label] = best[1]
    micro = evaluate(gold, thresholded(scored, chosen, default=values[0]), labels, bootstrap=0, with_errors=False)
    return chosen, micro.scores["strict"]["micro"].f1


def choose_in_fold(
    train_docs: Sequence[AnnotatedDoc],
    held_out: Sequence[str],
    configs: Sequence[Path],
    labels: Sequence[str],
    trainer: Trainer,
    grid: Sequence[float] = THRESHOLD_GRID,
) -> FoldChoice:
    """Choose a recipe and per-label thresholds by leave-one-article-out over ``train_docs`` only.

    ``trainer(docs, config)`` returns a pipeline trained on exactly ``docs``; it may hand back a
    model it trained before on the same articles (see :func:`annotate.train.cross_validate`).
    """
    leaked = sorted({doc.id for doc in train_docs} & set(held_out))
    if leaked:
        raise TrainingError(f"held-out article(s) {', '.join(leaked)} among the articles a choice may see")
    if len(train_docs) < 2:
        raise TrainingError(
            f"a choice inside the fold needs at least 2 training articles (leave one out), not {len(train_docs)}"
        )
    if not configs:
        raise TrainingError("no candidate config to choose among")
    results: dict[str, tuple[float, dict[str, float]]] = {}
    for config in configs:
        scored: list[ScoredDoc] = []
        for inner in train_docs:
            nlp = trainer([doc for doc in train_docs if doc.id != inner.id], config)
            scored.extend(scored_predictions(nlp, [inner], min(grid)))
        thresholds, micro = best_thresholds(list(train_docs), scored, labels, grid)
        results.setdefault(str(config), (micro, thresholds))
    best_config = max(results, key=lambda name: results[name][0])  # first listed wins a tie
    return FoldChoice(
        held_out=tuple(held_out),
        seen=tuple(doc.id for doc in train_docs),
        config=best_config,
        thresholds=results[best_config][1],
        inner_f1={name: round(value[0], 4) for name, value in results.items()},
    )
