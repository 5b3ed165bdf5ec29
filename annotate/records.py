"""Plain records that every layer passes around: articles, spans, annotated documents, problems.

Offsets are Python code-point offsets into the exact article text; ``end`` is exclusive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def text_sha256(text: str) -> str:
    """The hash recorded wherever an article's text travels, so edited text is detected."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, order=True)
class Span:
    """A labeled stretch of an article: ``text == article_text[start:end]``."""

    start: int
    end: int
    label: str
    text: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "label": self.label, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict) -> Span:
        return cls(int(data["start"]), int(data["end"]), str(data["label"]), str(data["text"]))

    @classmethod
    def from_offsets(cls, text: str, start: int, end: int, label: str) -> Span:
        """A span whose ``text`` is cut from the article, so it cannot disagree with the offsets."""
        return cls(start, end, label, text[start:end])

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    def describe(self) -> str:
        """How problems name a span: offsets, label and text."""
        return f"[{self.start}:{self.end}] {self.label} {self.text!r}"


@dataclass(frozen=True)
class Article:
    """One article as read from seeds: its id is the file stem (or the JSONL ``id``)."""

    id: str
    text: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def text_sha256(self) -> str:
        return text_sha256(self.text)


@dataclass(frozen=True)
class AnnotatedDoc:
    """One line of gold JSONL: an article with its spans, who annotated it and where it came from."""

    id: str
    text: str
    spans: tuple[Span, ...] = ()
    annotator: str = ""
    source: str = ""
    text_sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", tuple(sorted(self.spans)))
        if not self.text_sha256:
            object.__setattr__(self, "text_sha256", text_sha256(self.text))

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "text_sha256": self.text_sha256,
            "spans": [span.to_dict() for span in self.spans],
            "annotator": self.annotator,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict) -> AnnotatedDoc:
        return cls(
            id=str(data["id"]),
            text=data["text"],
            spans=tuple(Span.from_dict(span) for span in data.get("spans", [])),
            annotator=str(data.get("annotator", "")),
            source=str(data.get("source", "")),
            text_sha256=str(data.get("text_sha256", "")),
        )

    def with_spans(self, spans) -> AnnotatedDoc:
        return AnnotatedDoc(self.id, self.text, tuple(spans), self.annotator, self.source, self.text_sha256)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located precisely enough to fix it."""

    where: str
    reason: str
    doc_id: str = ""
    span: Span | None = None

    def __str__(self) -> str:
        parts = [self.where]
        if self.doc_id:
            parts.append(self.doc_id)
        if self.span is not None:
            parts.append(self.span.describe())
        return ": ".join(parts) + f": {self.reason}"
