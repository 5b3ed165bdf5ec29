"""The cue-word suggester, the per-label best-span filter, and a saved pipeline that uses them.

Hand-made docs with known token positions; the saved pipeline is a real tiny model loaded by
plain ``spacy.load`` in a fresh interpreter that never imported annotate itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import spacy
from hypothesis import given
from hypothesis import strategies as st
from spacy.tokens import Span as SpacySpan

from annotate.model import predict
from annotate.nested import with_thresholds
from annotate.suggest import (
    _COORDINATORS,
    _LEAD_INS,
    _QUOTES,
    _STOPS,
    DEMAND_WORDS,
    GUIDE_DEMAND_WORDS,
    NUMBER_WORDS,
    OVERLAP_FILTER,
    SPEECH_WORDS,
    SUGGESTER,
    cue_candidates,
)
from annotate.train import train_pipeline
from tests.conftest import ROOT
from tests.nested_fixture import LABELS, articles, tiny_config

nlp = spacy.blank("en")
# tokens: Officials(0) said(1) 57(2) people(3) died(4) .(5) Hamas(6) demanded(7) a(8) halt(9) .(10)
TEXT = "Officials said 57 people died. Hamas demanded a halt."


def test_cue_candidates_around_numbers_speech_and_demands_stop_at_the_clause():
    doc = nlp.make_doc(TEXT)
    assert [t.text for t in doc][5] == "." and doc[7].text == "demanded"
    found = cue_candidates(doc, number_window=3, speech_before=12, speech_after=8, demand_length=30)
    number = {(start, end) for start in (0, 1, 2) for end in (3, 4, 5)}  # "57", up to 3 tokens before, 2 after
    speech = {(start, end) for start in (0, 1) for end in (2, 3, 4, 5)}  # ending at or after "said", from "said"
    demand = {(7, 8), (7, 9), (7, 10), (8, 9), (8, 10)}  # from "demanded" or just after it, to the full stop
    assert found == number | speech | demand
    assert all(not (start <= 5 < end) and not (start <= 10 < end) for start, end in found), "no stop inside"


def test_cue_candidates_break_at_line_ends_and_add_ngrams():
    doc = nlp.make_doc("Hamas said\n57 dead")
    # tokens: Hamas(0) said(1) \n(2) 57(3) dead(4)
    found = cue_candidates(doc, number_window=2, speech_before=1, speech_after=1, demand_length=5)
    assert found == {(0, 2), (1, 2), (3, 4), (3, 5)}  # "57" and "57 dead", nothing back across the line end
    assert {(i, i + 1) for i in range(5)} <= cue_candidates(doc, ngram_sizes=[1])


def reference_cue_candidates(doc, *, number_window, speech_before, speech_after, demand_length, demand_parts):
    """The cue rules written token by token, as the docstring of ``cue_bounds`` states them: the oracle."""
    limits, start = [], 0
    for token in doc:
        if token.text in _STOPS or "\n" in token.text:
            limits.extend([(start, token.i)] * (token.i - start + 1))
            start = token.i + 1
    limits.extend([(start, len(doc))] * (len(doc) - start))
    found = set()
    for token in doc:
        i, lower = token.i, token.lower_
        low, high = limits[i]
        if token.like_num or lower in NUMBER_WORDS:
            for before in range(number_window + 1):
                for after in range(1, number_window + 1):
                    found.add((max(low, i - before), min(high, i + after)))
        if lower in SPEECH_WORDS:
            for first in range(max(low, i - speech_before), i + 1):
                for end in range(i + 1, min(high, i + 4) + 1):
                    found.add((first, end))
            for end in range(i + 1, min(high, i + speech_after) + 1):
                found.add((i, end))
        if lower in DEMAND_WORDS or (demand_parts and lower in GUIDE_DEMAND_WORDS):
            starts = {i, i + 1}
            if demand_parts:
                if i + 1 < high and doc[i + 1].lower_ in _LEAD_INS:
                    starts.add(i + 2)
                for k in range(i + 1, min(high, i + 1 + demand_length)):
                    if doc[k].lower_ in _COORDINATORS:
                        starts.add(k + 1)
                        if k + 1 < high and doc[k + 1].lower_ in _QUOTES:
                            starts.add(k + 2)
            for first in starts:
                for end in range(first + 1, min(high, first + demand_length) + 1):
                    found.add((first, end))
    return {(first, end) for first, end in found if first < end}


CUE_PIECES = [
    "said",
    "told",
    "57",
    "two",
    "demanded",
    "calls",
    "on",
    "to",
    "and",
    ",",
    "“",
    "Hamas",
    "the",
    ".",
    ";",
    "\n",
    "?",
    "after",
    "than",
    "people",
    "غزة",
    "😀",
    "e\u0301",
    "—",
]


@given(
    words=st.lists(st.sampled_from(CUE_PIECES), max_size=60),
    windows=st.tuples(*(st.integers(0, 6) for _ in range(3)), st.integers(1, 12)),
    demand_parts=st.booleans(),
)
def test_cue_candidates_match_the_rules_written_token_by_token(words, windows, demand_parts):
    """The array implementation gives exactly the stretches the token-by-token rules give."""
    doc = nlp.make_doc(" ".join(words))
    number_window, speech_before, speech_after, demand_length = windows
    options = dict(
        number_window=number_window,
        speech_before=speech_before,
        speech_after=speech_after,
        demand_length=demand_length,
        demand_parts=demand_parts,
    )
    assert cue_candidates(doc, **options) == reference_cue_candidates(doc, **options)


def test_suggester_adds_span_finder_spans_and_keeps_one_row_block_per_doc():
    suggest = spacy.registry.misc.get(SUGGESTER)(spans_key="sc", demand_length=30)
    first, second = nlp.make_doc(TEXT), nlp.make_doc("Nothing here")
    first.spans["sc"] = [SpacySpan(first, 4, 8)]  # what span_finder proposed: across the full stop
    ragged = suggest([first, second])
    lengths = [int(n) for n in ragged.lengths]
    rows = {tuple(int(x) for x in row) for row in ragged.dataXd}
    assert lengths == [len(cue_candidates(first)) + 1, 0]
    assert rows == cue_candidates(first) | {(4, 8)}
    assert ragged.dataXd.shape == (lengths[0], 2)


def test_best_per_label_resolves_overlaps_by_score_per_label_with_its_own_thresholds():
    pipe = spacy.blank("en")
    pipe.add_pipe(OVERLAP_FILTER, config={"thresholds": {"FIGURE": 0.7}})
    doc = pipe.make_doc(TEXT)
    spans = [
        (SpacySpan(doc, 0, 2, "ACTOR"), 0.6),
        (SpacySpan(doc, 0, 1, "ACTOR"), 0.9),  # overlaps the one above, higher: kept, the other dropped
        (SpacySpan(doc, 0, 5, "ATTRIBUTION"), 0.4),  # another label: overlap allowed
        (SpacySpan(doc, 2, 4, "FIGURE"), 0.65),  # under FIGURE's own threshold: dropped
        (SpacySpan(doc, 6, 7, "ACTOR"), 0.3),  # no threshold for ACTOR: kept
    ]
    doc.spans["sc"] = [span for span, _ in spans]
    doc.spans["sc"].attrs["scores"] = [score for _, score in spans]
    doc = pipe.get_pipe(OVERLAP_FILTER)(doc)
    kept = [(span.start, span.end, span.label_) for span in doc.spans["sc"]]
    assert kept == [(0, 1, "ACTOR"), (0, 5, "ATTRIBUTION"), (6, 7, "ACTOR")]
    assert [round(float(score), 2) for score in doc.spans["sc"].attrs["scores"]] == [0.9, 0.4, 0.3]


LOAD = """
import json, sys
import spacy
before = sorted(name for name in sys.modules if name.split(".")[0] == "annotate")
nlp = spacy.load(sys.argv[1])
doc = nlp(sys.argv[2])
print(json.dumps({
    "before": before,
    "pipes": nlp.pipe_names,
    "thresholds": nlp.config["components"]["best_per_label"]["thresholds"],
    "suggester": nlp.config["components"]["spancat"]["suggester"]["@misc"],
    "architecture": nlp.config["components"]["spancat"]["model"]["@architectures"],
    "spans": sorted([s.start_char, s.end_char, s.label_] for s in doc.spans["sc"]),
}))
"""


def test_saved_pipeline_with_suggester_and_filter_loads_with_plain_spacy(project_root, tmp_path):
    docs = articles()
    model = train_pipeline(docs[:2], tiny_config(project_root, tmp_path), LABELS)
    thresholds = {"ACTOR": 0.4, "DEMAND": 0.3, "FIGURE": 0.45, "ATTRIBUTION": 0.5}
    with_thresholds(model, thresholds).to_disk(tmp_path / "model")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path / "model"), docs[2].text],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout)
    assert loaded["before"] == []
    assert loaded["pipes"] == ["tok2vec", "span_finder", "spancat", "best_per_label"]
    assert loaded["thresholds"] == thresholds and loaded["suggester"] == SUGGESTER
    assert loaded["architecture"] == "annotate.SpanCategorizer.v1"  # found by name, through the entry point
    here = predict(model, [docs[2]], "model")[0].spans
    assert loaded["spans"] == sorted([span.start, span.end, span.label] for span in here)
