"""Annotator against annotator: span-level P/R/F1, token-level kappa and alpha, and the disagreements.

Pure: pulled annotations and article texts in, numbers and records out; nothing printed.

Choices, documented in docs/agreement.md:

- Each annotator's latest non-cancelled annotation of an article counts; cancelled (skipped)
  annotations are excluded and counted, earlier annotations by the same annotator are superseded.
- Spans are compared per label, so spans of different labels never interact: an ACTOR nested
  inside an ATTRIBUTION is two agreements, not a conflict.
- Strict matching: same start, end and label. Partial matching: same label and overlapping
  characters, paired one to one (a maximum matching), so one long span cannot match many short ones
  and F1 stays symmetric. The first annotator of a pair is the reference: precision is measured on
  the second annotator's spans, recall on the first's; F1 does not depend on that choice.
- Token level: spans overlap, so there is no single tag per token. Each label is its own binary
  variable (is this token inside a span of this label?) over the spaCy tokens of the article,
  whitespace tokens excluded. Cohen's kappa (scikit-learn) per pair and Krippendorff's alpha
  (the ``krippendorff`` package, nominal) across all annotators are computed per label and averaged
  over the labels where they are defined. A score is undefined (``None``) when nobody varied:
  every token out (or in) for every annotator.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import krippendorff
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import cohen_kappa_score
from spacy.attrs import IDX, IS_SPACE, LENGTH
from spacy.language import Language

from annotate.artifacts import Each, Maybe
from annotate.errors import AgreementError
from annotate.records import Article, PulledAnnotation, Span

CONTEXT_CHARS = 40
JSON_SCHEMA_VERSION = 1


# --- Who annotated what -------------------------------------------------------------------------


@dataclass(frozen=True)
class DocAnnotations:
    """The annotations that count for one article: each annotator's latest non-cancelled one."""

    doc_id: str
    task_ids: tuple[int, ...]
    by_annotator: Mapping[str, PulledAnnotation]

    @property
    def annotators(self) -> tuple[str, ...]:
        return tuple(sorted(self.by_annotator))


@dataclass(frozen=True)
class Grouped:
    """Pulled annotations grouped per article, with what was left out and why."""

    docs: Mapping[str, DocAnnotations]
    cancelled: int
    superseded: int


def _recency(annotation: PulledAnnotation) -> tuple[str, int]:
    return (annotation.updated_at or annotation.created_at, annotation.annotation_id)


def group_by_doc(annotations: Iterable[PulledAnnotation]) -> Grouped:
    """Group by article (``doc_id``), keeping each annotator's latest non-cancelled annotation."""
    cancelled = superseded = 0
    latest: dict[str, dict[str, PulledAnnotation]] = defaultdict(dict)
    task_ids: dict[str, set[int]] = defaultdict(set)
    for annotation in annotations:
        task_ids[annotation.doc_id].add(annotation.task_id)
        if annotation.was_cancelled:
            cancelled += 1
            continue
        earlier = latest[annotation.doc_id].get(annotation.annotator)
        if earlier is not None:
            superseded += 1
            if _recency(earlier) > _recency(annotation):
                continue
        latest[annotation.doc_id][annotation.annotator] = annotation
    docs = {
        doc_id: DocAnnotations(doc_id, tuple(sorted(task_ids[doc_id])), dict(sorted(latest[doc_id].items())))
        for doc_id in sorted(latest)
    }
    return Grouped(docs, cancelled, superseded)


def _where(annotation: PulledAnnotation, source: str) -> str:
    place = f"task {annotation.task_id}, annotation {annotation.annotation_id} by {annotation.annotator}"
    return f"{source}: {place}" if source else place


