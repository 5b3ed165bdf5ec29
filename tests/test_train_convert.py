"""Gold → spaCy conversion (round trip over awkward text, the audit, --strict) and the rule component."""

from __future__ import annotations

import pytest
import spacy
from conftest import awkward_text
from hypothesis import given
from hypothesis import strategies as st
from spacy.tokens import DocBin

from annotate.convert import SPAN_KEY, docbin_bytes, to_spacy_docs
from annotate.corpus import write_gold
from annotate.docbin import convert
from annotate.errors import ConversionError, InputError, TargetError
from annotate.model import spans_of, with_predictions
from annotate.records import AnnotatedDoc, Span
from annotate.rules import add_rules, load_patterns, rule_pipeline

NLP = spacy.blank("en")
LABELS = ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]


@st.composite
def token_aligned_gold(draw):
    """Awkward text with spans that start and end on spaCy token edges (whitespace tokens excluded)."""
    text = draw(awkward_text)
    tokens = [t for t in NLP.make_doc(text) if not t.is_space]
    spans = set()
    if tokens:
        for _ in range(draw(st.integers(0, 6))):
            first = draw(st.integers(0, len(tokens) - 1))
            last = draw(st.integers(first, min(first + 5, len(tokens) - 1)))
            start, end = tokens[first].idx, tokens[last].idx + len(tokens[last])
            spans.add(Span.from_offsets(text, start, end, draw(st.sampled_from(LABELS))))
    return AnnotatedDoc("article", text, tuple(spans))


@given(token_aligned_gold())
def test_gold_spans_survive_spacy_docs_and_docbin_exactly(gold):
    docs, audit = to_spacy_docs(NLP, [gold], strict=True)
    assert audit == []
    assert spans_of(docs[0]) == gold.spans
    restored = list(DocBin().from_bytes(docbin_bytes(docs)).get_docs(NLP.vocab))
    assert restored[0].text == gold.text
    assert restored[0].user_data["id"] == "article"
    assert spans_of(restored[0]) == gold.spans
    assert with_predictions(gold, restored[0], "test").spans == gold.spans


TEXT = "Hamas said “no deal” — خليل الحية agreed."


def test_span_off_token_boundaries_is_expanded_and_listed():
    inside = Span.from_offsets(TEXT, 1, 5, "ACTOR")  # "amas"
    docs, audit = to_spacy_docs(NLP, [AnnotatedDoc("a1", TEXT, (inside,))])
    assert [entry.action for entry in audit] == ["expanded"]
    assert audit[0].result == Span.from_offsets(TEXT, 0, 5, "ACTOR")
    assert str(audit[0]) == "a1: [1:5] ACTOR 'amas': edges not on token boundaries; expanded to [0:5] ACTOR 'Hamas'"
    assert spans_of(docs[0]) == (audit[0].result,)


def test_contract_mode_drops_a_span_with_no_whole_token():
    inside = Span.from_offsets(TEXT, 1, 4, "ACTOR")
    docs, audit = to_spacy_docs(NLP, [AnnotatedDoc("a1", TEXT, (inside,))], alignment="contract")
    assert [entry.action for entry in audit] == ["dropped"]
    assert spans_of(docs[0]) == ()


def test_strict_conversion_names_article_and_span():
    inside = Span.from_offsets(TEXT, 1, 5, "ACTOR")
    with pytest.raises(ConversionError, match=r"article a1: span \[1:5\] ACTOR 'amas' does not fall on spaCy token"):
        to_spacy_docs(NLP, [AnnotatedDoc("a1", TEXT, (inside,))], strict=True)


def test_overlapping_gold_spans_are_all_kept():
    outer = Span.from_offsets(TEXT, 0, 10, "ATTRIBUTION")
    inner = Span.from_offsets(TEXT, 0, 5, "ACTOR")
    docs, _ = to_spacy_docs(NLP, [AnnotatedDoc("a1", TEXT, (outer, inner))])
    assert len(docs[0].spans[SPAN_KEY]) == 2


@pytest.fixture(scope="module")
def patterns(project_root):
    return load_patterns(project_root / "guidelines" / "patterns.jsonl", LABELS)


