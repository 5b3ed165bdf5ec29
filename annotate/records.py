"""Plain records that every layer passes around: articles, spans, annotated documents, problems.

Offsets are Python code-point offsets into the exact article text; ``end`` is exclusive.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

# The longest article text any command takes: the gold readers' tokenizer and every predictor allow this
# many characters (spaCy's own guard, E088, stops at 1,000,000), and the article readers refuse longer.
MAX_TEXT_CHARS = 100_000_000

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str:
    """Why an article text cannot be labelled or predicted ("" when it can): a lone surrogate, or over the limit.

    The one rule the article readers and the predictor share, so push, serve and apply answer alike.
    """
    if len(text) > MAX_TEXT_CHARS:
        return f"text of {len(text):,} characters is over the limit of {MAX_TEXT_CHARS:,}"
    found = _LONE_SURROGATE.search(text)
    if found:
        return f"text holds a lone surrogate {found.group()!r} (not valid Unicode)"
    return ""


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


@dataclass(frozen=True)
class PulledAnnotation:
    """One annotator's annotation of one Label Studio task, as kept by ``annotate pull``.

    Every annotation is kept (several per task, per annotator); cancelled ones have no spans.
    Gold is derived from these by a policy; agreement is computed between them.
    """

    task_id: int
    annotation_id: int
    doc_id: str
    annotator: str
    spans: tuple[Span, ...] = ()
    ground_truth: bool = False
    was_cancelled: bool = False
    created_at: str = ""
    updated_at: str = ""
    text_sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", tuple(sorted(self.spans)))

    def to_dict(self) -> dict:
        return {
            "task_id": self.task_id,
            "annotation_id": self.annotation_id,
            "doc_id": self.doc_id,
            "annotator": self.annotator,
            "ground_truth": self.ground_truth,
            "was_cancelled": self.was_cancelled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "text_sha256": self.text_sha256,
            "spans": [span.to_dict() for span in self.spans],
        }

    @classmethod
    def from_dict(cls, data: dict) -> PulledAnnotation:
        return cls(
            task_id=int(data["task_id"]),
            annotation_id=int(data["annotation_id"]),
            doc_id=str(data["doc_id"]),
            annotator=str(data["annotator"]),
            spans=tuple(Span.from_dict(span) for span in data.get("spans", [])),
            ground_truth=bool(data.get("ground_truth", False)),
            was_cancelled=bool(data.get("was_cancelled", False)),
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
            text_sha256=str(data.get("text_sha256", "")),
        )
