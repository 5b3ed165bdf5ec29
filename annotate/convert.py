"""Conversions between our records and spaCy Docs, through spaCy's own alignment.

Spans become ``doc.spans[SPAN_KEY]`` via :meth:`spacy.tokens.Doc.char_span`; a span whose edges
do not fall on token boundaries is reported, never silently moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from annotate.records import AnnotatedDoc, Span

SPAN_KEY = "sc"


def blank_pipeline(lang: str = "en") -> Language:
    """The tokenizer every conversion uses: a blank spaCy pipeline (no downloaded model)."""
    return spacy.blank(lang)


@dataclass(frozen=True)
class Misalignment:
    """A span whose edges are not token edges, and what spaCy's expand/contract modes would make of it."""

    doc_id: str
    span: Span
    expanded: Span | None
    contracted: Span | None


def misaligned_spans(nlp: Language, docs: Iterable[AnnotatedDoc]) -> list[Misalignment]:
    """Every span that ``Doc.char_span(..., alignment_mode="strict")`` cannot place on tokens."""
    found = []
    for annotated in docs:
        doc = nlp.make_doc(annotated.text)
        for span in annotated.spans:
            if doc.char_span(span.start, span.end, label=span.label) is None:
                found.append(
                    Misalignment(
                        annotated.id,
                        span,
                        _aligned(doc, span, "expand"),
                        _aligned(doc, span, "contract"),
                    )
                )
    return found


def _aligned(doc: Doc, span: Span, mode: str) -> Span | None:
    aligned = doc.char_span(span.start, span.end, label=span.label, alignment_mode=mode)
    if aligned is None or aligned.start_char == aligned.end_char:
        return None
    return Span.from_offsets(doc.text, aligned.start_char, aligned.end_char, span.label)
