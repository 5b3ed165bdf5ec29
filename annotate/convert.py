"""Conversions between our records and spaCy Docs, through spaCy's own alignment.

Spans become ``doc.spans[SPAN_KEY]`` via :meth:`spacy.tokens.Doc.char_span`; a span whose edges
do not fall on token boundaries is reported, never silently moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from annotate.errors import ConversionError
from annotate.records import MAX_TEXT_CHARS, AnnotatedDoc, Span

SPAN_KEY = "sc"


def is_docbin(path: Path) -> bool:
    """Whether ``path`` holds a spaCy DocBin (what ``annotate convert`` writes), so it may be replaced."""
    DocBin().from_bytes(Path(path).read_bytes())
    return True


def blank_pipeline(lang: str = "en") -> Language:
    """The tokenizer every conversion uses: a blank spaCy pipeline (no downloaded model).

    Tokenizing is linear in the text, so the 1,000,000-character guard spaCy keeps for parsers
    (its error E088) is lifted here; an unknown language code (E048) is our one-line error.
    """
    try:
        nlp = spacy.blank(lang)
    except (ImportError, ValueError, TypeError):
        raise ConversionError(f"language {lang!r} is not one spaCy knows (set lang in [tool.annotate])") from None
    nlp.max_length = max(nlp.max_length, MAX_TEXT_CHARS)
    return nlp


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


@dataclass(frozen=True)
class AuditEntry:
    """One gold span that does not sit on token boundaries, and what the conversion did with it."""

    doc_id: str
    span: Span
    action: str  # "expanded", "contracted" or "dropped"
    result: Span | None

    def __str__(self) -> str:
        outcome = f" to {self.result.describe()}" if self.result is not None else ""
        return f"{self.doc_id}: {self.span.describe()}: edges not on token boundaries; {self.action}{outcome}"


def to_spacy_docs(
    nlp: Language, docs: Iterable[AnnotatedDoc], *, strict: bool = False, alignment: str = "expand"
) -> tuple[list[Doc], list[AuditEntry]]:
    """Gold → spaCy Docs with every span in ``doc.spans[SPAN_KEY]`` (overlaps kept) and the audit.

    A span off token boundaries is placed by spaCy's ``alignment`` mode ("expand" or "contract")
    and listed in the audit; if that leaves nothing it is dropped (and listed). With ``strict``
    any such span is an error instead. ``doc.user_data["id"]`` keeps the article id.
    """
    if alignment not in {"expand", "contract"}:
        raise ConversionError(f"alignment must be 'expand' or 'contract', not {alignment!r}")
    converted, audit = [], []
    for annotated in docs:
        doc = nlp.make_doc(annotated.text)
        doc.user_data["id"] = annotated.id
        spans, seen = [], set()
        for span in annotated.spans:
            placed = doc.char_span(span.start, span.end, label=span.label)
            if placed is None:
                if strict:
                    raise ConversionError(
                        f"article {annotated.id}: span {span.describe()} does not fall on spaCy token boundaries "
                        f"(--strict); fix the span or convert without --strict to {alignment} it"
                    )
                placed = doc.char_span(span.start, span.end, label=span.label, alignment_mode=alignment)
                if placed is None or len(placed) == 0:
                    audit.append(AuditEntry(annotated.id, span, "dropped", None))
                    continue
                result = Span.from_offsets(doc.text, placed.start_char, placed.end_char, span.label)
                audit.append(AuditEntry(annotated.id, span, f"{alignment}ed", result))
            key = (placed.start, placed.end, span.label)
            if key not in seen:
                seen.add(key)
                spans.append(placed)
        doc.spans[SPAN_KEY] = spans
        converted.append(doc)
    return converted, audit


def docbin_bytes(docs: Iterable[Doc]) -> bytes:
    """A spaCy ``DocBin`` of these Docs (what ``spacy train`` reads as ``--paths.train``)."""
    return DocBin(docs=docs, store_user_data=True).to_bytes()
