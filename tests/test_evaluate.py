"""Evaluation: our strict figures equal spaCy's scorer, our exact/partial/type equal nervaluate's,
hand-computed small cases, bootstrap intervals, confusions and the error list."""

from __future__ import annotations

import math

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from nervaluate import Evaluator
from spacy.scorer import Scorer
from spacy.training import Example

from annotate.errors import EvaluationError
from annotate.evaluate import MACRO, MICRO, count_matches, evaluate, label_confusion, score_counts, strict_errors
from annotate.records import AnnotatedDoc, Span

LABELS = ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]
TEXT = "Hamas said on Wednesday that Israel must end the war , and more than 57,000 Palestinians were killed"
NLP = spacy.blank("en")
TOKENS = NLP.make_doc(TEXT)


def _span(first: int, last: int, label: str) -> Span:
    """Tokens first..last-1 of TEXT as a span (token-aligned, so spaCy can score it too)."""
    start, end = TOKENS[first].idx, TOKENS[last - 1].idx + len(TOKENS[last - 1])
    return Span.from_offsets(TEXT, start, end, label)


token_spans = st.builds(
    lambda first, length, label: _span(first, min(first + length, len(TOKENS)), label),
    st.integers(0, len(TOKENS) - 1),
    st.integers(1, 12),
    st.sampled_from(LABELS),
)
articles = st.lists(
    st.tuples(st.sets(token_spans, max_size=8), st.sets(token_spans, max_size=8)), min_size=1, max_size=4
)


def _docs(pairs):
    gold = [AnnotatedDoc(f"a{number}", TEXT, tuple(g)) for number, (g, _) in enumerate(pairs)]
    predicted = [AnnotatedDoc(f"a{number}", TEXT, tuple(p)) for number, (_, p) in enumerate(pairs)]
    return gold, predicted


def _spacy_scores(gold, predicted):
    examples = []
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        reference, prediction = NLP.make_doc(TEXT), NLP.make_doc(TEXT)
        reference.spans["sc"] = [reference.char_span(s.start, s.end, s.label) for s in gold_doc.spans]
        prediction.spans["sc"] = [prediction.char_span(s.start, s.end, s.label) for s in pred_doc.spans]
        examples.append(Example(prediction, reference))
    return Scorer.score_spans(examples, "spans_sc", getter=lambda doc, _: doc.spans["sc"], allow_overlap=True)


@given(articles)
def test_strict_scores_equal_spacy_scorer(pairs):
    gold, predicted = _docs(pairs)
    ours = score_counts(count_matches(gold, predicted, LABELS), LABELS, bootstrap=0)["strict"]
    theirs = _spacy_scores(gold, predicted)
    if theirs["spans_sc_p"] is None:  # spaCy gives None when there was nothing to score
        assert ours[MICRO].support == 0 and ours[MICRO].predicted == 0
        return
    assert ours[MICRO].precision == pytest.approx(theirs["spans_sc_p"], abs=1e-9)
    assert ours[MICRO].recall == pytest.approx(theirs["spans_sc_r"], abs=1e-9)
    assert ours[MICRO].f1 == pytest.approx(theirs["spans_sc_f"], abs=1e-9)
    for label, per_type in theirs["spans_sc_per_type"].items():
        assert ours[label].precision == pytest.approx(per_type["p"], abs=1e-9)
        assert ours[label].recall == pytest.approx(per_type["r"], abs=1e-9)
        assert ours[label].f1 == pytest.approx(per_type["f"], abs=1e-9)


def _entities(docs):
    # nervaluate's end is inclusive; ours is exclusive. Same order as ours (sorted spans).
    return [[{"label": s.label, "start": s.start, "end": s.end - 1} for s in doc.spans] for doc in docs]


# any character offsets, long spans included: nervaluate's 1% overlap threshold then matters
char_spans = st.builds(
    lambda start, length, label: Span(start, start + length, label, ""),
    st.integers(0, 300),
    st.integers(1, 250),
    st.sampled_from(LABELS),
)
char_articles = st.lists(
    st.tuples(st.sets(char_spans, max_size=8), st.sets(char_spans, max_size=8)), min_size=1, max_size=4
)