def pulled_texts(
    annotations: Iterable[PulledAnnotation],
    articles: Iterable[Article],
    labels: Sequence[str],
    source: str = "",
) -> dict[str, str]:
    """The text of every annotated article, after checking that the annotations were made on it.

    Refuses, in one line naming task, annotation and annotator: an article that is missing, an
    article whose text hash differs from the one annotated, a span outside the text or whose text
    differs from the text at its offsets, a label not in ``labels``. Cancelled annotations are skipped.
    """
    by_id = {article.id: article for article in articles}
    texts: dict[str, str] = {}
    for annotation in annotations:
        if annotation.was_cancelled:
            continue
        where = _where(annotation, source)
        article = by_id.get(annotation.doc_id)
        if article is None:
            raise AgreementError(f"{where}: no article with id {annotation.doc_id!r} among the articles given")
        if annotation.text_sha256 and annotation.text_sha256 != article.text_sha256:
            raise AgreementError(
                f"{where}: article {annotation.doc_id!r} has changed since it was annotated "
                f"(text_sha256 {article.text_sha256[:12]}… here, {annotation.text_sha256[:12]}… annotated)"
            )
        for span in annotation.spans:
            if not 0 <= span.start < span.end <= len(article.text):
                raise AgreementError(f"{where}: {span.describe()}: offsets outside the text (0..{len(article.text)})")
            if article.text[span.start : span.end] != span.text:
                actual = article.text[span.start : span.end]
                raise AgreementError(f"{where}: {span.describe()}: text at these offsets is {actual!r}")
            if span.label not in labels:
                raise AgreementError(f"{where}: {span.describe()}: label not in the schema ({', '.join(labels)})")
        texts[annotation.doc_id] = article.text
    return texts


# --- Span level ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanCounts:
    """Matched spans between two annotators, with the first one as reference."""

    matched: int = 0
    first: int = 0
    second: int = 0

    def __add__(self, other: SpanCounts) -> SpanCounts:
        return SpanCounts(self.matched + other.matched, self.first + other.first, self.second + other.second)

    @property
    def precision(self) -> float | None:
        return self.matched / self.second if self.second else None

    @property
    def recall(self) -> float | None:
        return self.matched / self.first if self.first else None

    @property
    def f1(self) -> float | None:
        total = self.first + self.second
        return 2 * self.matched / total if total else None

    def to_dict(self) -> dict:
        return {
            "matched": self.matched,
            "first": self.first,
            "second": self.second,
            "precision": _rounded(self.precision),
            "recall": _rounded(self.recall),
            "f1": _rounded(self.f1),
        }


def match_spans(first: Sequence[Span], second: Sequence[Span]) -> list[tuple[Span, Span]]:
    """Pair spans of the same label that overlap, one to one, as many pairs as possible.

    Among the largest pairings it prefers identical spans, then larger overlaps, so the pairs it
    reports as boundary disagreements are the ones a reader would pair.
    """
    if not first or not second:
        return []
    bonus_scale = 1.0 / (min(len(first), len(second)) + 1)
    weights = np.zeros((len(first), len(second)))
    for row, a in enumerate(first):
        for column, b in enumerate(second):
            if a.label == b.label and a.overlaps(b):
                shared = min(a.end, b.end) - max(a.start, b.start)
                union = max(a.end, b.end) - min(a.start, b.start)
                closeness = 1.0 if (a.start, a.end) == (b.start, b.end) else 0.5 * shared / union
                weights[row, column] = 1.0 + bonus_scale * closeness
    rows, columns = linear_sum_assignment(weights, maximize=True)
    return [(first[r], second[c]) for r, c in zip(rows, columns, strict=True) if weights[r, c] > 0]


def _strict_matched(first: Sequence[Span], second: Sequence[Span]) -> int:
    keys = Counter((s.start, s.end, s.label) for s in first)
    keys &= Counter((s.start, s.end, s.label) for s in second)
    return sum(keys.values())


def span_agreement(
    first: Mapping[str, Sequence[Span]], second: Mapping[str, Sequence[Span]], labels: Sequence[str]
) -> tuple[dict[str, SpanCounts], dict[str, SpanCounts]]:
    """Strict and partial counts per label over the articles both annotators have (keys of both maps)."""
    strict = {label: SpanCounts() for label in labels}
    partial = {label: SpanCounts() for label in labels}
    for doc_id in sorted(set(first) & set(second)):
        for label in labels:
            mine = [s for s in first[doc_id] if s.label == label]
            theirs = [s for s in second[doc_id] if s.label == label]
            strict[label] += SpanCounts(_strict_matched(mine, theirs), len(mine), len(theirs))
            partial[label] += SpanCounts(len(match_spans(mine, theirs)), len(mine), len(theirs))
    return strict, partial


