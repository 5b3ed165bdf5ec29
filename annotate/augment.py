"""Mention substitution: training articles with ACTOR and FIGURE mentions swapped between contexts.

Five articles name few actors, so a model can learn *which names* are actors instead of *which
contexts* make an actor. Replacing a mention by another mention of the same label, seen
elsewhere in the training articles, keeps the context and varies the name. Registered as a
spaCy augmenter (``annotate.mention_swap.v1``), so it is set in the config's
``[corpora.train.augmenter]`` like spaCy's own, and runs only on the training corpus.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from annotate.convert import SPAN_KEY

AUGMENTER = "annotate.mention_swap.v1"


@spacy.registry.augmenters(AUGMENTER)
def create_mention_swap(
    level: float = 0.5, labels: Sequence[str] = ("ACTOR", "FIGURE")
) -> Callable[[Language, Example], Iterator[Example]]:
    """Yield each example, and with probability ``level`` a copy whose mentions are swapped.

    Mentions come from every example seen so far in training (the fold's articles only). A
    mention is replaced only when no other span starts or ends strictly inside it, so every
    span of the article keeps its place around the new words.
    """
    pool: dict[str, list[tuple[tuple[str, ...], tuple[bool, ...]]]] = {label: [] for label in labels}
    seen: set[tuple[str, tuple[str, ...]]] = set()

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        yield example
        reference = example.reference
        spans = list(reference.spans.get(SPAN_KEY, []))
        for span in spans:
            words = tuple(token.text for token in span)
            if span.label_ in pool and (span.label_, words) not in seen:
                seen.add((span.label_, words))
                pool[span.label_].append((words, tuple(bool(token.whitespace_) for token in span)))
        if level <= 0 or random.random() >= level:
            return
        swaps: dict[int, tuple[int, tuple[str, ...], tuple[bool, ...]]] = {}
        for span in spans:
            if span.label_ not in pool or len(pool[span.label_]) < 2 or random.random() >= 0.5:
                continue
            inside = any(
                other is not span and (span.start < other.start < span.end or span.start < other.end < span.end)
                for other in spans
            )
            clashes = any(start < span.end and span.start < end for start, (end, _, _) in swaps.items())
            if inside or clashes:
                continue
            words, spaces = random.choice(pool[span.label_])
            spaces = spaces[:-1] + (bool(span[-1].whitespace_),)
            swaps[span.start] = (span.end, words, spaces)
        if not swaps:
            return
        new_words: list[str] = []
        new_spaces: list[bool] = []
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        i = 0
        while i < len(reference):
            starts[i] = len(new_words)
            if i in swaps:
                end, words, spaces = swaps[i]
                new_words.extend(words)
                new_spaces.extend(spaces)
                for j in range(i + 1, end):
                    starts[j] = len(new_words)
                ends[end] = len(new_words)
                i = end
                continue
            new_words.append(reference[i].text)
            new_spaces.append(bool(reference[i].whitespace_))
            i += 1
            ends[i] = len(new_words)
        doc = Doc(nlp.vocab, words=new_words, spaces=new_spaces)
        doc.spans[SPAN_KEY] = [Span(doc, starts[span.start], ends[span.end], label=span.label_) for span in spans]
        yield Example(Doc(nlp.vocab, words=new_words, spaces=new_spaces), doc)

    return augment