@settings(max_examples=300)  # crowded clusters take four different code paths; cover them all
@given(char_articles)
def test_exact_partial_type_equal_nervaluate(pairs):
    text = "x" * 600
    gold = [AnnotatedDoc(f"a{n}", text, tuple(g)) for n, (g, _) in enumerate(pairs)]
    predicted = [AnnotatedDoc(f"a{n}", text, tuple(p)) for n, (_, p) in enumerate(pairs)]
    ours = score_counts(count_matches(gold, predicted, LABELS), LABELS, bootstrap=0)
    results = Evaluator(_entities(gold), _entities(predicted), tags=LABELS, loader="dict").evaluate()
    for schema, theirs_name in (("exact", "exact"), ("partial", "partial"), ("type", "ent_type")):
        theirs = results["overall"][theirs_name]
        for metric in ("precision", "recall", "f1"):
            assert getattr(ours[schema][MICRO], metric) == pytest.approx(getattr(theirs, metric), abs=1e-9), schema
        for label, per_schema in results["entities"].items():
            for metric in ("precision", "recall", "f1"):
                expected = getattr(per_schema[theirs_name], metric)
                assert getattr(ours[schema][label], metric) == pytest.approx(expected, abs=1e-9), (schema, label)


def _one(gold_spans, pred_spans):
    gold = [AnnotatedDoc("a", TEXT, tuple(gold_spans))]
    predicted = [AnnotatedDoc("a", TEXT, tuple(pred_spans))]
    return evaluate(gold, predicted, LABELS, bootstrap=0)


ACTOR = _span(0, 1, "ACTOR")  # Hamas
ATTRIBUTION = _span(0, 2, "ATTRIBUTION")  # Hamas said
DEMAND = _span(6, 10, "DEMAND")  # must end the war
FIGURE = _span(12, 16, "FIGURE")  # more than 57,000 Palestinians


def test_empty_prediction_scores_zero_with_full_support():
    result = _one([ACTOR, DEMAND], [])
    for schema in ("strict", "exact", "partial", "type"):
        micro = result.scores[schema][MICRO]
        assert (micro.precision, micro.recall, micro.f1, micro.support, micro.predicted) == (0.0, 0.0, 0.0, 2, 0)
    assert [e.kind for e in result.errors] == ["false negative", "false negative"]


def test_empty_gold_makes_every_prediction_spurious():
    result = _one([], [FIGURE])
    micro = result.scores["strict"][MICRO]
    assert (micro.precision, micro.recall, micro.support, micro.predicted) == (0.0, 0.0, 0, 1)
    assert result.counts["partial"][MICRO]["spurious"] == 1
    assert result.scores["strict"][MACRO].f1 == 0.0


def test_all_correct_is_one_everywhere():
    spans = [ACTOR, ATTRIBUTION, DEMAND, FIGURE]
    result = _one(spans, spans)
    for schema in ("strict", "exact", "partial", "type"):
        for name in [*LABELS, MICRO, MACRO]:
            score = result.scores[schema][name]
            assert (score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0), (schema, name)
    assert result.errors == []


def test_nested_spans_are_scored_separately():
    # gold: ACTOR inside ATTRIBUTION; prediction finds only the inner ACTOR
    result = _one([ACTOR, ATTRIBUTION], [ACTOR])
    strict = result.scores["strict"]
    assert (strict[MICRO].precision, strict[MICRO].recall) == (1.0, 0.5)
    assert (strict["ACTOR"].f1, strict["ATTRIBUTION"].recall) == (1.0, 0.0)
    assert result.counts["partial"][MICRO] == {"correct": 1, "incorrect": 0, "partial": 0, "missed": 1, "spurious": 0}


def test_one_boundary_off_is_wrong_strictly_and_half_right_partially():
    off = _span(12, 15, "FIGURE")  # "more than 57,000" without "Palestinians"
    result = _one([FIGURE], [off])
    assert result.scores["strict"][MICRO].f1 == 0.0
    assert result.scores["exact"][MICRO].f1 == 0.0
    assert result.scores["partial"][MICRO].precision == 0.5
    assert result.scores["partial"][MICRO].recall == 0.5
    assert result.scores["type"][MICRO].f1 == 1.0
    assert sorted(e.kind for e in result.errors) == ["false negative", "false positive"]