def overall(counts: Mapping[str, SpanCounts]) -> SpanCounts:
    """Micro-averaged counts over all labels."""
    total = SpanCounts()
    for label_counts in counts.values():
        total += label_counts
    return total


# --- Token level --------------------------------------------------------------------------------


def token_edges(nlp: Language, text: str) -> np.ndarray:
    """(start, end) character offsets of the article's spaCy tokens, whitespace tokens left out."""
    columns = nlp.make_doc(text).to_array([IDX, LENGTH, IS_SPACE]).astype(np.int64).reshape(-1, 3)
    kept = columns[columns[:, 2] == 0]
    return np.stack([kept[:, 0], kept[:, 0] + kept[:, 1]], axis=1)


def token_membership(edges: np.ndarray, text_length: int, spans: Iterable[Span], label: str) -> np.ndarray:
    """1 for each token that shares a character with a span of ``label``, else 0."""
    marked = np.zeros(text_length + 1, dtype=np.int64)
    for span in spans:
        if span.label == label:
            marked[span.start] += 1
            marked[span.end] -= 1
    inside = np.concatenate(([0], np.cumsum(marked[:-1]) > 0)).cumsum()
    return (inside[edges[:, 1]] - inside[edges[:, 0]] > 0).astype(np.int8)


def cohen_kappa(first: Sequence[int] | np.ndarray, second: Sequence[int] | np.ndarray) -> float | None:
    """Cohen's kappa on binary token labels; ``None`` when undefined (both constant and equal)."""
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    if len(np.unique(np.concatenate([first, second]))) < 2:
        return None
    return float(cohen_kappa_score(first, second, labels=[0, 1]))


def krippendorff_alpha(reliability: np.ndarray) -> float | None:
    """Nominal alpha over an (annotators × tokens) matrix with NaN for missing; ``None`` when undefined."""
    if reliability.size == 0:
        return None
    pairable = np.sum(~np.isnan(reliability), axis=0) >= 2
    values = reliability[:, pairable]
    values = values[~np.isnan(values)]
    if len(np.unique(values)) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal"))


# --- Disagreements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """Where two annotators differ on one article: boundaries, label, or a span only one marked."""

    doc_id: str
    task_ids: tuple[int, ...]
    first: str
    second: str
    kind: str  # "boundary", "label", "only_first", "only_second"
    first_span: Span | None
    second_span: Span | None
    context: str

    def describe(self) -> str:
        mine = self.first_span.describe() if self.first_span else "—"
        theirs = self.second_span.describe() if self.second_span else "—"
        tasks = ",".join(str(t) for t in self.task_ids)
        kind = {"only_first": f"only {self.first}", "only_second": f"only {self.second}"}.get(self.kind, self.kind)
        return f"{self.doc_id} (task {tasks}) {kind}: {self.first} {mine} | {self.second} {theirs} | {self.context}"

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "task_ids": list(self.task_ids),
            "annotators": [self.first, self.second],
            "kind": self.kind,
            "first_span": self.first_span.to_dict() if self.first_span else None,
            "second_span": self.second_span.to_dict() if self.second_span else None,
            "context": self.context,
        }


def context(text: str, start: int, end: int, width: int = CONTEXT_CHARS) -> str:
    """The text around ``[start:end]`` on one line, the stretch itself between » and «."""
    left, right = max(0, start - width), min(len(text), end + width)
    snippet = (
        f"{'…' if left else ''}{text[left:start]}»{text[start:end]}«{text[end:right]}{'…' if right < len(text) else ''}"
    )
    return " ".join(snippet.split())


