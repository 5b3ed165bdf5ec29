"""Benchmark: evaluating 1,000,000 synthetic spans (target: under 5 s on 2 cores).

The baseline is spaCy's ``Scorer.score_spans`` (strict P/R/F only) on the same spans, run on a
slice and scaled up, since building a million spaCy Spans alone takes minutes. Run:
``PYTHONPATH=. python bench/bench_evaluate.py [--spans N]``.
"""

from __future__ import annotations

import argparse
import random
import time

from annotate.evaluate import evaluate
from annotate.records import AnnotatedDoc, Span

LABELS = ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]
WORD = "word "  # every span starts and ends on a 5-character token, so spaCy can score the same spans


def synthetic(n_spans: int, seed: int = 0, spans_per_doc: int = 100) -> tuple[list[AnnotatedDoc], list[AnnotatedDoc]]:
    """Gold and predictions with ~n_spans spans in all: hits, shifted edges, wrong labels, misses, extras, nesting."""
    rng = random.Random(seed)
    text = WORD * 2000
    gold, predicted = [], []
    total, number = 0, 0
    while total < n_spans:
        number += 1
        gold_spans, pred_spans = set(), set()
        for _ in range(spans_per_doc):
            first = rng.randrange(0, 1990)
            length = rng.choice((1, 1, 2, 3, 5, 8, 17, 30))
            start, end = first * 5, min(first + length, 2000) * 5 - 1
            span = Span(start, end, rng.choice(LABELS), text[start:end])
            gold_spans.add(span)
            roll = rng.random()
            if roll < 0.6:
                pred_spans.add(span)
            elif roll < 0.75 and length > 1:
                pred_spans.add(Span(start + 5, end, span.label, text[start + 5 : end]))
            elif roll < 0.85:
                pred_spans.add(Span(start, end, rng.choice(LABELS), span.text))
            elif roll < 0.95:
                other = rng.randrange(0, 1999) * 5
                pred_spans.add(Span(other, other + 4, rng.choice(LABELS), text[other : other + 4]))
        gold.append(AnnotatedDoc(f"doc{number}", text, tuple(gold_spans)))
        predicted.append(AnnotatedDoc(f"doc{number}", text, tuple(pred_spans)))
        total += len(gold_spans) + len(pred_spans)
    return gold, predicted


def spacy_scorer_seconds(gold: list[AnnotatedDoc], predicted: list[AnnotatedDoc]) -> float:
    """Time of spaCy's Scorer.score_spans on these docs, Doc construction excluded."""
    import spacy
    from spacy.scorer import Scorer
    from spacy.training import Example

    nlp = spacy.blank("en")
    examples = []
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        reference, prediction = nlp.make_doc(gold_doc.text), nlp.make_doc(gold_doc.text)
        reference.spans["sc"] = [reference.char_span(s.start, s.end, s.label) for s in gold_doc.spans]
        prediction.spans["sc"] = [prediction.char_span(s.start, s.end, s.label) for s in pred_doc.spans]
        examples.append(Example(prediction, reference))
    began = time.perf_counter()
    Scorer.score_spans(examples, "spans_sc", getter=lambda doc, _: doc.spans["sc"], allow_overlap=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--baseline-docs", type=int, default=200)
    args = parser.parse_args()
    gold, predicted = synthetic(args.spans)
    total = sum(len(d.spans) for d in gold) + sum(len(d.spans) for d in predicted)
    began = time.perf_counter()
    result = evaluate(gold, predicted, LABELS, bootstrap=1000)
    ours = time.perf_counter() - began
    began = time.perf_counter()
    evaluate(gold, predicted, LABELS, bootstrap=1000, with_errors=False)
    scores_only = time.perf_counter() - began
    sample = args.baseline_docs
    scaled = spacy_scorer_seconds(gold[:sample], predicted[:sample]) * len(gold) / sample
    print(f"spans evaluated: {total:,} ({len(gold):,} articles, gold {sum(len(d.spans) for d in gold):,})")
    print(f"annotate.evaluate (4 schemas, per label, 1000 bootstrap, confusions, errors): {ours:.2f} s")
    print(f"annotate.evaluate without confusions/error list:                          {scores_only:.2f} s")
    print(f"baseline spaCy Scorer.score_spans (strict only), scaled from {sample} articles: {scaled:.2f} s")
    verdict = {True: "met", False: "NOT met"}
    print(f"target < 5 s for the scores with intervals: {verdict[scores_only < 5]} ({scores_only:.2f} s)")
    print(f"target < 5 s with confusions and {len(result.errors):,} error records: {verdict[ours < 5]} ({ours:.2f} s)")
    print(f"strict micro F1 {result.scores['strict']['micro'].f1:.4f}")


if __name__ == "__main__":
    main()
