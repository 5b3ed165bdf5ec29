"""Candidate spans for ``spancat``: what span_finder proposes plus stretches around generic cue words.

With four training articles span_finder rarely proposes a long span it has not seen (a DEMAND
span, an ATTRIBUTION with its source), and spancat can only label what it is offered. So the
suggester also offers, wherever a generic cue word occurs, the stretches a span of that kind
could cover: around a number word (FIGURE), ending or starting at a speech verb (ATTRIBUTION),
after a demand, condition or refusal word (DEMAND). The cue lists are ordinary English, not
strings from the gold; they only *propose* candidates — spancat, trained on the fold's
articles, decides which candidate is a span and of which label (see docs/training.md).

Registered with spaCy's registry (``annotate.cue_suggester.v1``, also as an entry point), so a
saved pipeline loads with plain ``spacy.load`` once this package is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import spacy
from spacy.attrs import LIKE_NUM, LOWER, ORTH
from spacy.language import Language
from spacy.strings import get_string_id
from spacy.tokens import Doc
from thinc.api import Ops, get_current_ops
from thinc.types import Ragged

SUGGESTER = "annotate.cue_suggester.v1"
OVERLAP_FILTER = "annotate_best_per_label"

# Ordinary English cue words, lower-cased token forms (blank pipelines have no lemmatizer).
NUMBER_WORDS = frozenset(
    [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "fifteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "hundreds",
        "thousand",
        "thousands",
        "million",
        "millions",
        "billion",
        "dozen",
        "dozens",
        "half",
        "tens",
        "scores",
        "several",
    ]
)
SPEECH_WORDS = frozenset(
    [
        "said",
        "say",
        "says",
        "saying",
        "told",
        "tell",
        "tells",
        "telling",
        "reported",
        "report",
        "reports",
        "reporting",
        "reportedly",
        "added",
        "add",
        "adds",
        "adding",
        "stated",
        "state",
        "states",
        "noted",
        "note",
        "notes",
        "noting",
        "announced",
        "announce",
        "announces",
        "confirmed",
        "confirm",
        "confirms",
        "wrote",
        "write",
        "writes",
        "accused",
        "accuse",
        "accuses",
        "warned",
        "warn",
        "warns",
        "stressed",
        "stress",
        "clarified",
        "asserted",
        "assert",
        "cautioned",
        "declared",
        "declaring",
        "declare",
        "according",
        "quoted",
        "quoting",
        "cited",
        "informed",
        "explained",
        "insisted",
        "argued",
        "claimed",
    ]
)
DEMAND_WORDS = frozenset(
    [
        "demand",
        "demands",
        "demanded",
        "demanding",
        "want",
        "wants",
        "wanted",
        "seek",
        "seeks",
        "seeking",
        "insist",
        "insists",
        "insisted",
        "insisting",
        "insistence",
        "call",
        "calls",
        "called",
        "calling",
        "for",
        "urge",
        "urges",
        "urged",
        "press",
        "pressed",
        "push",
        "pushing",
        "request",
        "requested",
        "requests",
        "need",
        "needs",
        "refuse",
        "refuses",
        "refused",
        "refusing",
        "reject",
        "rejects",
        "rejected",
        "rejecting",
        "rejection",
        "withdrawal",
        "until",
        "unless",
        "without",
        "only",
        "must",
        "priority",
        "not",
    ]
)
_STOPS = frozenset({".", "?", "!", ";"})
_COORDINATORS = frozenset({",", "and", "or", "—", "–"})
_QUOTES = frozenset({"“", '"', "‘", "'"})
_LEAD_INS = _QUOTES | {"on", "to", "for", "that", "than"}
# The rest of the guide's D1 cues (used with ``demand_parts``): "desire to", "after", "anything less than",
# "on condition that", "What matters to us is", negations ("don't want").
GUIDE_DEMAND_WORDS = frozenset({"desire", "after", "than", "condition", "matters", "n't", "do", "can"})


def _clause_limits(doc: Doc, orth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every token, the first token of its sentence-like unit and the end of it (cut at ., ?, !, ; and line breaks).

    A unit's end is the index of the token that closes it (itself never part of a candidate), or
    the doc's length after the last one.
    """
    size = len(doc)
    forms, where = np.unique(orth, return_inverse=True)
    strings = doc.vocab.strings
    closes = np.array([strings[int(form)] in _STOPS or "\n" in strings[int(form)] for form in forms], dtype=bool)
    stops = np.flatnonzero(closes[where.reshape(-1)])
    after = np.searchsorted(stops, np.arange(size), side="left")  # the first stop at or after each token
    high = np.append(stops, size)[after]
    low = np.insert(stops + 1, 0, 0)[after]  # just after the stop before it
    return low, high


