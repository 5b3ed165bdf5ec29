"""Label Studio JSON ↔ records without a server: offsets, validation, UTF-16 repair, policies, diff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotate import lsformat
from annotate.records import AnnotatedDoc, PulledAnnotation, Span
from tests.conftest import awkward_text

LABELS = st.sampled_from(["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"])


@st.composite
def text_and_span(draw):
    text = draw(awkward_text)
    start = draw(st.integers(0, len(text) - 1))
    end = draw(st.integers(start + 1, len(text)))
    return text, Span.from_offsets(text, start, end, draw(LABELS))


@given(text_and_span())
def test_span_round_trips_through_a_label_studio_region(schema, case):
    text, span = case
    reading = lsformat.read_result(text, lsformat.span_result(span), schema)
    assert reading.reason == ""
    assert reading.spans == (span,)
    assert reading.repaired == ()


@given(text_and_span())
def test_utf16_offsets_are_repaired_to_the_same_span(schema, case):
    text, span = case
    start16, end16 = lsformat.utf16_offset(text, span.start), lsformat.utf16_offset(text, span.end)
    result = lsformat.span_result(span)
    result["value"]["start"], result["value"]["end"] = start16, end16
    reading = lsformat.read_result(text, result, schema)
    assert reading.reason == ""
    if (start16, end16) == (span.start, span.end):
        assert reading.spans == (span,) and reading.repaired == ()
    elif end16 <= len(text) and text[start16:end16] == span.text:
        # The same text also sits at the code-point reading: that reading wins, as the web UI writes code points.
        assert reading.spans == (Span(start16, end16, span.label, span.text),) and reading.repaired == ()
    else:
        assert reading.spans == (span,) and reading.repaired == (span,)


@given(awkward_text, st.data())
def test_utf16_and_code_point_offsets_invert(text, data):
    offset = data.draw(st.integers(0, len(text)))
    assert lsformat.codepoint_offset(text, lsformat.utf16_offset(text, offset)) == offset
    assert lsformat.utf16_offset(text, len(text)) == len(text.encode("utf-16-le")) // 2


def test_emoji_before_a_span_shifts_utf16_offsets():
    text = "Hi 😀 Hamas said"
    assert text[5:10] == "Hamas"
    assert (lsformat.utf16_offset(text, 5), lsformat.utf16_offset(text, 10)) == (6, 11)
    assert lsformat.codepoint_offset(text, 4) is None  # inside the surrogate pair


def test_a_region_that_fits_neither_reading_is_rejected(schema):
    text = "Talks 😀 resume. Hamas said"
    result = lsformat.span_result(Span(16, 21, "ACTOR", "Israel"))
    reading = lsformat.read_result(text, result, schema)
    assert reading.spans == ()
    assert reading.reason == "text at these offsets is 'Hamas', not 'Israel' (nor read as UTF-16 units)"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"start": 0, "end": 5, "text": "Hamas", "labels": ["PERSON"]}, "label PERSON is not in the schema"),
        ({"start": 0, "end": 5, "text": "Hamas", "labels": []}, "region has no label"),
        ({"start": "0", "end": 5, "text": "Hamas", "labels": ["ACTOR"]}, "offsets are not integers"),
        ({"start": 0, "end": 5, "labels": ["ACTOR"]}, "no text to check its offsets against"),
        ({"start": 3, "end": 99, "text": "Hamas", "labels": ["ACTOR"]}, "offsets outside the text"),
    ],
)
def test_bad_regions_say_why(schema, value, reason):
    result = {"from_name": "label", "to_name": "text", "type": "labels", "value": value}
    assert reason in lsformat.read_result("Hamas said", result, schema).reason


def _task(task_id, doc_id, text, annotations, drafts=()):
    return {
        "id": task_id,
        "data": {"text": text, "doc_id": doc_id, "text_sha256": lsformat.text_sha256(text)},
        "annotations": annotations,
        "drafts": list(drafts),
        "predictions": [],
    }


def _annotation(annotation_id, user, spans, *, updated, ground_truth=False, cancelled=False):
    return {
        "id": annotation_id,
        "completed_by": user,
        "result": [lsformat.span_result(span) for span in spans],
        "was_cancelled": cancelled,
        "ground_truth": ground_truth,
        "created_at": updated,
        "updated_at": updated,
    }


def test_export_keeps_every_annotation_and_counts_cancelled_and_drafts(schema):
    text = "Hamas said Israel"
    hamas, israel = Span.from_offsets(text, 0, 5, "ACTOR"), Span.from_offsets(text, 11, 17, "ACTOR")
    tasks = [
        _task(
            1,
            "a",
            text,
            [
                _annotation(10, 1, [hamas], updated="2026-01-01T10:00:00Z", ground_truth=True),
                _annotation(11, 2, [hamas, israel], updated="2026-01-02T10:00:00Z"),
            ],
        ),
        _task(2, "b", text, [_annotation(12, 2, [], updated="2026-01-03T10:00:00Z", cancelled=True)], drafts=[{}]),
        _task(3, "c", text, []),
    ]
    reading = lsformat.read_export(tasks, schema, {1: "ann@x.org", 2: "bob@x.org"})
    assert reading.problems == []
    assert (reading.tasks, reading.cancelled, reading.drafts, reading.tasks_unannotated) == (3, 1, 1, 1)
    assert dict(reading.per_annotator) == {"ann@x.org": 1, "bob@x.org": 2}
    by_policy = {
        policy: lsformat.gold_from_pulled(reading.annotations, reading.texts, policy, "P")
        for policy in lsformat.POLICIES
    }
    assert [(d.id, d.spans, d.annotator) for d in by_policy["ground-truth-then-latest"]] == [
        ("a", (hamas,), "ann@x.org")
    ]
    assert [(d.id, d.spans, d.annotator) for d in by_policy["latest"]] == [("a", (hamas, israel), "bob@x.org")]
    assert [d.id for d in by_policy["ground-truth-only"]] == ["a"]


def test_export_problems_name_task_annotation_and_annotator(schema):
    text = "Hamas said"
    bad = {"from_name": "label", "to_name": "text", "type": "labels"}
    bad["value"] = {"start": 0, "end": 5, "text": "Hamas", "labels": ["PERSON"]}
    annotation = _annotation(7, 3, [], updated="2026-01-01T00:00:00Z")
    annotation["result"] = [bad]
    tasks = [_task(4, "doc", text, [annotation]), {"id": 5, "data": {"text": "x"}, "annotations": []}]
    edited = _task(6, "other", text, [])
    edited["data"]["text"] = "Hamas said it"
    reading = lsformat.read_export([*tasks, edited], schema, {3: "eve@x.org"})
    messages = [str(problem) for problem in reading.problems]
    assert messages[0] == (
        "task 4 annotation 7 (eve@x.org): doc: [0:5] PERSON 'Hamas': label PERSON is not in the schema "
        "(ACTOR, DEMAND, FIGURE, ATTRIBUTION)"
    )
    assert messages[1].startswith("task 5: task has no data.doc_id")
    assert messages[2] == "task 6: other: task text was edited in Label Studio (text_sha256 differs)"


def test_same_doc_in_two_tasks_is_a_problem(schema):
    reading = lsformat.read_export([_task(1, "a", "x y", []), _task(2, "a", "x y", [])], schema)
    assert [str(p) for p in reading.problems] == ["task 2: a: doc_id also in task 1"]


def test_diff_counts_added_removed_changed_per_label():
    text = "Hamas and Israel said 40 people"
    old = AnnotatedDoc(
        "a",
        text,
        (
            Span.from_offsets(text, 0, 5, "ACTOR"),
            Span.from_offsets(text, 10, 16, "ACTOR"),
            Span.from_offsets(text, 22, 24, "FIGURE"),
        ),
    )
    new = AnnotatedDoc(
        "a",
        text,
        (Span.from_offsets(text, 0, 5, "ACTOR"), Span.from_offsets(text, 22, 31, "FIGURE")),
    )
    diff = lsformat.diff_gold([old, AnnotatedDoc("gone", "x")], [new, AnnotatedDoc("new", "y")])
    assert (diff.docs_added, diff.docs_removed) == (["new"], ["gone"])
    assert dict(diff.unchanged) == {"ACTOR": 1}
    assert dict(diff.removed) == {"ACTOR": 1}
    assert dict(diff.changed) == {"FIGURE": 1}
    assert not diff.added
    assert lsformat.diff_gold([new], [new]).is_empty


def test_pulled_annotations_record_hash_of_text(schema):
    text = "Zoë said"
    reading = lsformat.read_export(
        [_task(1, "z", text, [_annotation(1, 1, [Span.from_offsets(text, 0, 3, "ACTOR")], updated="")])], schema
    )
    (pulled,) = reading.annotations
    assert isinstance(pulled, PulledAnnotation)
    assert pulled.text_sha256 == lsformat.text_sha256(text)
    assert pulled.annotator == "user 1"


def test_task_payload_carries_doc_id_and_hash():
    from annotate.records import Article

    article = Article("id1", "Text 😀", {"source_file": "id1.txt"})
    payload = lsformat.task_payload(article)
    assert payload["data"] == {"text": "Text 😀", "doc_id": "id1", "text_sha256": article.text_sha256}
    assert payload["meta"] == {"source_file": "id1.txt"}


TEXT = "Hamas and Israel said 40 people were killed in Gaza"
SPANS = st.builds(
    lambda start, length, label: Span.from_offsets(TEXT, start, min(start + length, len(TEXT)), label),
    st.integers(0, len(TEXT) - 2),
    st.integers(1, 12),
    LABELS,
)
DOCS = st.dictionaries(st.sampled_from("abcde"), st.lists(SPANS, max_size=5, unique=True), max_size=5)


@given(DOCS, DOCS)
def test_diff_accounts_for_every_span_on_both_sides(old, new):
    """Each old span is unchanged, changed or removed; each new one unchanged, changed or added."""
    diff = lsformat.diff_gold(
        [AnnotatedDoc(doc_id, TEXT, tuple(spans)) for doc_id, spans in old.items()],
        [AnnotatedDoc(doc_id, TEXT, tuple(spans)) for doc_id, spans in new.items()],
    )
    for label in ("ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"):
        before = sum(span.label == label for spans in old.values() for span in spans)
        after = sum(span.label == label for spans in new.values() for span in spans)
        assert diff.unchanged[label] + diff.changed[label] + diff.removed[label] == before
        assert diff.unchanged[label] + diff.changed[label] + diff.added[label] == after
    assert diff.docs_added == sorted(set(new) - set(old)) and diff.docs_removed == sorted(set(old) - set(new))


def test_parse_export_reads_the_bytes_and_leaves_the_garbage_collector_as_it_was(schema):
    import gc
    import json

    raw = json.dumps([{"id": 1, "data": {"doc_id": "a", "text": "Hamas said"}, "annotations": []}]).encode()
    assert gc.isenabled()
    assert lsformat.parse_export(raw, schema).texts == {"a": "Hamas said"}
    assert gc.isenabled()
    gc.disable()
    try:
        assert lsformat.parse_export(b'{"not": "a list"}', schema) is None
        assert lsformat.parse_export(b"<html>", schema) is None
        assert lsformat.parse_export(b"[" * 100_000, schema) is None
        assert not gc.isenabled()
    finally:
        gc.enable()
