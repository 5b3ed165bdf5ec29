"""Adjudication: ground truth wins, K of N annotators make gold, everything else is a conflict."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate.adjudicate import Conflict, ReviewItem, adjudicate, review_items
from annotate.errors import AgreementError
from annotate.records import AnnotatedDoc, PulledAnnotation, Span, text_sha256

TEXT = "Hamas said talks stalled."
HAMAS = Span.from_offsets(TEXT, 0, 5, "ACTOR")
HAMAS_SAID = Span.from_offsets(TEXT, 0, 10, "ACTOR")
ATTRIBUTION = Span.from_offsets(TEXT, 0, 10, "ATTRIBUTION")
TALKS = Span.from_offsets(TEXT, 11, 16, "ACTOR")
TEXTS = {"doc": TEXT}

_ids = iter(range(1, 10**6))


def pulled(annotator: str, *spans: Span, doc_id: str = "doc", **fields) -> PulledAnnotation:
    fields.setdefault("task_id", 7)
    return PulledAnnotation(
        annotation_id=fields.pop("annotation_id", next(_ids)),
        doc_id=doc_id,
        annotator=annotator,
        spans=spans,
        text_sha256=text_sha256(TEXT),
        **fields,
    )


def test_spans_two_of_three_marked_are_gold_the_rest_conflicts():
    result = adjudicate(
        [
            pulled("alice", HAMAS, ATTRIBUTION),
            pulled("bob", HAMAS, ATTRIBUTION, TALKS),
            pulled("carol", HAMAS_SAID),
        ],
        TEXTS,
        min_agree=2,
    )
    (gold,) = result.gold
    assert gold == AnnotatedDoc(
        "doc",
        TEXT,
        (HAMAS, ATTRIBUTION),
        annotator="alice,bob,carol",
        source="label-studio adjudicated: 3 annotator(s), min-agree 2",
    )
    assert result.conflicts == (
        Conflict("doc", (7,), HAMAS_SAID, ("carol",), ("alice", "bob")),
        Conflict("doc", (7,), TALKS, ("bob",), ("alice", "carol")),
    )
    assert result.conflicts[1].describe() == "doc: [11:16] ACTOR 'talks': marked by bob; not by alice, carol"
    assert result.from_ground_truth == () and result.undecided == ()


def test_higher_min_agree_makes_less_gold():
    annotations = [pulled("alice", HAMAS, TALKS), pulled("bob", HAMAS, TALKS), pulled("carol", HAMAS)]
    assert adjudicate(annotations, TEXTS, min_agree=2).gold[0].spans == (HAMAS, TALKS)
    unanimous = adjudicate(annotations, TEXTS, min_agree=3)
    assert unanimous.gold[0].spans == (HAMAS,)
    assert [c.span for c in unanimous.conflicts] == [TALKS]


def test_ground_truth_wins_over_any_majority():
    result = adjudicate(
        [pulled("alice", TALKS, ground_truth=True), pulled("bob", HAMAS), pulled("carol", HAMAS)],
        TEXTS,
        min_agree=2,
    )
    (gold,) = result.gold
    assert gold.spans == (TALKS,) and gold.annotator == "alice"
    assert gold.source.startswith("label-studio adjudicated: ground truth (annotation ")
    assert result.conflicts == () and result.from_ground_truth == ("doc",)


def test_differing_ground_truths_keep_what_they_share_and_list_the_rest():
    first = pulled("alice", HAMAS, TALKS, ground_truth=True, annotation_id=501)
    second = pulled("bob", HAMAS, ground_truth=True, annotation_id=502)
    result = adjudicate([first, second], TEXTS)
    assert result.gold[0].spans == (HAMAS,)
    assert result.conflicts == (Conflict("doc", (7,), TALKS, ("alice (annotation 501)",), ("bob (annotation 502)",)),)


def test_nested_actor_inside_attribution_is_not_a_conflict():
    result = adjudicate([pulled("alice", HAMAS, ATTRIBUTION), pulled("bob", ATTRIBUTION, HAMAS)], TEXTS)
    assert result.gold[0].spans == (HAMAS, ATTRIBUTION) and result.conflicts == ()


def test_too_few_annotators_leaves_the_article_undecided():
    result = adjudicate([pulled("alice", HAMAS), pulled("bob", was_cancelled=True)], TEXTS, min_agree=2)
    assert result.gold == () and result.undecided == ("doc",)
    assert result.conflicts == (Conflict("doc", (7,), HAMAS, ("alice",), ()),)
    assert result.cancelled == 1


def test_agreeing_on_no_spans_is_gold_without_spans():
    result = adjudicate([pulled("alice"), pulled("bob")], TEXTS)
    assert result.gold[0].spans == () and result.conflicts == ()


def test_each_annotators_latest_annotation_votes_once():
    result = adjudicate(
        [
            pulled("alice", TALKS, updated_at="2026-01-01T10:00:00Z"),
            pulled("alice", HAMAS, updated_at="2026-01-02T10:00:00Z"),
            pulled("bob", TALKS),
        ],
        TEXTS,
        min_agree=2,
    )
    assert result.gold[0].spans == () and result.superseded == 1
    assert {c.span for c in result.conflicts} == {HAMAS, TALKS}


def test_order_of_annotations_does_not_matter():
    annotations = [pulled("alice", HAMAS, TALKS), pulled("bob", HAMAS), pulled("carol", TALKS, ATTRIBUTION)]
    assert adjudicate(annotations, TEXTS) == adjudicate(list(reversed(annotations)), TEXTS)


def test_min_agree_below_one_is_refused():
    with pytest.raises(AgreementError, match=r"^--min-agree must be at least 1, not 0$"):
        adjudicate([pulled("alice")], TEXTS, min_agree=0)


def test_review_items_carry_agreed_spans_and_candidates():
    result = adjudicate([pulled("alice", HAMAS, TALKS), pulled("bob", HAMAS, HAMAS_SAID)], TEXTS)
    (item,) = review_items(result)
    assert item == ReviewItem("doc", (7,), (HAMAS,), (HAMAS_SAID, TALKS))
    assert item.spans == (HAMAS, HAMAS_SAID, TALKS)
    assert review_items(adjudicate([pulled("alice", HAMAS), pulled("bob", HAMAS)], TEXTS)) == []


AWKWARD = "Hamas “said” — talks’ حماس قالت 😀👍🏽 é n\u0303 10% –\n "
LABELS = ("ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION")


@st.composite
def three_annotators(draw):
    text = draw(st.text(alphabet=AWKWARD, min_size=1, max_size=30))
    offsets = st.tuples(st.integers(0, len(text) - 1), st.integers(1, len(text)), st.sampled_from(LABELS))

    def spans():
        return {Span.from_offsets(text, s, e, label) for s, e, label in draw(st.lists(offsets, max_size=5)) if s < e}

    return text, [spans(), spans(), spans()]


@settings(max_examples=60, deadline=None)
@given(three_annotators())
def test_one_vote_is_the_union_and_all_votes_the_intersection(case):
    text, span_sets = case
    annotations = [
        PulledAnnotation(1, number, "doc", name, tuple(spans), text_sha256=text_sha256(text))
        for number, (name, spans) in enumerate(zip(("alice", "bob", "carol"), span_sets, strict=True), start=1)
    ]
    texts = {"doc": text}
    union, everyone = adjudicate(annotations, texts, 1), adjudicate(annotations, texts, 3)
    assert set(union.gold[0].spans) == set.union(*span_sets) and union.conflicts == ()
    assert set(everyone.gold[0].spans) == set.intersection(*span_sets)
    assert {c.span for c in everyone.conflicts} == set.union(*span_sets) - set.intersection(*span_sets)
    assert adjudicate(list(reversed(annotations)), texts, 2) == adjudicate(annotations, texts, 2)
