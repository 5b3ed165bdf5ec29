"""Label Studio's JSON ↔ our records, with validation: no network and no SDK here.

Label Studio stores whatever a client sends, unchecked, so every span that comes back is checked
against the article text. The web UI writes code-point offsets (Python ``str`` indices); tools
writing from JavaScript often send UTF-16 units, which differ after any emoji. A span whose
offsets only fit in a UTF-16 reading is repaired and reported; anything else is rejected with
task, annotation and annotator, never dropped or shifted silently.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from annotate.labels import FROM_NAME, TO_NAME, Schema
from annotate.memory import cycle_collector_paused
from annotate.records import AnnotatedDoc, Article, Problem, PulledAnnotation, Span, text_sha256

SOURCE_PREFIX = "label-studio"


# --- offsets -----------------------------------------------------------------------------------


def utf16_offset(text: str, codepoint_offset: int) -> int:
    """The UTF-16 unit offset of a code-point offset (what JavaScript's ``String`` indices count)."""
    return codepoint_offset + sum(1 for char in text[:codepoint_offset] if ord(char) > 0xFFFF)


def codepoint_offset(text: str, utf16: int) -> int | None:
    """The code-point offset of a UTF-16 offset, or None if it falls inside a surrogate pair or past the end."""
    units = 0
    for index, char in enumerate(text):
        if units == utf16:
            return index
        if units > utf16:
            return None
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text) if units == utf16 else None


# --- records → Label Studio ----------------------------------------------------------------------


def span_result(span: Span) -> dict:
    """One Label Studio region for a span, with code-point offsets, as the web UI writes it."""
    return {
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "labels",
        "value": {"start": span.start, "end": span.end, "text": span.text, "labels": [span.label]},
    }


def task_payload(article: Article, prediction: dict | None = None) -> dict:
    """The import payload of one article: ``data.doc_id`` is the key every push reconciles by."""
    payload: dict = {
        "data": {"text": article.text, "doc_id": article.id, "text_sha256": article.text_sha256},
    }
    if article.meta:
        payload["meta"] = dict(article.meta)
    if prediction is not None:
        payload["predictions"] = [prediction]
    return payload


def prediction_payload(spans: Iterable[Span], model_version: str, score: float) -> dict:
    return {"model_version": model_version, "score": score, "result": [span_result(span) for span in spans]}


def _regions(results: Iterable) -> list[tuple]:
    """What a list of regions says, without the ids and extras Label Studio adds on storing them."""
    found = []
    for result in results or []:
        value = result.get("value") if isinstance(result, Mapping) else None
        if isinstance(value, Mapping):
            labels = tuple(value.get("labels") or ())
            found.append((result.get("from_name"), value.get("start"), value.get("end"), labels, value.get("text")))
        else:
            found.append((repr(result),))
    return sorted(found, key=repr)


def same_prediction(stored: Mapping, payload: Mapping) -> bool:
    """Whether a prediction read back from Label Studio says what ``payload`` would send."""
    return (
        stored.get("model_version") == payload.get("model_version")
        and stored.get("score") == payload.get("score")
        and _regions(stored.get("result")) == _regions(payload.get("result"))
    )


# --- Label Studio → records ----------------------------------------------------------------------


@dataclass(frozen=True)
class SpanReading:
    """What one Label Studio region says: a span (maybe repaired from UTF-16), or why it is rejected."""

    spans: tuple[Span, ...] = ()
    repaired: tuple[Span, ...] = ()
    reason: str = ""
    claimed: Span | None = None


def read_result(text: str, result: Mapping, schema: Schema) -> SpanReading:
    """Check one region against the article text and the schema."""
    return _read_result(text, result, frozenset(schema.names), schema.names)


