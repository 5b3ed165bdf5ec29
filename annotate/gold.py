"""Reading gold once at a chosen check level, and describing it: what ``gold check`` and ``gold stats`` report."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import combinations
from pathlib import Path

from spacy.language import Language

from annotate.convert import misaligned_spans
from annotate.corpus import read_gold_located
from annotate.errors import EvaluationError, GoldError
from annotate.evaluate import align_predictions
from annotate.labels import Schema
from annotate.records import AnnotatedDoc, Problem, text_sha256


def offset_problems(doc: AnnotatedDoc, schema: Schema, where: str) -> list[Problem]:
    """What any file of spans must satisfy, gold or predictions: hash, offsets inside the text, span text, label."""
    problems = []
    if doc.text_sha256 != text_sha256(doc.text):
        problems.append(Problem(where, "text_sha256 does not match the text (was the article edited?)", doc.id))
    for span in doc.spans:
        if not 0 <= span.start < span.end <= len(doc.text):
            problems.append(Problem(where, f"offsets outside the text (0..{len(doc.text)}) or empty", doc.id, span))
            continue
        actual = doc.text[span.start : span.end]
        if actual != span.text:
            problems.append(Problem(where, f"text at these offsets is {actual!r}", doc.id, span))
            continue
        if span.label not in schema:
            problems.append(Problem(where, f"label not in the schema ({', '.join(schema.names)})", doc.id, span))
    return problems


def span_problems(doc: AnnotatedDoc, schema: Schema, where: str) -> list[Problem]:
    """Problems a tokenizer is not needed for: hash, offsets, text, label, whitespace, duplicates."""
    problems = offset_problems(doc, schema, where)
    for span in doc.spans:
        inside = 0 <= span.start < span.end <= len(doc.text)
        if inside and span.text == doc.text[span.start : span.end] and span.text != span.text.strip():
            problems.append(Problem(where, "leading or trailing whitespace", doc.id, span))
    for span, count in Counter(doc.spans).items():
        if count > 1:
            problems.append(Problem(where, f"exact duplicate ({count} times)", doc.id, span))
    return problems


EMPTY_WARNING = "no spans (an empty Submit? annotators should Skip; `pull --allow-empty` accepts it)"


class GoldCheck(IntEnum):
    """How far gold is checked as it is read; each level holds the checks of the ones before it."""

    STRUCTURE = 1
    """Every line a JSON object with an id, a text and well-formed spans (:func:`annotate.corpus.read_gold`)."""
    OFFSETS = 2
    """Also: no empty file, one line per id, the text hash, offsets inside the text, span text, labels in the
    schema. What a file of predicted spans must pass (a model's whitespace and duplicates are scored, not refused)."""
    SPANS = 3
    """Also: no whitespace at a span's edge, no exact duplicates. What every command that reads gold checks."""
    TOKENS = 4
    """Also: span edges on spaCy token boundaries (needs the pipeline). ``gold check``, ``run``, ``cv``, ``publish``."""


@dataclass
class GoldReading:
    """A gold file read once: its documents in file order, the problems that refuse it, and warnings
    (worth a look, not wrong)."""

    docs: list[AnnotatedDoc]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def inspect_gold(
    path: str | Path, schema: Schema, nlp: Language | None = None, *, check: GoldCheck = GoldCheck.TOKENS
) -> GoldReading:
    """Read gold (a file or a folder of them) once and check it to the level ``check``.

    Structure errors raise an InputError naming file and line; every other problem is listed, in
    file order, one per span or article. An article with no spans is valid gold (nothing of the
    schema in it, as a reviewer may decide), so it only warns; but most often it is a Submit
    pressed before labelling.
    """
    if check >= GoldCheck.TOKENS and nlp is None:
        raise ValueError("checking token boundaries needs the spaCy pipeline (nlp)")
    located = read_gold_located(path)
    reading = GoldReading([doc for _, doc in located])
    reading.warnings = [Problem(where, EMPTY_WARNING, doc.id) for where, doc in located if not doc.spans]
    if check < GoldCheck.OFFSETS:
        return reading
    if not located:
        reading.problems.append(Problem(str(path), "no articles (an empty gold file)"))
    per_doc = offset_problems if check == GoldCheck.OFFSETS else span_problems
    first_seen: dict[str, str] = {}
    clean: list[tuple[str, AnnotatedDoc]] = []
    for where, doc in located:
        if doc.id in first_seen:
            reading.problems.append(Problem(where, f"article id also used at {first_seen[doc.id]}", doc.id))
        first_seen.setdefault(doc.id, where)
        found = per_doc(doc, schema, where)
        reading.problems.extend(found)
        if not found:
            clean.append((where, doc))
    if check >= GoldCheck.TOKENS:
        for where, doc in clean:
            for miss in misaligned_spans(nlp, [doc]):
                hint = f"expand gives {miss.expanded.text!r}" if miss.expanded else "no token covers it"
                reason = f"edges are not on spaCy token boundaries ({hint})"
                reading.problems.append(Problem(where, reason, doc.id, miss.span))
    return reading


def validated_gold(
    path: str | Path,
    schema: Schema,
    *,
    check: GoldCheck = GoldCheck.SPANS,
    nlp: Language | None = None,
    what: str = "gold",
) -> list[AnnotatedDoc]:
    """The documents once :func:`inspect_gold` finds nothing at level ``check``; else a GoldError with every
    problem. ``what`` names the file in the message ("gold", "predictions")."""
    reading = inspect_gold(path, schema, nlp, check=check)
    if reading.problems:
        raise GoldError(f"{len(reading.problems)} problem(s) in the {what} {path}", reading.problems)
    return reading.docs


def validated_predictions(path: str | Path, schema: Schema, gold: Sequence[AnnotatedDoc]) -> list[AnnotatedDoc]:
    """A file of predicted spans as every reader of one takes it (the report, ``review-errors``), in gold order.

    Checked at :attr:`GoldCheck.OFFSETS` (offsets inside the text, span text, labels, hash), then
    against ``gold``: every gold article once, with the same text, and no article the gold lacks.
    """
    predicted = validated_gold(path, schema, check=GoldCheck.OFFSETS, what="predictions")
    try:
        return align_predictions(gold, predicted)
    except EvaluationError as exc:
        raise EvaluationError(f"{path}: {exc}") from None


def check_gold(path: str | Path, schema: Schema, nlp: Language) -> list[Problem]:
    """Every problem in a gold file or folder, token boundaries included, one per span or article, in file order."""
    return inspect_gold(path, schema, nlp).problems


@dataclass
class GoldStats:
    """What a gold set holds: counts per article and label, span lengths, overlaps."""

    labels: list[str]
    articles: dict[str, Counter] = field(default_factory=dict)
    token_lengths: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    overlaps: Counter = field(default_factory=Counter)

    @property
    def totals(self) -> Counter:
        total: Counter = Counter()
        for counts in self.articles.values():
            total.update(counts)
        return total

    def length_summary(self, label: str) -> tuple[float, int]:
        lengths = self.token_lengths.get(label) or [0]
        return sum(lengths) / len(lengths), max(lengths)

    def to_dict(self) -> dict:
        return {
            "articles": {doc_id: dict(counts) for doc_id, counts in self.articles.items()},
            "totals": dict(self.totals),
            "span_tokens": {
                label: {"mean": round(self.length_summary(label)[0], 2), "max": self.length_summary(label)[1]}
                for label in self.labels
            },
            "overlaps": {f"{a}+{b}": n for (a, b), n in sorted(self.overlaps.items())},
        }


def gold_stats(docs: Iterable[AnnotatedDoc], schema: Schema, nlp: Language) -> GoldStats:
    stats = GoldStats(labels=schema.names)
    for doc in docs:
        stats.articles[doc.id] = Counter({label: 0 for label in schema.names})
        tokens = nlp.make_doc(doc.text)
        for span in doc.spans:
            stats.articles[doc.id][span.label] += 1
            aligned = tokens.char_span(span.start, span.end, alignment_mode="expand")
            stats.token_lengths[span.label].append(len(aligned) if aligned is not None else 0)
        for first, second in combinations(doc.spans, 2):
            if first.overlaps(second):
                stats.overlaps[tuple(sorted((first.label, second.label)))] += 1
    return stats