@lru_cache(maxsize=8)
def _word_ids(words: frozenset[str]) -> np.ndarray:
    """The string ids (spaCy's hashes, what ``doc.to_array(LOWER)`` holds) of a word list."""
    return np.array(sorted(get_string_id(word) for word in words), dtype="uint64")


def _pairs(cues: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(start, end) rows for every cue, every start and every end (``starts``/``ends``: per cue, a row each)."""
    grid_starts = np.broadcast_to(starts[:, :, None], (len(cues), starts.shape[1], ends.shape[1]))
    grid_ends = np.broadcast_to(ends[:, None, :], grid_starts.shape)
    return np.stack([grid_starts.ravel(), grid_ends.ravel()], axis=1)


def cue_bounds(
    doc: Doc,
    *,
    number_window: int = 3,
    speech_before: int = 12,
    speech_after: int = 8,
    demand_length: int = 30,
    demand_parts: bool = False,
    ngram_sizes: Sequence[int] = (),
) -> np.ndarray:
    """Token (start, end) stretches offered around cue words in one doc, plus all n-grams of the given sizes.

    Never across a clause end (., ?, !, ; or a line break). A number: itself with up to
    ``number_window`` tokens before and up to ``number_window - 1`` after. A speech word: every
    stretch from up to ``speech_before`` tokens before it to 1-4 tokens from it, and from it up to
    ``speech_after`` tokens. A demand word: from it, or the token after it, up to ``demand_length``
    tokens. Rows sorted by (start, end), each once; computed on arrays, as the suggester runs on
    every doc the model sees.
    """
    size = len(doc)
    if size == 0:
        return np.zeros((0, 2), dtype="int64")
    orth, lower, like_num = doc.to_array([ORTH, LOWER, LIKE_NUM]).T
    low, high = _clause_limits(doc, orth)
    numeric = (like_num != 0) | np.isin(lower, _word_ids(NUMBER_WORDS))
    opens = high > np.arange(size)  # a speech or demand cue that closes its clause starts nothing
    speech = np.isin(lower, _word_ids(SPEECH_WORDS)) & opens
    demand_words = DEMAND_WORDS | GUIDE_DEMAND_WORDS if demand_parts else DEMAND_WORDS
    demand = np.isin(lower, _word_ids(demand_words)) & opens
    found = [np.zeros((0, 2), dtype="int64")]
    for n in ngram_sizes:
        begin = np.arange(max(0, size - n + 1))
        found.append(np.stack([begin, begin + n], axis=1))
    cues = np.flatnonzero(numeric)[:, None]
    if len(cues):
        lo, hi = low[cues], high[cues]
        found.append(
            _pairs(
                cues,
                np.maximum(lo, cues - np.arange(number_window + 1)),
                np.minimum(hi, cues + np.arange(1, number_window + 1)),
            )
        )
    cues = np.flatnonzero(speech)[:, None]
    if len(cues):
        lo, hi = low[cues], high[cues]
        starts = np.maximum(lo, cues - np.arange(speech_before + 1))  # a clipped start repeats a kept one
        found.append(_pairs(cues, starts, np.minimum(hi, cues + np.arange(1, 5))))
        found.append(_pairs(cues, cues, np.minimum(hi, cues + np.arange(1, speech_after + 1))))
    for i in np.flatnonzero(demand).tolist():
        hi = int(high[i])
        starts = {i, i + 1}
        if demand_parts:
            # the guide's D2: the span starts after "insists on", "priority to", an opening quote ...
            if i + 1 < hi and doc[i + 1].lower_ in _LEAD_INS:
                starts.add(i + 2)
            # ... and each part of a list after the cue is a span ("release the prisoners" after "to halt ...,")
            for k in range(i + 1, min(hi, i + 1 + demand_length)):
                if doc[k].lower_ in _COORDINATORS:
                    starts.add(k + 1)
                    if k + 1 < hi and doc[k + 1].lower_ in _QUOTES:
                        starts.add(k + 2)
        begin = np.array(sorted(starts))[:, None]
        found.append(_pairs(begin, begin, np.minimum(hi, begin + np.arange(1, demand_length + 1))))
    rows = np.concatenate(found).astype("int64")
    rows = rows[rows[:, 0] < rows[:, 1]]
    return _unique_rows(rows, size)


def _unique_rows(rows: np.ndarray, size: int) -> np.ndarray:
    """Each (start, end) once, sorted by start, then end."""
    codes = np.unique(rows[:, 0] * (size + 1) + rows[:, 1])
    return np.stack([codes // (size + 1), codes % (size + 1)], axis=1)


def cue_candidates(doc: Doc, **options) -> set[tuple[int, int]]:
    """:func:`cue_bounds` as a set of (start, end) pairs."""
    return {(int(start), int(end)) for start, end in cue_bounds(doc, **options)}


@spacy.registry.misc(SUGGESTER)
def build_cue_suggester(
    spans_key: str | None = "sc",
    number_window: int = 3,
    speech_before: int = 12,
    speech_after: int = 8,
    demand_length: int = 30,
    demand_parts: bool = False,
    ngram_sizes: list[int] | None = None,
):
    """The suggester: the spans already in ``doc.spans[spans_key]`` (span_finder's) plus the cue candidates."""

    def suggest(docs: Iterable[Doc], *, ops: Ops | None = None) -> Ragged:
        ops = ops or get_current_ops()
        rows: list[np.ndarray] = []
        lengths: list[int] = []
        for doc in docs:
            found = cue_bounds(
                doc,
                number_window=number_window,
                speech_before=speech_before,
                speech_after=speech_after,
                demand_length=demand_length,
                demand_parts=demand_parts,
                ngram_sizes=ngram_sizes or (),
            )
            if spans_key is not None and spans_key in doc.spans and len(doc.spans[spans_key]):
                proposed = np.array([(span.start, span.end) for span in doc.spans[spans_key]], dtype="int64")
                found = _unique_rows(np.concatenate([found, proposed]), len(doc))
            rows.append(found)
            lengths.append(len(found))
        if sum(lengths):
            return Ragged(ops.asarray2i(np.concatenate(rows).astype("int32")), ops.asarray1i(lengths))
        return Ragged(ops.xp.zeros((0, 2), dtype="i"), ops.asarray1i(lengths))

    return suggest


@Language.factory(OVERLAP_FILTER, default_config={"spans_key": "sc", "thresholds": {}})
def make_best_per_label(nlp: Language, name: str, spans_key: str, thresholds: dict[str, float]):
    """After spancat: per label, the highest-scoring spans that do not overlap (the guide's G4).

    ``thresholds`` (label → lowest score kept) lets each label have its own cut; labels not
    named keep everything spancat's own ``threshold`` let through.
    """
    return BestPerLabel(spans_key, thresholds)


class BestPerLabel:
    def __init__(self, spans_key: str, thresholds: dict[str, float] | None = None) -> None:
        self.spans_key = spans_key
        self.thresholds = dict(thresholds or {})

    def __call__(self, doc: Doc) -> Doc:
        group = doc.spans.get(self.spans_key)
        if not group:
            return doc
        scores = group.attrs.get("scores")
        scored = list(zip(group, scores if scores is not None else [1.0] * len(group), strict=False))
        scored.sort(key=lambda pair: (-float(pair[1]), pair[0].start, pair[0].end))
        taken: dict[str, list[tuple[int, int]]] = {}
        kept = []
        for span, score in scored:
            if float(score) < self.thresholds.get(span.label_, 0.0):
                continue
            spots = taken.setdefault(span.label_, [])
            if any(span.start < end and start < span.end for start, end in spots):
                continue
            spots.append((span.start, span.end))
            kept.append((span, float(score)))
        kept.sort(key=lambda pair: (pair[0].start, pair[0].end, pair[0].label_))
        doc.spans[self.spans_key] = [span for span, _ in kept]
        doc.spans[self.spans_key].attrs["scores"] = [score for _, score in kept]
        return doc