def _plain_span(text: str, result: Mapping, known: frozenset[str]) -> tuple[int, int, str, str] | None:
    """The common case, checked fast: one known label, code-point offsets that match the text."""
    value = result.get("value")
    if type(value) is not dict or result.get("type") != "labels" or result.get("from_name") != FROM_NAME:
        return None
    start, end, claimed, labels = value.get("start"), value.get("end"), value.get("text"), value.get("labels")
    if type(start) is int and type(end) is int and type(labels) is list and len(labels) == 1 and type(claimed) is str:
        label = labels[0]
        if label in known and 0 <= start < end <= len(text) and text[start:end] == claimed:
            return start, end, label, claimed
    return None


def _read_result(text: str, result: Mapping, known: frozenset[str], names: list[str]) -> SpanReading:
    value = result.get("value")
    if result.get("type") != "labels" or result.get("from_name") != FROM_NAME or not isinstance(value, Mapping):
        return SpanReading(
            reason=f"not a span region of this project (type {result.get('type')!r}, from_name "
            f"{result.get('from_name')!r}; expected 'labels', {FROM_NAME!r})"
        )
    start, end, claimed_text, labels = value.get("start"), value.get("end"), value.get("text"), value.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        return SpanReading(reason=f"region has no label (labels={labels!r})")
    if not all(isinstance(number, int) and not isinstance(number, bool) for number in (start, end)):
        return SpanReading(reason=f"offsets are not integers (start={start!r}, end={end!r})")
    if (
        len(labels) == 1
        and labels[0] in known
        and isinstance(claimed_text, str)
        and 0 <= start < end <= len(text)
        and text[start:end] == claimed_text
    ):
        return SpanReading(spans=(Span(start, end, labels[0], claimed_text),))
    claimed = Span(start, end, "|".join(labels), claimed_text if isinstance(claimed_text, str) else "")
    unknown = [label for label in labels if label not in known]
    if unknown:
        return SpanReading(
            reason=f"label {', '.join(unknown)} is not in the schema ({', '.join(names)})", claimed=claimed
        )
    if not isinstance(claimed_text, str):
        return SpanReading(reason="region carries no text to check its offsets against", claimed=claimed)
    if 0 <= start < end <= len(text) and text[start:end] == claimed_text:
        return SpanReading(spans=tuple(Span(start, end, label, claimed_text) for label in labels))
    cp_start, cp_end = codepoint_offset(text, start), codepoint_offset(text, end)
    if cp_start is not None and cp_end is not None and cp_start < cp_end and text[cp_start:cp_end] == claimed_text:
        spans = tuple(Span(cp_start, cp_end, label, claimed_text) for label in labels)
        return SpanReading(spans=spans, repaired=spans, claimed=claimed)
    if not 0 <= start < end <= len(text):
        reason = f"offsets outside the text (0..{len(text)}) or empty (also read as UTF-16 units)"
    else:
        reason = f"text at these offsets is {text[start:end]!r}, not {claimed_text!r} (nor read as UTF-16 units)"
    return SpanReading(reason=reason, claimed=claimed)


def read_prediction(text: str, prediction: Mapping, schema: Schema) -> tuple[tuple[Span, ...], list[str]]:
    """A stored prediction's regions as spans, checked as annotations are; the reasons for any refused."""
    spans, problems = [], []
    for result in prediction.get("result") or []:
        reading = (
            read_result(text, result, schema) if isinstance(result, Mapping) else SpanReading(reason="not a region")
        )
        if reading.reason:
            problems.append(reading.reason)
        spans.extend(reading.spans)
    return tuple(sorted(spans)), problems


@dataclass
class ExportReading:
    """Everything one JSON export holds, checked: every annotation, and what is wrong or was repaired."""

    annotations: list[PulledAnnotation] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    repairs: list[Problem] = field(default_factory=list)
    tasks: int = 0
    tasks_unannotated: int = 0
    cancelled: int = 0
    drafts: int = 0
    predictions: int = 0
    per_annotator: Counter = field(default_factory=Counter)


