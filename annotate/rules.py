"""The rule component: spaCy ``SpanRuler`` patterns kept in a data file (``guidelines/patterns.jsonl``).

With five articles, rules carry much of the signal for FIGURE and ATTRIBUTION. The same patterns
run alone (the baseline every model must beat) or after the trained ``spancat``. Combined, rules
come first: a model span is kept unless a rule span of the same label overlaps it (the rules are
the more precise of the two on the cross-validated gold, see docs/training.md). Patterns are
data: edit the JSONL, no retraining needed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Span as SpacySpan
from spacy.util import filter_spans

from annotate.convert import SPAN_KEY
from annotate.corpus import jsonl_records
from annotate.errors import InputError
from annotate.records import AnnotatedDoc

RULER_NAME = "rules"
RULES_KEY = "rules"
MERGE_NAME = "annotate_merge_rules"
FILTER_NAME = "annotate.longest_match_per_label.v1"
_SKIP = re.compile(r"/skip(\d+)$")  # a pattern id ending "/skipN": the first N tokens only locate the span


def load_patterns(path: str | Path, labels: Iterable[str] | None = None) -> list[dict]:
    """Read SpanRuler patterns (one JSON object per line); each names a known label."""
    path = Path(path)
    known = set(labels) if labels is not None else None
    patterns = []
    for where, pattern in jsonl_records(path, "patterns file"):
        if "label" not in pattern or not isinstance(pattern.get("pattern"), (str, list)):
            raise InputError(f"{where}: a pattern needs 'label' and 'pattern' (a string or a list of token patterns)")
        if known is not None and pattern["label"] not in known:
            raise InputError(f"{where}: label {pattern['label']!r} is not in the schema ({', '.join(known)})")
        patterns.append(pattern)
    if not patterns:
        raise InputError(f"{path}: no patterns")
    return patterns


@spacy.registry.misc(FILTER_NAME)
def make_longest_match_per_label():
    """A SpanRuler filter: per label, the longest non-overlapping matches; spans already there stay.

    Patterns with optional tokens match several nested stretches; only the longest is a span.
    Labels are filtered separately so an ACTOR inside an ATTRIBUTION survives. A pattern whose id
    ends in ``/skipN`` matches a cue plus the span; its first N tokens are dropped.
    """

    def longest_per_label(existing: Iterable[SpacySpan], matches: Iterable[SpacySpan]) -> list[SpacySpan]:
        by_label: dict[str, list[SpacySpan]] = defaultdict(list)
        for match in matches:
            skip = _SKIP.search(match.id_)
            if skip:  # the cue is matched but not part of the span ("demanding" in "demanding a halt")
                if len(match) <= int(skip.group(1)):
                    continue
                match = SpacySpan(match.doc, match.start + int(skip.group(1)), match.end, match.label_)
            by_label[match.label_].append(match)
        present = {(span.start, span.end, span.label_) for span in existing}
        kept = [span for spans in by_label.values() for span in filter_spans(spans)]
        return sorted(
            (span for span in kept if (span.start, span.end, span.label_) not in present),
            key=lambda span: (span.start, span.end, span.label_),
        )

    return longest_per_label


@Language.component(MERGE_NAME)
def merge_rules(doc):
    """Rule spans first into ``doc.spans["sc"]``; a model span stays unless a same-label rule span overlaps it."""
    rule_spans = list(doc.spans.get(RULES_KEY, []))
    model_spans = [
        span
        for span in doc.spans.get(SPAN_KEY, [])
        if not any(rule.label == span.label and rule.start < span.end and span.start < rule.end for rule in rule_spans)
    ]
    doc.spans[SPAN_KEY] = sorted(rule_spans + model_spans, key=lambda span: (span.start, span.end, span.label_))
    return doc


def add_rules(nlp: Language, patterns: list[dict]) -> Language:
    """Append the rule component to ``nlp`` (a SpanRuler writing ``doc.spans["rules"]``, then the merge)."""
    ruler = nlp.add_pipe(
        "span_ruler",
        name=RULER_NAME,
        last=True,
        config={
            "spans_key": RULES_KEY,
            "overwrite": True,
            "validate": True,
            "spans_filter": {"@misc": FILTER_NAME},
        },
    )
    try:
        ruler.add_patterns(patterns)
    except ValueError as exc:
        raise InputError(f"patterns: {str(exc).splitlines()[0]}") from None
    nlp.add_pipe(MERGE_NAME, last=True)
    return nlp


def rule_pipeline(patterns: list[dict], lang: str = "en") -> Language:
    """The baseline: a blank pipeline with only the rule component."""
    return add_rules(spacy.blank(lang), patterns)


def memorized_patterns(docs: Sequence[AnnotatedDoc]) -> list[dict]:
    """Every labeled string of these articles as a phrase pattern of its label (exact text, once each).

    The honest rules baseline of cross-validation: built per fold from the fold's training
    articles only, so unlike the hand-written patterns it knows nothing of the held-out article.
    """
    seen = sorted({(span.label, span.text) for doc in docs for span in doc.spans if span.text.strip()})
    return [{"label": label, "pattern": text, "id": "memorized"} for label, text in seen]


def memorized_pipeline(docs: Sequence[AnnotatedDoc], lang: str = "en") -> Language:
    """The rule component with :func:`memorized_patterns` of ``docs``: per label the longest match, as the rules."""
    return rule_pipeline(memorized_patterns(docs), lang)
