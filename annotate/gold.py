"""Checking and describing a gold set: everything ``annotate gold check`` and ``gold stats`` report."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from spacy.language import Language

from annotate.convert import misaligned_spans
from annotate.corpus import read_gold_located
from annotate.errors import GoldError
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


@dataclass
class GoldCheck:
    """What ``gold check`` finds: problems (the gold is refused) and warnings (worth a look, not wrong)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _structure_problems(
    located: list[tuple[str, AnnotatedDoc]], path: str | Path, schema: Schema, check: Callable
) -> tuple[list[Problem], list[tuple[str, AnnotatedDoc]]]:
    problems: list[Problem] = []
    if not located:
        problems.append(Problem(str(path), "no articles (an empty gold file)"))
    first_seen: dict[str, str] = {}
    clean: list[tuple[str, AnnotatedDoc]] = []
    for where, doc in located:
        if doc.id in first_seen:
            problems.append(Problem(where, f"article id also used at {first_seen[doc.id]}", doc.id))
        first_seen.setdefault(doc.id, where)
        found = check(doc, schema, where)
        problems.extend(found)
        if not found:
            clean.append((where, doc))
    return problems, clean


def validate_gold(path: str | Path, schema: Schema, *, predictions: bool = False) -> list[Problem]:
    """Every problem short of token boundaries, in file order: what every command that reads gold checks.

    ``predictions`` checks a file of predicted spans: the same, except that whitespace at a span's
    edge and duplicates are a model's mistakes to be scored, not errors in the file.
    """
    check = offset_problems if predictions else span_problems
    return _structure_problems(read_gold_located(path), path, schema, check)[0]


def validated_gold(path: str | Path, schema: Schema, *, predictions: bool = False) -> list[AnnotatedDoc]:
    """The gold (or predictions) once :func:`validate_gold` finds nothing; else a GoldError with every problem."""
    problems = validate_gold(path, schema, predictions=predictions)
    if problems:
        what = "predictions" if predictions else "gold"
        raise GoldError(f"{len(problems)} problem(s) in the {what} {path}", problems)
    return [doc for _, doc in read_gold_located(path)]


def check_gold(path: str | Path, schema: Schema, nlp: Language) -> list[Problem]:
    """Every problem in a gold file or folder, one per span or article, in file order."""
    return inspect_gold(path, schema, nlp).problems


def inspect_gold(path: str | Path, schema: Schema, nlp: Language) -> GoldCheck:
    """Problems as :func:`check_gold` finds them, plus warnings: articles with no spans at all.

    An article with no spans is valid gold (nothing of the schema in it, as a reviewer may
    decide), so it only warns; but most often it is a Submit pressed before labelling.
    """
    located = read_gold_located(path)
    warnings = [Problem(where, EMPTY_WARNING, doc.id) for where, doc in located if not doc.spans]
    problems, clean = _structure_problems(located, path, schema, span_problems)
    for where, doc in clean:
        for miss in misaligned_spans(nlp, [doc]):
            hint = f"expand gives {miss.expanded.text!r}" if miss.expanded else "no token covers it"
            problems.append(Problem(where, f"edges are not on spaCy token boundaries ({hint})", doc.id, miss.span))
    return GoldCheck(problems, warnings)


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