def parse_export(raw: bytes, schema: Schema, users: Mapping[int, str] | None = None) -> ExportReading | None:
    """Parse and read a JSON export as the server sent it; None if it is not a JSON list of tasks."""
    with cycle_collector_paused():
        try:
            tasks = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: JSON nested past Python's limit
            return None
        return read_export(tasks, schema, users) if isinstance(tasks, list) else None


def annotator_name(value, users: Mapping[int, str]) -> str:
    if isinstance(value, Mapping):
        return str(value.get("email") or value.get("id", ""))
    if isinstance(value, int) and not isinstance(value, bool):
        return users.get(value, f"user {value}")
    return str(value or "")


def read_export(tasks: Sequence[Mapping], schema: Schema, users: Mapping[int, str] | None = None) -> ExportReading:
    """Read a Label Studio JSON export: all annotations of all annotators, every span validated.

    ``users`` maps Label Studio user ids to e-mails (the export names annotators by id).
    """
    users = users or {}
    known, names = frozenset(schema.names), schema.names
    reading = ExportReading()
    task_of_doc: dict[str, int] = {}
    for task in tasks:
        reading.tasks += 1
        task_id = int(task.get("id", 0))
        data = task.get("data") or {}
        doc_id, text = data.get("doc_id"), data.get("text")
        where = f"task {task_id}"
        if not isinstance(doc_id, str) or not doc_id or not isinstance(text, str):
            reading.problems.append(Problem(where, "task has no data.doc_id or data.text (not pushed by annotate?)"))
            continue
        if data.get("text_sha256") and data["text_sha256"] != text_sha256(text):
            edited = "task text was edited in Label Studio (text_sha256 differs)"
            reading.problems.append(Problem(where, edited, doc_id))
            continue
        if doc_id in task_of_doc:
            reading.problems.append(Problem(where, f"doc_id also in task {task_of_doc[doc_id]}", doc_id))
            continue
        task_of_doc[doc_id] = task_id
        reading.texts[doc_id] = text
        reading.drafts += len(task.get("drafts") or [])
        reading.predictions += len(task.get("predictions") or [])
        annotations = task.get("annotations") or []
        if not annotations:
            reading.tasks_unannotated += 1
        sha = text_sha256(text)
        for annotation in annotations:
            reading.annotations.append(
                _read_annotation(reading, task_id, doc_id, text, sha, annotation, known, names, users)
            )
    return reading


def _read_annotation(
    reading: ExportReading,
    task_id: int,
    doc_id: str,
    text: str,
    sha: str,
    annotation: Mapping,
    known: frozenset[str],
    names: list[str],
    users: Mapping[int, str],
) -> PulledAnnotation:
    annotation_id = int(annotation.get("id", 0))
    annotator = annotator_name(annotation.get("completed_by"), users)
    where = f"task {task_id} annotation {annotation_id} ({annotator})"
    cancelled = bool(annotation.get("was_cancelled"))
    reading.per_annotator[annotator] += 1
    # Spans as plain tuples until sorted and checked: Python compares tuples far faster than dataclasses.
    spans: list[tuple[int, int, str, str]] = []
    if cancelled:
        reading.cancelled += 1
    else:
        for result in annotation.get("result") or []:
            if not isinstance(result, Mapping):
                reading.problems.append(Problem(where, f"region is not an object ({result!r})", doc_id))
                continue
            plain = _plain_span(text, result, known)
            if plain is not None:
                spans.append(plain)
                continue
            if result.get("type") == "relation":
                reading.problems.append(Problem(where, "relations are not part of this schema", doc_id))
                continue
            found = _read_result(text, result, known, names)
            if found.reason:
                reading.problems.append(Problem(where, found.reason, doc_id, found.claimed))
                continue
            for span in found.repaired:
                claimed = found.claimed
                reading.repairs.append(
                    Problem(where, f"repaired from UTF-16 offsets [{claimed.start}:{claimed.end}]", doc_id, span)
                )
            spans.extend((span.start, span.end, span.label, span.text) for span in found.spans)
        spans.sort()
        if len(set(spans)) < len(spans):
            for fields, count in Counter(spans).items():
                if count > 1:
                    reading.problems.append(Problem(where, f"exact duplicate ({count} times)", doc_id, Span(*fields)))
    return PulledAnnotation(
        task_id=task_id,
        annotation_id=annotation_id,
        doc_id=doc_id,
        annotator=annotator,
        spans=tuple(Span(*fields) for fields in spans),
        ground_truth=bool(annotation.get("ground_truth")),
        was_cancelled=cancelled,
        created_at=str(annotation.get("created_at") or ""),
        updated_at=str(annotation.get("updated_at") or ""),
        text_sha256=sha,
    )


