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

import spacy
from spacy.language import Language
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


def _clause_limits(doc: Doc) -> list[tuple[int, int]]:
    """For every token, the stretch of its sentence-like unit (cut at ., ?, !, ; and line breaks)."""
    limits: list[tuple[int, int]] = []
    start = 0
    for token in doc:
        if token.text in _STOPS or "\n" in token.text:
            limits.extend([(start, token.i)] * (token.i - start + 1))
            start = token.i + 1
    limits.extend([(start, len(doc))] * (len(doc) - start))
    return limits


def cue_candidates(
    doc: Doc,
    *,
    number_window: int = 3,
    speech_before: int = 12,
    speech_after: int = 8,
    demand_length: int = 30,
    demand_parts: bool = False,
    ngram_sizes: Sequence[int] = (),
) -> set[tuple[int, int]]:
    """Token (start, end) stretches offered around cue words in one doc, plus all n-grams of the given sizes.

    Never across a clause end (., ?, !, ; or a line break). A number: itself with up to
    ``number_window`` tokens before and up to ``number_window - 1`` after. A speech word: every
    stretch from up to ``speech_before`` tokens before it to 1-4 tokens from it, and from it up to
    ``speech_after`` tokens. A demand word: from it, or the token after it, up to ``demand_length``
    tokens.
    """
    found: set[tuple[int, int]] = set()
    limits = _clause_limits(doc)
    for size in ngram_sizes:
        found.update((i, i + size) for i in range(len(doc) - size + 1))
    for token in doc:
        lower = token.lower_
        low, high = limits[token.i]
        if token.like_num or lower in NUMBER_WORDS:
            for before in range(number_window + 1):
                for after in range(1, number_window + 1):
                    found.add((max(low, token.i - before), min(high, token.i + after)))
        if lower in SPEECH_WORDS:
            for start in range(max(low, token.i - speech_before), token.i + 1):
                for end in range(token.i + 1, min(high, token.i + 4) + 1):
                    found.add((start, end))
            for end in range(token.i + 1, min(high, token.i + speech_after) + 1):
                found.add((token.i, end))
        if lower in DEMAND_WORDS or (demand_parts and lower in GUIDE_DEMAND_WORDS):
            starts = {token.i, token.i + 1}
            if demand_parts:
                # the guide's D2: the span starts after "insists on", "priority to", an opening quote ...
                if token.i + 1 < high and doc[token.i + 1].lower_ in _LEAD_INS:
                    starts.add(token.i + 2)
                # ... and each part of a list after the cue is a span ("release the prisoners" after "to halt ...,")
                for k in range(token.i + 1, min(high, token.i + 1 + demand_length)):
                    if doc[k].lower_ in _COORDINATORS:
                        starts.add(k + 1)
                        if k + 1 < high and doc[k + 1].lower_ in _QUOTES:
                            starts.add(k + 2)
            for start in sorted(starts):
                for end in range(start + 1, min(high, start + demand_length) + 1):
                    found.add((start, end))
    return {(start, end) for start, end in found if start < end}


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
        rows: list[list[int]] = []
        lengths: list[int] = []
        for doc in docs:
            found = cue_candidates(
                doc,
                number_window=number_window,
                speech_before=speech_before,
                speech_after=speech_after,
                demand_length=demand_length,
                demand_parts=demand_parts,
                ngram_sizes=ngram_sizes or (),
            )
            if spans_key is not None and spans_key in doc.spans:
                found.update((span.start, span.end) for span in doc.spans[spans_key])
            ordered = sorted(found)
            rows.extend([start, end] for start, end in ordered)
            lengths.append(len(ordered))
        if rows:
            return Ragged(ops.asarray2i(rows), ops.asarray1i(lengths))
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