def disagreements_in_doc(
    text: str, doc: DocAnnotations, first: str, second: str, labels: Sequence[str]
) -> list[Disagreement]:
    """Every span of either annotator on this article that the other did not mark identically."""
    mine, theirs = list(doc.by_annotator[first].spans), list(doc.by_annotator[second].spans)
    found: list[tuple[Span | None, Span | None, str]] = []
    for label in labels:
        for a, b in match_spans([s for s in mine if s.label == label], [s for s in theirs if s.label == label]):
            mine.remove(a)
            theirs.remove(b)
            if a != b:
                found.append((a, b, "boundary"))
    for a in list(mine):
        same_place = next((b for b in theirs if (b.start, b.end) == (a.start, a.end)), None)
        if same_place is not None:
            mine.remove(a)
            theirs.remove(same_place)
            found.append((a, same_place, "label"))
    found.extend((a, None, "only_first") for a in mine)
    found.extend((None, b, "only_second") for b in theirs)

    def position(item: tuple[Span | None, Span | None, str]) -> tuple[int, int, str]:
        spans = [s for s in item[:2] if s is not None]
        return (min(s.start for s in spans), max(s.end for s in spans), item[2])

    result = []
    for a, b, kind in sorted(found, key=position):
        start, end, _ = position((a, b, kind))
        result.append(Disagreement(doc.doc_id, doc.task_ids, first, second, kind, a, b, context(text, start, end)))
    return result


# --- The report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairAgreement:
    """Two annotators on the articles they share."""

    first: str
    second: str
    doc_ids: tuple[str, ...]
    strict: Mapping[str, SpanCounts]
    partial: Mapping[str, SpanCounts]
    kappa: Mapping[str, float | None]

    @property
    def strict_overall(self) -> SpanCounts:
        return overall(self.strict)

    @property
    def partial_overall(self) -> SpanCounts:
        return overall(self.partial)

    @property
    def mean_kappa(self) -> float | None:
        return _mean(self.kappa.values())

    def to_dict(self) -> dict:
        return {
            "annotators": [self.first, self.second],
            "documents": len(self.doc_ids),
            "strict": {
                "overall": self.strict_overall.to_dict(),
                "per_label": {label: c.to_dict() for label, c in self.strict.items()},
            },
            "partial": {
                "overall": self.partial_overall.to_dict(),
                "per_label": {label: c.to_dict() for label, c in self.partial.items()},
            },
            "cohen_kappa": {
                "mean": _rounded(self.mean_kappa),
                "per_label": {label: _rounded(k) for label, k in self.kappa.items()},
            },
        }


@dataclass(frozen=True)
class AgreementReport:
    labels: tuple[str, ...]
    annotators: tuple[str, ...]
    doc_annotators: Mapping[str, tuple[str, ...]]
    pairs: tuple[PairAgreement, ...]
    alpha: Mapping[str, float | None]
    disagreements: tuple[Disagreement, ...]
    cancelled: int
    superseded: int
    tokens: int

    @property
    def mean_alpha(self) -> float | None:
        return _mean(self.alpha.values())

    @property
    def shared_docs(self) -> int:
        """Articles that at least two annotators annotated: the ones agreement is measured on."""
        return sum(1 for names in self.doc_annotators.values() if len(names) >= 2)

    def summary(self) -> dict:
        """The headline figures, e.g. for a dataset card: means over pairs and labels."""
        return {
            "strict_f1_mean": _rounded(_mean(p.strict_overall.f1 for p in self.pairs)),
            "partial_f1_mean": _rounded(_mean(p.partial_overall.f1 for p in self.pairs)),
            "cohen_kappa_mean": _rounded(_mean(p.mean_kappa for p in self.pairs)),
            "krippendorff_alpha_mean": _rounded(self.mean_alpha),
        }

    def to_dict(self, include_disagreements: bool = True) -> dict:
        data = {
            "schema_version": JSON_SCHEMA_VERSION,
            "labels": list(self.labels),
            "annotators": list(self.annotators),
            "documents": len(self.doc_annotators),
            "documents_shared": self.shared_docs,
            "tokens_shared": self.tokens,
            "annotations_cancelled": self.cancelled,
            "annotations_superseded": self.superseded,
            "token_unit": "spaCy blank-pipeline token, whitespace tokens excluded; one binary variable per label",
            "summary": self.summary(),
            "krippendorff_alpha": {
                "mean": _rounded(self.mean_alpha),
                "per_label": {label: _rounded(a) for label, a in self.alpha.items()},
            },
            "pairs": [pair.to_dict() for pair in self.pairs],
            "disagreement_count": len(self.disagreements),
        }
        if include_disagreements:
            data["disagreements"] = [d.to_dict() for d in self.disagreements]
        return data


