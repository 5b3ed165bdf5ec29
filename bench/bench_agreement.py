"""Agreement and adjudication on synthetic multi-annotator data, next to a baseline in the same run.

Baseline: tokenizing the same articles with the blank spaCy pipeline, which agreement must do once
per shared article. Run: ``PYTHONPATH=. python bench/bench_agreement.py [ARTICLES] [ANNOTATORS]``.
"""

from __future__ import annotations

import random
import resource
import sys
import time

from annotate.adjudicate import adjudicate
from annotate.agreement import agreement, pulled_texts
from annotate.articles import read_articles
from annotate.convert import blank_pipeline
from annotate.labels import load_schema
from annotate.records import Article, PulledAnnotation, Span
from annotate.settings import load_settings


def synthetic(count: int, annotators: int, nlp, labels, seeds) -> tuple[list[Article], list[PulledAnnotation]]:
    """Articles cut from the seeds; each annotator keeps about 85% of 25 token-aligned spans per article."""
    rng = random.Random(1)
    articles, annotations = [], []
    for index in range(count):
        article = Article(f"doc{index:06d}", seeds[index % len(seeds)].text)
        articles.append(article)
        tokens = nlp.make_doc(article.text)
        candidates = set()
        for _ in range(25):
            first = rng.randrange(len(tokens) - 5)
            last = tokens[first + rng.randint(0, 4)]
            candidates.add(Span.from_offsets(article.text, tokens[first].idx, last.idx + len(last), rng.choice(labels)))
        for who in range(annotators):
            spans = tuple(span for span in sorted(candidates) if rng.random() < 0.85)
            annotations.append(
                PulledAnnotation(
                    index, len(annotations) + 1, article.id, f"annotator{who}", spans, text_sha256=article.text_sha256
                )
            )
    return articles, annotations


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    annotators = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    settings = load_settings()
    labels = load_schema(settings.schema).names
    nlp = blank_pipeline(settings.lang)
    articles, annotations = synthetic(count, annotators, nlp, labels, read_articles([settings.seeds]))

    started = time.perf_counter()
    for article in articles:
        nlp.make_doc(article.text)
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    texts = pulled_texts(annotations, articles, labels)
    report = agreement(annotations, texts, labels, nlp)
    measured = time.perf_counter() - started

    started = time.perf_counter()
    result = adjudicate(annotations, texts, min_agree=2)
    merged = time.perf_counter() - started

    spans = sum(len(a.spans) for a in annotations)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count} articles x {annotators} annotators, {spans} spans, {report.tokens} shared tokens")
    print(f"baseline  tokenize articles        {baseline:7.2f} s")
    print(f"agreement check + all figures      {measured:7.2f} s  ({measured / baseline:.2f}x baseline)")
    print(f"adjudicate                         {merged:7.2f} s  ({len(result.conflicts)} conflicts)")
    print(f"peak memory                        {peak_mb:7.0f} MB")


if __name__ == "__main__":
    main()
