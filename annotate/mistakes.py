"""What kind of mistake each strict error is: false positive, false negative, boundary or label.

Strict scoring only says "false positive" or "false negative"; someone fixing a model wants to
know that a predicted span was the right stretch with the wrong label, or the right label with
edges a word off. A wrong prediction is paired with a gold span it overlaps that no prediction
matched exactly: same label → **boundary**, other label → **label** (whatever its edges). An
unpaired wrong prediction is a **false positive**, an unpaired missed gold span a **false negative**.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from annotate.errors import EvaluationError
from annotate.records import AnnotatedDoc, Span

KINDS = ("false positive", "false negative", "boundary", "label")


@dataclass(frozen=True)
class Mistake:
    """One error of one article: the gold span, the predicted span, or both when they were paired."""

    doc_id: str
    kind: str
    gold: Span | None
    predicted: Span | None

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label involved (two for a label error), what a filter by label looks at."""
        return tuple(dict.fromkeys(span.label for span in (self.gold, self.predicted) if span is not None))

    @property
    def start(self) -> int:
        return min(span.start for span in (self.gold, self.predicted) if span is not None)

    @property
    def end(self) -> int:
        return max(span.end for span in (self.gold, self.predicted) if span is not None)


def _overlap(a: Span, b: Span) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


def article_mistakes(gold: AnnotatedDoc, predicted: AnnotatedDoc) -> list[Mistake]:
    """The mistakes in one article, in text order; ``predicted`` must be the same article."""
    if gold.id != predicted.id or gold.text != predicted.text:
        raise EvaluationError(f"predictions: article {predicted.id} differs from gold article {gold.id} (id or text)")
    gold_set, predicted_set = set(gold.spans), set(predicted.spans)
    missed = [span for span in sorted(gold_set) if span not in predicted_set]
    wrong = [span for span in sorted(predicted_set) if span not in gold_set]
    paired: set[Span] = set()
    found = []
    for span in wrong:
        candidates = [g for g in missed if g not in paired and _overlap(g, span) > 0]
        same_label = [g for g in candidates if g.label == span.label]
        pool = same_label or candidates
        if not pool:
            found.append(Mistake(gold.id, "false positive", None, span))
            continue
        partner = max(pool, key=lambda g: (_overlap(g, span), -g.start))
        paired.add(partner)
        found.append(Mistake(gold.id, "boundary" if same_label else "label", partner, span))
    found += [Mistake(gold.id, "false negative", g, None) for g in missed if g not in paired]
    return sorted(found, key=lambda m: (m.start, m.end, KINDS.index(m.kind)))


def mistakes(gold: Sequence[AnnotatedDoc], predicted: Sequence[AnnotatedDoc]) -> dict[str, list[Mistake]]:
    """Article id → its mistakes, for every gold article (in gold order); predictions must cover them all."""
    by_id = {doc.id: doc for doc in predicted}
    missing = [doc.id for doc in gold if doc.id not in by_id]
    if missing:
        raise EvaluationError(f"predictions lack {len(missing)} gold article(s), first {missing[0]}")
    return {doc.id: article_mistakes(doc, by_id[doc.id]) for doc in gold}
