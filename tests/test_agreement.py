"""Agreement between annotators: hand-computed small cases and properties over awkward text."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.agreement import (
    SpanCounts,
    agreement,
    cohen_kappa,
    context,
    group_by_doc,
    match_spans,
    pulled_texts,
    span_agreement,
    token_edges,
    token_membership,
)
from annotate.convert import blank_pipeline
from annotate.errors import AgreementError
from annotate.records import Article, PulledAnnotation, Span, text_sha256

LABELS = ("ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION")
TEXT = "Hamas said talks stalled."  # spaCy tokens: Hamas | said | talks | stalled | .
NLP = blank_pipeline("en")


def span(start: int, end: int, label: str, text: str = TEXT) -> Span:
    return Span.from_offsets(text, start, end, label)


HAMAS = span(0, 5, "ACTOR")
HAMAS_SAID = span(0, 10, "ACTOR")
TALKS = span(11, 16, "ACTOR")
ATTRIBUTION = span(0, 10, "ATTRIBUTION")

_ids = iter(range(1, 10**6))


def pulled(annotator: str, *spans: Span, doc_id: str = "doc", text: str = TEXT, **fields) -> PulledAnnotation:
    fields.setdefault("task_id", 1)
    return PulledAnnotation(
        annotation_id=next(_ids),
        doc_id=doc_id,
        annotator=annotator,
        spans=spans,
        text_sha256=text_sha256(text),
        **fields,
    )


def report(*annotations: PulledAnnotation, texts: dict | None = None):
    return agreement(annotations, texts or {"doc": TEXT}, LABELS, NLP)


# --- hand-computed cases ------------------------------------------------------------------------


def test_identical_annotations_agree_fully():
    result = report(pulled("alice", HAMAS, ATTRIBUTION), pulled("bob", HAMAS, ATTRIBUTION))
    (pair,) = result.pairs
    assert (pair.first, pair.second, pair.doc_ids) == ("alice", "bob", ("doc",))
    assert pair.strict_overall == SpanCounts(2, 2, 2)
    assert pair.strict_overall.f1 == pair.partial_overall.f1 == 1.0
    assert pair.kappa["ACTOR"] == pair.kappa["ATTRIBUTION"] == 1.0
    assert result.alpha["ACTOR"] == result.alpha["ATTRIBUTION"] == 1.0
    assert result.disagreements == ()


def test_disjoint_annotations_agree_not_at_all():
    (pair,) = report(pulled("alice", HAMAS), pulled("bob", TALKS)).pairs
    assert pair.strict["ACTOR"].f1 == pair.partial["ACTOR"].f1 == 0.0
    # tokens: alice 1 0 0 0 0, bob 0 0 1 0 0: p_o = 0.6, p_e = 0.2*0.2 + 0.8*0.8 = 0.68
    assert pair.kappa["ACTOR"] == pytest.approx((0.6 - 0.68) / (1 - 0.68))


def test_one_boundary_off_is_a_strict_miss_but_a_partial_match():
    result = report(pulled("alice", HAMAS), pulled("bob", HAMAS_SAID))
    (pair,) = result.pairs
    assert pair.strict["ACTOR"] == SpanCounts(0, 1, 1)
    assert pair.partial["ACTOR"] == SpanCounts(1, 1, 1)
    assert pair.strict["ACTOR"].f1 == 0.0 < pair.partial["ACTOR"].f1 == 1.0
    # tokens: alice 1 0 0 0 0, bob 1 1 0 0 0: p_o = 0.8, p_e = 0.2*0.4 + 0.8*0.6 = 0.56
    assert pair.kappa["ACTOR"] == pytest.approx((0.8 - 0.56) / (1 - 0.56))
    # nominal alpha, 10 values: o_11 = 2, o_10 = o_01 = 1, o_00 = 6; n_1 = 3, n_0 = 7
    assert result.alpha["ACTOR"] == pytest.approx(1 - 9 * 2 / (2 * 3 * 7))
    (disagreement,) = result.disagreements
    assert (disagreement.kind, disagreement.first_span, disagreement.second_span) == ("boundary", HAMAS, HAMAS_SAID)
    assert disagreement.context == "»Hamas said« talks stalled."


def test_labels_nobody_used_are_undefined_not_perfect():
    (pair,) = report(pulled("alice", HAMAS), pulled("bob", HAMAS)).pairs
    assert pair.strict["FIGURE"] == SpanCounts(0, 0, 0)
    assert pair.strict["FIGURE"].f1 is None and pair.kappa["FIGURE"] is None
    assert pair.mean_kappa == 1.0


def test_precision_is_measured_on_the_second_annotator_recall_on_the_first():
    (pair,) = report(pulled("alice", HAMAS, TALKS), pulled("bob", HAMAS)).pairs
    assert pair.strict["ACTOR"] == SpanCounts(matched=1, first=2, second=1)
    assert (pair.strict["ACTOR"].precision, pair.strict["ACTOR"].recall) == (1.0, 0.5)
    assert pair.strict["ACTOR"].f1 == pytest.approx(2 / 3)


def test_an_annotator_against_itself_is_one():
    spans = {"doc": [HAMAS, TALKS, ATTRIBUTION]}
    strict, partial = span_agreement(spans, spans, LABELS)
    assert all(strict[label].f1 == partial[label].f1 == 1.0 for label in ("ACTOR", "ATTRIBUTION"))
    assert cohen_kappa([1, 0, 1, 1], [1, 0, 1, 1]) == 1.0


def test_nested_actor_inside_attribution_is_not_a_conflict():
    result = report(pulled("alice", HAMAS, ATTRIBUTION), pulled("bob", ATTRIBUTION))
    (pair,) = result.pairs
    assert pair.strict["ATTRIBUTION"].f1 == 1.0 and pair.kappa["ATTRIBUTION"] == 1.0
    (disagreement,) = result.disagreements
    assert (disagreement.kind, disagreement.first_span, disagreement.second_span) == ("only_first", HAMAS, None)
    assert "only alice" in disagreement.describe()


def test_same_stretch_with_another_label_is_a_label_disagreement():
    result = report(pulled("alice", HAMAS), pulled("bob", span(0, 5, "DEMAND")))
    (disagreement,) = result.disagreements
    assert disagreement.kind == "label"
    assert (disagreement.first_span.label, disagreement.second_span.label) == ("ACTOR", "DEMAND")


def test_partial_matching_is_one_to_one():
    long_span = span(0, 16, "ACTOR")
    pairs = match_spans([long_span], [HAMAS, TALKS])
    assert len(pairs) == 1
    strict, partial = span_agreement({"doc": [long_span]}, {"doc": [HAMAS, TALKS]}, LABELS)
    assert partial["ACTOR"] == SpanCounts(1, 1, 2)


def test_matching_prefers_identical_spans_then_larger_overlap():
    assert match_spans([HAMAS], [HAMAS_SAID, HAMAS]) == [(HAMAS, HAMAS)]
    assert match_spans([HAMAS_SAID], [span(0, 2, "ACTOR"), HAMAS]) == [(HAMAS_SAID, HAMAS)]


def test_cancelled_annotations_are_left_out_and_latest_annotation_counts():
    result = report(
        pulled("alice", HAMAS),
        pulled("bob", TALKS, updated_at="2026-01-01T00:00:00Z"),
        pulled("bob", HAMAS, updated_at="2026-02-01T00:00:00Z"),
        pulled("carol", was_cancelled=True),
    )
    assert result.annotators == ("alice", "bob")
    assert (result.cancelled, result.superseded) == (1, 1)
    assert result.pairs[0].strict_overall.f1 == 1.0


def test_three_annotators_give_three_pairs_and_one_alpha():
    result = report(pulled("carol", HAMAS), pulled("alice", HAMAS), pulled("bob", HAMAS_SAID))
    assert [(p.first, p.second) for p in result.pairs] == [("alice", "bob"), ("alice", "carol"), ("bob", "carol")]
    assert result.pairs[1].strict_overall.f1 == 1.0
    assert 0 < result.alpha["ACTOR"] < 1


def test_articles_with_one_annotator_do_not_count():
    texts = {"doc": TEXT, "other": TEXT}
    result = report(pulled("alice", HAMAS), pulled("bob", HAMAS), pulled("alice", TALKS, doc_id="other"), texts=texts)
    assert result.shared_docs == 1 and result.pairs[0].doc_ids == ("doc",)
    assert result.tokens == 5


def test_order_of_annotations_does_not_matter():
    annotations = [
        pulled("alice", HAMAS, ATTRIBUTION),
        pulled("bob", HAMAS_SAID, TALKS),
        pulled("carol", TALKS, span(17, 24, "DEMAND")),
    ]
    expected = report(*annotations).to_dict()
    shuffled = annotations[:]
    random.Random(7).shuffle(shuffled)
    assert report(*shuffled).to_dict() == expected
    assert report(*reversed(annotations)).to_dict() == expected


def test_json_has_the_documented_keys():
    data = report(pulled("alice", HAMAS), pulled("bob", HAMAS_SAID)).to_dict()
    assert set(data) >= {"schema_version", "summary", "krippendorff_alpha", "pairs", "disagreements"}
    assert data["summary"] == {
        "strict_f1_mean": 0.0,
        "partial_f1_mean": 1.0,
        "cohen_kappa_mean": 0.5455,
        "krippendorff_alpha_mean": 0.5714,
    }
    assert data["pairs"][0]["strict"]["per_label"]["ACTOR"] == {
        "matched": 0,
        "first": 1,
        "second": 1,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }


def test_every_json_key_is_documented():
    documented = (Path(__file__).resolve().parents[1] / "docs" / "agreement.md").read_text(encoding="utf-8")
    data = report(pulled("alice", HAMAS), pulled("bob", HAMAS_SAID)).to_dict()
    keys = set(data) | set(data["summary"]) | set(data["pairs"][0]) | set(data["disagreements"][0])
    assert {key for key in keys if f'"{key}"' not in documented} == set()


def test_context_is_one_line_with_ellipses():
    text = "a" * 50 + "\nHamas\n" + "b" * 50
    assert context(text, 51, 56) == "…" + "a" * 39 + " »Hamas« " + "b" * 39 + "…"


def test_group_by_doc_keeps_task_ids():
    grouped = group_by_doc([pulled("alice", task_id=3), pulled("bob", task_id=9), pulled("bob", task_id=9)])
    assert grouped.docs["doc"].task_ids == (3, 9) and grouped.superseded == 1


# --- checking pulled annotations against the articles --------------------------------------------


def test_pulled_texts_returns_the_article_texts():
    assert pulled_texts([pulled("alice", HAMAS)], [Article("doc", TEXT)], LABELS) == {"doc": TEXT}


def test_changed_article_is_refused():
    annotation = pulled("alice", HAMAS)
    with pytest.raises(AgreementError) as caught:
        pulled_texts([annotation], [Article("doc", TEXT + " Edited.")], LABELS, "pulled.jsonl")
    assert str(caught.value).startswith(
        f"pulled.jsonl: task 1, annotation {annotation.annotation_id} by alice: article 'doc' has changed since "
        "it was annotated (text_sha256 "
    )


@pytest.mark.parametrize(
    ("bad_span", "reason"),
    [
        (Span(0, 5, "ACTOR", "Hamaz"), "[0:5] ACTOR 'Hamaz': text at these offsets is 'Hamas'"),
        (Span(20, 40, "ACTOR", "x"), "[20:40] ACTOR 'x': offsets outside the text (0..25)"),
        (span(0, 5, "PERSON"), "[0:5] PERSON 'Hamas': label not in the schema (ACTOR, DEMAND, FIGURE, ATTRIBUTION)"),
    ],
)
def test_bad_spans_are_refused_with_their_place(bad_span, reason):
    annotation = pulled("alice", bad_span)
    with pytest.raises(AgreementError, match="^task 1, annotation") as caught:
        pulled_texts([annotation], [Article("doc", TEXT)], LABELS)
    assert str(caught.value).endswith(reason)


def test_missing_article_is_refused():
    with pytest.raises(AgreementError, match="no article with id 'doc' among the articles given"):
        pulled_texts([pulled("alice")], [Article("other", TEXT)], LABELS)


def test_cancelled_annotations_are_not_checked():
    assert pulled_texts([pulled("alice", span(0, 5, "PERSON"), was_cancelled=True)], [], LABELS) == {}


# --- properties over awkward text ---------------------------------------------------------------

AWKWARD = "Hamas “said” — talks’ حماس قالت 😀👍🏽 é n\u0303 10% –\n "


@st.composite
def annotated_pair(draw):
    text = draw(st.text(alphabet=AWKWARD, min_size=1, max_size=40))

    def spans():
        offsets = st.tuples(st.integers(0, len(text) - 1), st.integers(1, len(text)), st.sampled_from(LABELS))
        found = draw(st.lists(offsets, max_size=6))
        return tuple(sorted({span(s, e, label, text) for s, e, label in found if s < e}))

    return text, spans(), spans()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(annotated_pair())
def test_scores_are_symmetric_and_self_agreement_is_one(case):
    text, first, second = case
    forward = report(pulled("alice", *first, text=text), pulled("bob", *second, text=text), texts={"doc": text})
    backward = report(pulled("bob", *first, text=text), pulled("alice", *second, text=text), texts={"doc": text})
    (ab,), (ba,) = forward.pairs, backward.pairs
    for label in LABELS:
        for kind in ("strict", "partial"):
            there, back = getattr(ab, kind)[label], getattr(ba, kind)[label]
            assert (there.f1, there.precision, there.recall) == (back.f1, back.recall, back.precision)
        assert ab.strict[label].matched <= ab.partial[label].matched
        assert ab.kappa[label] == pytest.approx(ba.kappa[label])
        assert forward.alpha[label] == pytest.approx(backward.alpha[label])
    assert len(forward.disagreements) == len(backward.disagreements)

    itself = report(pulled("alice", *first, text=text), pulled("bob", *first, text=text), texts={"doc": text})
    (pair,) = itself.pairs
    used = {s.label for s in first}
    for label in LABELS:
        expected = 1.0 if label in used else None
        assert pair.strict[label].f1 == pair.partial[label].f1 == expected
        assert pair.kappa[label] in (1.0, None)
        assert itself.alpha[label] in (1.0, None)
    assert itself.disagreements == ()


@settings(max_examples=60, deadline=None)
@given(annotated_pair())
def test_token_membership_is_any_shared_character(case):
    text, spans, _ = case
    tokens = [token for token in NLP.make_doc(text) if not token.is_space]
    edges = token_edges(NLP, text)
    assert edges.tolist() == [[token.idx, token.idx + len(token)] for token in tokens]
    for label in LABELS:
        expected = [
            int(any(s.label == label and s.start < token.idx + len(token) and token.idx < s.end for s in spans))
            for token in tokens
        ]
        assert token_membership(edges, len(text), spans, label).tolist() == expected
