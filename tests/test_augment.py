"""Mention substitution (annotate.mention_swap.v1): spans keep their places around the new words."""

from __future__ import annotations

import random

import spacy
from spacy.training import Example

from annotate.augment import AUGMENTER, create_mention_swap
from annotate.convert import SPAN_KEY


def _example(nlp, text: str, spans: list[tuple[str, str]]) -> Example:
    """An example whose reference has the given (label, substring) spans, first occurrence each."""
    doc = nlp.make_doc(text)
    group = []
    for label, part in spans:
        start = text.index(part)
        span = doc.char_span(start, start + len(part), label=label)
        assert span is not None, part
        group.append(span)
    doc.spans[SPAN_KEY] = group
    return Example(nlp.make_doc(text), doc)


def test_swapped_mentions_keep_every_span_in_place():
    nlp = spacy.blank("en")
    first = _example(
        nlp,
        "Hamas said the talks with Egypt went well.",
        [("ACTOR", "Hamas"), ("ATTRIBUTION", "Hamas said"), ("ACTOR", "Egypt")],
    )
    second = _example(
        nlp,
        "The Israeli prime minister demanded that 20 hostages be freed.",
        [("ACTOR", "The Israeli prime minister"), ("DEMAND", "that 20 hostages be freed"), ("FIGURE", "20 hostages")],
    )
    augment = create_mention_swap(level=1.0, labels=("ACTOR", "FIGURE"))
    random.seed(3)
    list(augment(nlp, first))
    produced = []
    for seed in range(20):
        random.seed(seed)
        produced.extend(list(augment(nlp, second))[1:])
    assert produced, "level 1.0 with a pool of mentions must produce swapped copies"
    original = {(span.label_, span.text) for span in second.reference.spans[SPAN_KEY]}
    pool = {"Hamas", "Egypt", "The Israeli prime minister", "20 hostages"}
    changed = 0
    for example in produced:
        spans = list(example.reference.spans[SPAN_KEY])
        assert [span.label_ for span in spans] == ["ACTOR", "DEMAND", "FIGURE"]
        actor, demand, figure = spans
        assert actor.text in pool and figure.text in pool | {"20 hostages"}
        assert demand.text.startswith("that ") and demand.text.endswith(" be freed")
        assert figure.start >= demand.start and figure.end <= demand.end  # FIGURE still inside its DEMAND
        assert example.predicted.text == example.reference.text
        changed += {(span.label_, span.text) for span in spans} != original
    assert changed


def test_a_mention_with_a_span_edge_inside_it_is_not_swapped():
    nlp = spacy.blank("en")
    example = _example(
        nlp,
        "Senior Hamas official Ghazi Hamad said no.",
        [("ACTOR", "Senior Hamas official Ghazi Hamad"), ("ACTOR", "Hamas"), ("ATTRIBUTION", "Ghazi Hamad said")],
    )
    other = _example(nlp, "Qatar and Egypt met.", [("ACTOR", "Qatar"), ("ACTOR", "Egypt")])
    augment = create_mention_swap(level=1.0)
    list(augment(nlp, other))
    for seed in range(20):
        random.seed(seed)
        for swapped in list(augment(nlp, example))[1:]:
            texts = [span.text for span in swapped.reference.spans[SPAN_KEY]]
            # the long ACTOR has another span's edge inside it, so it stays; "Hamas" may be swapped
            assert "Ghazi Hamad said" in texts
            assert any(text.startswith("Senior ") and text.endswith("official Ghazi Hamad") for text in texts)


def test_level_zero_yields_only_the_original():
    nlp = spacy.blank("en")
    example = _example(nlp, "Hamas met Egypt.", [("ACTOR", "Hamas"), ("ACTOR", "Egypt")])
    assert list(create_mention_swap(level=0.0)(nlp, example)) == [example]


def test_the_augmenter_is_registered_for_configs():
    assert spacy.registry.augmenters.get(AUGMENTER) is create_mention_swap