# --- gold policies -------------------------------------------------------------------------------


def _updated(annotation: PulledAnnotation) -> tuple[float, int]:
    """Sort key for "latest": last update time, then annotation id (Label Studio's ids only grow)."""
    stamp = annotation.updated_at or annotation.created_at
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("-inf"), annotation.annotation_id
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp(), annotation.annotation_id


def _ground_truth_then_latest(candidates: list[PulledAnnotation]) -> PulledAnnotation | None:
    marked = [a for a in candidates if a.ground_truth]
    return max(marked or candidates, key=_updated, default=None)


def _latest(candidates: list[PulledAnnotation]) -> PulledAnnotation | None:
    return max(candidates, key=_updated, default=None)


def _ground_truth_only(candidates: list[PulledAnnotation]) -> PulledAnnotation | None:
    return max((a for a in candidates if a.ground_truth), key=_updated, default=None)


POLICIES: dict[str, Callable[[list[PulledAnnotation]], PulledAnnotation | None]] = {
    "ground-truth-then-latest": _ground_truth_then_latest,
    "latest": _latest,
    "ground-truth-only": _ground_truth_only,
}
DEFAULT_POLICY = "ground-truth-then-latest"


def pulled_source(project: str, task_id: int, origin: str = "") -> str:
    """A pulled document's ``source``: where its text came from, then the Label Studio project and task."""
    where = f"{SOURCE_PREFIX}:{project} task {task_id}"
    return f"{origin} | {where}" if origin else where


def source_origin(source: str) -> str:
    """Where a gold document's text came from (a seed file, a URL), without the Label Studio part."""
    if source.startswith(SOURCE_PREFIX):
        return ""
    return source.split(f" | {SOURCE_PREFIX}", 1)[0]


def with_origins(docs: Iterable[AnnotatedDoc], origins: Mapping[str, str]) -> list[AnnotatedDoc]:
    """Documents whose ``source`` lacks where the text came from get it put in front (``origin | …``)."""
    found = []
    for doc in docs:
        origin = origins.get(doc.id, "")
        if origin and not source_origin(doc.source):
            doc = AnnotatedDoc(doc.id, doc.text, doc.spans, doc.annotator, f"{origin} | {doc.source}", doc.text_sha256)
        found.append(doc)
    return found


def gold_from_pulled(
    annotations: Iterable[PulledAnnotation],
    texts: Mapping[str, str],
    policy: str,
    project: str,
    origins: Mapping[str, str] | None = None,
) -> list[AnnotatedDoc]:
    """One gold document per task that the policy picks an annotation for; cancelled ones never count.

    ``origins`` (doc id → seed file or URL) keeps in each document's ``source`` where its text
    came from, next to the project and task it was annotated in.
    """
    origins = origins or {}
    choose = POLICIES[policy]
    per_doc: dict[str, list[PulledAnnotation]] = defaultdict(list)
    for annotation in annotations:
        if not annotation.was_cancelled:
            per_doc[annotation.doc_id].append(annotation)
    gold = []
    for doc_id in sorted(per_doc):
        chosen = choose(per_doc[doc_id])
        if chosen is not None:
            gold.append(
                AnnotatedDoc(
                    id=doc_id,
                    text=texts[doc_id],
                    spans=chosen.spans,
                    annotator=chosen.annotator,
                    source=pulled_source(project, chosen.task_id, origins.get(doc_id, "")),
                    text_sha256=chosen.text_sha256,
                )
            )
    return gold


