"""Several annotations per article → one gold document, and the conflicts left for a reviewer.

Rules, in order, per article (documented in docs/agreement.md):

1. A ground-truth annotation (set in Label Studio) wins: its spans are the gold. If an article
   has several ground truths (e.g. on duplicated tasks), the spans all of them share are gold and the
   rest are conflicts.
2. Otherwise each annotator's latest non-cancelled annotation votes; a span (same start, end and
   label) marked by at least ``min_agree`` annotators is gold. Spans of different labels are
   voted on separately, so an ACTOR nested in an ATTRIBUTION is no conflict.
3. Every other span is a conflict: the article, the span, who marked it and who did not.

An article with fewer than ``min_agree`` annotators and no ground truth is *undecided*: no gold
is written for it (an empty document would claim it has no spans), and its spans are conflicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from annotate.agreement import DocAnnotations, group_by_doc
from annotate.errors import AgreementError
from annotate.records import AnnotatedDoc, PulledAnnotation, Span, text_sha256


@dataclass(frozen=True)
class Conflict:
    """A span not enough annotators agreed on: what a reviewer has to decide."""

    doc_id: str
    task_ids: tuple[int, ...]
    span: Span
    marked_by: tuple[str, ...]
    not_marked_by: tuple[str, ...]

    def describe(self) -> str:
        others = ", ".join(self.not_marked_by) or "—"
        return f"{self.doc_id}: {self.span.describe()}: marked by {', '.join(self.marked_by)}; not by {others}"

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "task_ids": list(self.task_ids),
            "span": self.span.to_dict(),
            "marked_by": list(self.marked_by),
            "not_marked_by": list(self.not_marked_by),
        }


@dataclass(frozen=True)
class Adjudication:
    """The merged gold, the conflicts, and which articles were decided how."""

    gold: tuple[AnnotatedDoc, ...]
    conflicts: tuple[Conflict, ...]
    from_ground_truth: tuple[str, ...]
    undecided: tuple[str, ...]
    min_agree: int
    cancelled: int
    superseded: int


@dataclass(frozen=True)
class ReviewItem:
    """One article to send back for review: the agreed spans and every conflicting candidate."""

    doc_id: str
    task_ids: tuple[int, ...]
    agreed: tuple[Span, ...]
    candidates: tuple[Span, ...]

    @property
    def spans(self) -> tuple[Span, ...]:
        """Everything the reviewer sees as pre-annotations: agreed spans and candidates, in text order."""
        return tuple(sorted(self.agreed + self.candidates))


def _vote(doc: DocAnnotations, voters: Mapping[str, Iterable[Span]], needed: int) -> tuple[list[Span], list[Conflict]]:
    marked: dict[Span, set[str]] = defaultdict(set)
    for name, spans in voters.items():
        for span in spans:
            marked[span].add(name)
    agreed, conflicts = [], []
    everyone = set(voters)
    for span in sorted(marked):
        names = marked[span]
        if len(names) >= needed:
            agreed.append(span)
        else:
            conflicts.append(
                Conflict(doc.doc_id, doc.task_ids, span, tuple(sorted(names)), tuple(sorted(everyone - names)))
            )
    return agreed, conflicts


def adjudicate(annotations: Iterable[PulledAnnotation], texts: Mapping[str, str], min_agree: int = 2) -> Adjudication:
    """Merge each article's annotations into one gold document (see the module docstring for the rules).

    ``texts`` maps article id to text, as :func:`annotate.agreement.pulled_texts` returns it.
    """
    if min_agree < 1:
        raise AgreementError(f"--min-agree must be at least 1, not {min_agree}")
    annotations = list(annotations)
    grouped = group_by_doc(annotations)
    ground_truths: dict[str, list[PulledAnnotation]] = defaultdict(list)
    for annotation in annotations:
        if annotation.ground_truth and not annotation.was_cancelled:
            ground_truths[annotation.doc_id].append(annotation)

    gold, conflicts, from_ground_truth, undecided = [], [], [], []
    for doc_id, doc in grouped.docs.items():
        if doc_id not in texts:
            raise AgreementError(f"article {doc_id!r}: no text given for it")
        text = texts[doc_id]
        truths = sorted(ground_truths.get(doc_id, []), key=lambda a: a.annotation_id)
        if truths:
            voters = {f"{a.annotator} (annotation {a.annotation_id})": a.spans for a in truths}
            agreed, disputed = _vote(doc, voters, len(truths))
            annotator = ",".join(sorted({a.annotator for a in truths}))
            ids = ",".join(str(a.annotation_id) for a in truths)
            source = f"label-studio adjudicated: ground truth (annotation {ids})"
            from_ground_truth.append(doc_id)
        else:
            voters = {name: a.spans for name, a in doc.by_annotator.items()}
            agreed, disputed = _vote(doc, voters, min_agree)
            annotator = ",".join(sorted(voters))
            source = f"label-studio adjudicated: {len(voters)} annotator(s), min-agree {min_agree}"
            if len(voters) < min_agree:
                undecided.append(doc_id)
                conflicts.extend(disputed)
                continue
        conflicts.extend(disputed)
        gold.append(AnnotatedDoc(doc_id, text, tuple(agreed), annotator, source, text_sha256(text)))
    return Adjudication(
        gold=tuple(gold),
        conflicts=tuple(conflicts),
        from_ground_truth=tuple(from_ground_truth),
        undecided=tuple(undecided),
        min_agree=min_agree,
        cancelled=grouped.cancelled,
        superseded=grouped.superseded,
    )


def review_items(adjudication: Adjudication) -> list[ReviewItem]:
    """The articles with conflicts, each with its agreed spans and candidate spans, for a review round.

    What ``annotate adjudicate --review`` sends to Label Studio as predictions (agreed + candidates),
    so the reviewer keeps or deletes each candidate and submits a ground truth.
    """
    agreed = {doc.id: doc.spans for doc in adjudication.gold}
    candidates: dict[str, list[Conflict]] = defaultdict(list)
    for conflict in adjudication.conflicts:
        candidates[conflict.doc_id].append(conflict)
    return [
        ReviewItem(doc_id, found[0].task_ids, tuple(agreed.get(doc_id, ())), tuple(sorted(c.span for c in found)))
        for doc_id, found in sorted(candidates.items())
    ]