def test_macro_is_the_mean_over_labels_present():
    # ACTOR right (F1 1), FIGURE missed (F1 0); DEMAND and ATTRIBUTION absent from both sides
    result = _one([ACTOR, FIGURE], [ACTOR])
    assert result.scores["strict"][MACRO].f1 == pytest.approx(0.5)
    assert result.scores["strict"][MACRO].recall == pytest.approx(0.5)


def test_confusion_counts_overlapping_spans_with_other_labels():
    wrong_label = Span(FIGURE.start, FIGURE.end, "ACTOR", FIGURE.text)
    table = label_confusion(
        [AnnotatedDoc("a", TEXT, (ACTOR, FIGURE))], [AnnotatedDoc("a", TEXT, (ACTOR, wrong_label))], LABELS
    )
    assert table["ACTOR"]["ACTOR"] == 1
    assert table["FIGURE"]["ACTOR"] == 1
    assert sum(sum(row.values()) for row in table.values()) == 2


def test_errors_carry_their_context():
    errors = strict_errors([AnnotatedDoc("a", TEXT, (DEMAND,))], [AnnotatedDoc("a", TEXT, ())], LABELS, context=12)
    assert len(errors) == 1
    assert errors[0].left == TEXT[DEMAND.start - 12 : DEMAND.start]
    assert errors[0].right == TEXT[DEMAND.end : DEMAND.end + 12]
    assert errors[0].span == DEMAND


def test_bootstrap_intervals_are_reproducible_and_bracket_the_estimate():
    gold = [AnnotatedDoc(f"a{n}", TEXT, (ACTOR, FIGURE, DEMAND)) for n in range(6)]
    predicted = [AnnotatedDoc(f"a{n}", TEXT, (ACTOR,) if n % 2 else (ACTOR, FIGURE)) for n in range(6)]
    first = evaluate(gold, predicted, LABELS, bootstrap=500, seed=3)
    again = evaluate(gold, predicted, LABELS, bootstrap=500, seed=3)
    micro = first.scores["strict"][MICRO]
    assert micro == again.scores["strict"][MICRO]
    low, high = micro.recall_ci
    assert low <= micro.recall <= high and low < high
    assert not math.isnan(first.scores["strict"][MACRO].f1_ci[0])


def test_predictions_must_cover_the_gold_articles():
    gold = [AnnotatedDoc("a", TEXT, (ACTOR,)), AnnotatedDoc("b", TEXT, ())]
    with pytest.raises(EvaluationError, match="predictions lack 1 gold article"):
        evaluate(gold, [AnnotatedDoc("a", TEXT, ())], LABELS)
    with pytest.raises(EvaluationError, match="label outside"):
        evaluate(gold[:1], [AnnotatedDoc("a", TEXT, (Span(0, 5, "PLACE", "Hamas"),))], LABELS)
    with pytest.raises(EvaluationError, match="different text"):
        evaluate(gold[:1], [AnnotatedDoc("a", TEXT + ".", ())], LABELS)


def test_a_span_listed_twice_counts_once_as_for_spacy():
    twice = (FIGURE, Span(FIGURE.start, FIGURE.end, FIGURE.label, ""))
    result = _one([FIGURE], twice)
    for schema in ("strict", "exact", "partial", "type"):
        assert result.scores[schema][MICRO].predicted == 1
        assert result.scores[schema][MICRO].precision == 1.0


def _confusion_by_definition(gold, predicted):
    """The confusion table straight from its definition, one prediction at a time."""
    table = {g: dict.fromkeys(LABELS, 0) for g in LABELS}
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        for span in set(pred_doc.spans):
            touching = [g for g in gold_doc.spans if g.overlaps(span)]
            if not touching:
                continue
            if any(g.label == span.label for g in touching):
                table[span.label][span.label] += 1
                continue
            most = max(min(g.end, span.end) - max(g.start, span.start) for g in touching)
            first = next(g for g in touching if min(g.end, span.end) - max(g.start, span.start) == most)
            table[first.label][span.label] += 1
    return table


@given(articles)
def test_confusion_table_follows_its_definition(pairs):
    gold, predicted = _docs(pairs)
    assert label_confusion(gold, predicted, LABELS) == _confusion_by_definition(gold, predicted)