def merge_gold(
    previous: Iterable[AnnotatedDoc], pulled: Iterable[AnnotatedDoc]
) -> tuple[list[AnnotatedDoc], list[str]]:
    """The previous gold with the pulled documents put in: pulled ones replace theirs, the rest are kept.

    Returns the merged gold (sorted by id) and the ids kept from the previous gold, so a pull of a
    project where only some articles are labeled updates those and loses none of the others.
    """
    merged = {doc.id: doc for doc in previous}
    kept = set(merged)
    for doc in pulled:
        merged[doc.id] = doc
        kept.discard(doc.id)
    return [merged[doc_id] for doc_id in sorted(merged)], sorted(kept)


def empty_submissions(gold: Iterable[AnnotatedDoc], annotations: Iterable[PulledAnnotation]) -> list[tuple[int, str]]:
    """(task id, doc id) of every gold article whose chosen annotation was submitted with no spans.

    An empty Submit is ambiguous: "nothing to mark here" or "pressed Submit too early". Pull
    refuses it unless told to accept it; annotators are asked to Skip instead.
    """
    task_of = {annotation.doc_id: annotation.task_id for annotation in annotations}
    return sorted((task_of[doc.id], doc.id) for doc in gold if not doc.spans)


# --- difference to the previous gold ---------------------------------------------------------------


@dataclass
class GoldDiff:
    """How a new gold differs from the previous one: documents, and spans per label."""

    docs_added: list[str] = field(default_factory=list)
    docs_removed: list[str] = field(default_factory=list)
    docs_text_changed: list[str] = field(default_factory=list)
    added: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.added) | set(self.removed) | set(self.changed) | set(self.unchanged))

    @property
    def is_empty(self) -> bool:
        return not (self.docs_added or self.docs_removed or self.docs_text_changed or self.added) and not (
            self.removed or self.changed
        )


def diff_gold(previous: Iterable[AnnotatedDoc], new: Iterable[AnnotatedDoc]) -> GoldDiff:
    """Spans added, removed, or changed (same label, overlapping, other edges) per label."""
    before = {doc.id: doc for doc in previous}
    after = {doc.id: doc for doc in new}
    diff = GoldDiff(
        docs_added=sorted(set(after) - set(before)),
        docs_removed=sorted(set(before) - set(after)),
    )
    for doc_id in sorted(set(before) | set(after)):
        old_doc, new_doc = before.get(doc_id), after.get(doc_id)
        if new_doc is None:  # on one side only: every span removed (or added), nothing to pair
            diff.removed.update(span.label for span in old_doc.spans)
            continue
        if old_doc is None:
            diff.added.update(span.label for span in new_doc.spans)
            continue
        if old_doc.text != new_doc.text:
            diff.docs_text_changed.append(doc_id)
        elif old_doc.spans == new_doc.spans:
            diff.unchanged.update(span.label for span in new_doc.spans)
            continue
        old_spans = Counter(old_doc.spans)
        new_spans = Counter(new_doc.spans)
        for span, count in (old_spans & new_spans).items():
            diff.unchanged[span.label] += count
        gone = list((old_spans - new_spans).elements())
        came = list((new_spans - old_spans).elements())
        for span in gone:
            partner = next((other for other in came if other.label == span.label and other.overlaps(span)), None)
            if partner is None:
                diff.removed[span.label] += 1
            else:
                came.remove(partner)
                diff.changed[span.label] += 1
        for span in came:
            diff.added[span.label] += 1
    return diff
