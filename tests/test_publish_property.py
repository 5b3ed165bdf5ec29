"""Property: both published views give back exactly the gold spans, over awkward text.

Texts are built from curly quotes, dashes, Arabic names, emoji, combining marks and odd
whitespace; spans are any runs of tokens (overlapping freely, within and across labels).
"""

from __future__ import annotations

import os

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.convert import blank_pipeline
from annotate.labels import load_schema
from annotate.records import AnnotatedDoc, Span
from annotate.settings import load_settings

SCHEMA = load_schema(load_settings().schema)
NLP = blank_pipeline("en")

PIECES = [
    "Hamas",
    "said",
    "“talks”",
    "‘no’",
    "—",
    "–",
    "60-day",
    "57,000",
    "عبد الله",
    "محمود عباس",
    "😀",
    "🇵🇸",
    "Cafe\u0301",
    "n\u0303o",
    "Netanyahu’s",
    "U.S.",
    "(AP)",
    "…",
    "e\u0301\u0301",
]
SEPARATORS = [" ", " ", " ", "", "\n", "\n\n", "  ", "\t", " \u00a0"]


@st.composite
def annotated_docs(draw) -> AnnotatedDoc:
    parts = draw(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), min_size=1, max_size=25))
    text = "".join(piece + separator for piece, separator in parts).strip() or "Hamas"
    tokens = [token for token in NLP.make_doc(text) if not token.is_space]
    chosen = draw(
        st.lists(
            st.tuples(st.integers(0, len(tokens) - 1), st.integers(0, 3), st.sampled_from(SCHEMA.names)),
            max_size=12,
        )
    )
    spans = set()
    for first, extra, label in chosen:
        last = min(first + extra, len(tokens) - 1)
        start, end = tokens[first].idx, tokens[last].idx + len(tokens[last])
        candidate = Span.from_offsets(text, start, end, label)
        if candidate.text == candidate.text.strip():
            spans.add(candidate)
    return AnnotatedDoc(draw(st.sampled_from(["x", "y-1", "z_2"])), text, tuple(spans), "alice", "test")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(annotated_docs(), min_size=1, max_size=3, unique_by=lambda doc: doc.id))
def test_both_views_round_trip_exactly(docs):
    from annotate.publish import build_views, plan_splits, spans_from_spans_row, spans_from_tokens_row

    plan = plan_splits((doc.id for doc in docs), seed=7)
    by_id = {doc.id: doc for doc in docs}
    for include_text in (True, False):
        views = build_views(docs, SCHEMA, NLP, plan, include_text=include_text)
        for view, decode in (("spans", spans_from_spans_row), ("tokens", spans_from_tokens_row)):
            seen = []
            for dataset in views[view].values():
                for row in dataset:
                    seen.append(row["id"])
                    doc = by_id[row["id"]]
                    assert decode(row, dataset.features, doc.text) == list(doc.spans)
                    assert row["text_sha256"] == doc.text_sha256
            assert sorted(seen) == sorted(by_id)


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=60, unique=True), st.integers(0, 2**32))
def test_splits_and_folds_are_deterministic_and_cover_each_article_once(doc_ids, seed):
    from annotate.publish import MIN_ARTICLES_FOR_TRAIN_SPLITS, plan_splits

    plan = plan_splits(doc_ids, seed)
    assert plan == plan_splits(reversed(doc_ids), seed)
    in_splits = [doc_id for ids in plan.splits.values() for doc_id in ids]
    assert sorted(in_splits) == sorted(doc_ids)
    if len(doc_ids) < MIN_ARTICLES_FOR_TRAIN_SPLITS:
        assert list(plan.splits) == ["test"]
    else:
        assert list(plan.splits) == ["train", "validation", "test"] and all(plan.splits.values())
    if len(doc_ids) > 1:
        assert sorted(doc_id for fold in plan.folds for doc_id in fold) == sorted(doc_ids)
        for index, fold in enumerate(plan.folds):
            assert sorted(fold + plan.fold_train(index)) == sorted(doc_ids)