def test_rules_alone_find_figures_and_attributions_with_nested_actors(patterns):
    text = "Hamas said more than 57,000 Palestinians have been killed, according to the health ministry."
    found = {(s.label, s.text) for s in spans_of(rule_pipeline(patterns)(text))}
    assert ("FIGURE", "more than 57,000 Palestinians") in found
    assert ("ATTRIBUTION", "Hamas said") in found
    assert ("ACTOR", "Hamas") in found
    assert ("ATTRIBUTION", "according to the health ministry") in found
    assert ("FIGURE", "57,000 Palestinians") not in found  # only the longest match per label


def test_demand_rules_leave_the_cue_out(patterns):
    text = "Hamas is demanding a full halt to aggression. Talks go on."
    found = {(s.label, s.text) for s in spans_of(rule_pipeline(patterns)(text))}
    assert ("DEMAND", "a full halt to aggression") in found
    assert not any(label == "DEMAND" and "demanding" in span for label, span in found)


def test_rules_add_to_what_the_pipeline_already_found(patterns):
    @spacy.Language.component("test_fixed_span")
    def fixed_span(doc):
        doc.spans[SPAN_KEY] = [doc.char_span(0, 5, "DEMAND")]
        return doc

    nlp = spacy.blank("en")
    nlp.add_pipe("test_fixed_span")
    add_rules(nlp, patterns)
    found = {(s.label, s.text) for s in spans_of(nlp("Hamas said no."))}
    assert found == {("DEMAND", "Hamas"), ("ACTOR", "Hamas"), ("ATTRIBUTION", "Hamas said")}


def test_combined_rules_replace_an_overlapping_model_span_of_the_same_label(patterns):
    @spacy.Language.component("test_short_figure")
    def short_figure(doc):
        doc.spans[SPAN_KEY] = [doc.char_span(11, 17, "FIGURE"), doc.char_span(0, 5, "ACTOR")]  # "57,000", "Hamas"
        return doc

    nlp = spacy.blank("en")
    nlp.add_pipe("test_short_figure")
    add_rules(nlp, patterns)
    found = {(s.label, s.text) for s in spans_of(nlp("Hamas lost 57,000 people."))}
    assert found == {("ACTOR", "Hamas"), ("FIGURE", "57,000 people")}


def test_patterns_with_unknown_labels_are_refused(tmp_path):
    path = tmp_path / "patterns.jsonl"
    path.write_text('{"label": "PLACE", "pattern": "Gaza"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"patterns.jsonl:1: label 'PLACE' is not in the schema"):
        load_patterns(path, LABELS)


def test_convert_writes_a_docbin_of_the_gold_and_lists_moved_spans(tmp_path, schema):
    gold = tmp_path / "gold.jsonl"
    outer, inside = Span.from_offsets(TEXT, 0, 10, "ATTRIBUTION"), Span.from_offsets(TEXT, 1, 5, "ACTOR")
    write_gold(gold, [AnnotatedDoc("a1", TEXT, (outer, inside)), AnnotatedDoc("a2", "Talks stalled.")])
    done = convert(gold, tmp_path / "corpus" / "train.spacy", schema=schema)
    assert (done.articles, done.spans) == (2, 2)
    assert [str(entry) for entry in done.audit] == [
        "a1: [1:5] ACTOR 'amas': edges not on token boundaries; expanded to [0:5] ACTOR 'Hamas'"
    ]
    restored = list(DocBin().from_bytes(done.out.read_bytes()).get_docs(NLP.vocab))
    assert [doc.user_data["id"] for doc in restored] == ["a1", "a2"]
    assert spans_of(restored[0]) == (Span.from_offsets(TEXT, 0, 5, "ACTOR"), outer)


def test_convert_strict_or_onto_a_foreign_file_writes_nothing(tmp_path, schema):
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, [AnnotatedDoc("a1", TEXT, (Span.from_offsets(TEXT, 1, 5, "ACTOR"),))])
    with pytest.raises(ConversionError, match="article a1"):
        convert(gold, tmp_path / "train.spacy", schema=schema, strict=True)
    assert not (tmp_path / "train.spacy").exists()
    (tmp_path / "notes.spacy").write_text("mine", encoding="utf-8")
    with pytest.raises(TargetError):
        convert(gold, tmp_path / "notes.spacy", schema=schema)
    assert (tmp_path / "notes.spacy").read_text(encoding="utf-8") == "mine"