_COUNTS = {
    **dict.fromkeys(("matched", "first", "second"), int),
    **dict.fromkeys(("precision", "recall", "f1"), Maybe(float)),
}
_BY_LABEL = {"overall": _COUNTS, "per_label": Each(_COUNTS)}
_MEANS = {"mean": Maybe(float), "per_label": Each(Maybe(float))}
# What :meth:`AgreementReport.to_dict` writes (``--json-out``), as ``publish`` checks it before the card shows it.
AGREEMENT_SHAPE = {
    "schema_version": int,
    "labels": [str],
    "annotators": [str],
    **dict.fromkeys(("documents", "documents_shared", "tokens_shared"), int),
    "summary": dict.fromkeys(
        ("strict_f1_mean", "partial_f1_mean", "cohen_kappa_mean", "krippendorff_alpha_mean"), Maybe(float)
    ),
    "krippendorff_alpha": _MEANS,
    "pairs": [
        {"annotators": (str, str), "documents": int, "strict": _BY_LABEL, "partial": _BY_LABEL, "cohen_kappa": _MEANS}
    ],
}


def agreement(
    annotations: Iterable[PulledAnnotation],
    texts: Mapping[str, str],
    labels: Sequence[str],
    nlp: Language,
) -> AgreementReport:
    """Every pairwise and all-annotator agreement figure, and every disagreement.

    ``texts`` maps article id to text (see :func:`pulled_texts`, which also checks the spans).
    """
    grouped = group_by_doc(annotations)
    labels = tuple(labels)
    for doc_id in grouped.docs:
        if doc_id not in texts:
            raise AgreementError(f"article {doc_id!r}: no text given for it")
    annotators = tuple(sorted({name for doc in grouped.docs.values() for name in doc.by_annotator}))
    shared = {doc_id: doc for doc_id, doc in grouped.docs.items() if len(doc.by_annotator) >= 2}

    membership: dict[tuple[str, str, str], np.ndarray] = {}
    token_counts: dict[str, int] = {}
    for doc_id, doc in shared.items():
        text = texts[doc_id]
        edges = token_edges(nlp, text)
        token_counts[doc_id] = len(edges)
        for name, annotation in doc.by_annotator.items():
            for label in labels:
                membership[doc_id, name, label] = token_membership(edges, len(text), annotation.spans, label)

    pairs = []
    disagreements: list[Disagreement] = []
    for first, second in combinations(annotators, 2):
        both = [doc_id for doc_id, doc in shared.items() if first in doc.by_annotator and second in doc.by_annotator]
        if not both:
            continue
        strict, partial = span_agreement(
            {d: shared[d].by_annotator[first].spans for d in both},
            {d: shared[d].by_annotator[second].spans for d in both},
            labels,
        )
        kappa = {
            label: cohen_kappa(
                np.concatenate([membership[d, first, label] for d in both]),
                np.concatenate([membership[d, second, label] for d in both]),
            )
            for label in labels
        }
        pairs.append(PairAgreement(first, second, tuple(both), strict, partial, kappa))
        for doc_id in both:
            disagreements.extend(disagreements_in_doc(texts[doc_id], shared[doc_id], first, second, labels))

    alpha = {}
    for label in labels:
        columns = []
        for doc_id, doc in shared.items():
            block = np.full((len(annotators), token_counts[doc_id]), np.nan)
            for row, name in enumerate(annotators):
                if name in doc.by_annotator:
                    block[row] = membership[doc_id, name, label]
            columns.append(block)
        alpha[label] = krippendorff_alpha(np.hstack(columns) if columns else np.empty((0, 0)))

    disagreements.sort(key=lambda d: (d.doc_id, d.first, d.second))
    return AgreementReport(
        labels=labels,
        annotators=annotators,
        doc_annotators={doc_id: doc.annotators for doc_id, doc in grouped.docs.items()},
        pairs=tuple(pairs),
        alpha=alpha,
        disagreements=tuple(disagreements),
        cancelled=grouped.cancelled,
        superseded=grouped.superseded,
        tokens=sum(token_counts.values()),
    )


def _mean(values: Iterable[float | None]) -> float | None:
    defined = [v for v in values if v is not None and not math.isnan(v)]
    return sum(defined) / len(defined) if defined else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
