"""The dataset card's text: what ``annotate publish`` knows about the data, as rows for ``card.md.j2``.

:func:`card_view` turns the facts of a publication (and the gold it publishes) into plain rows:
labels, guideline rules, splits and folds, counts, annotators, agreement figures, sources and
provenance. The prose around them lives in the template; the YAML header the Hub reads is
written by :mod:`annotate.publish`, the only module that imports ``datasets``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from annotate import __version__
from annotate.labels import Schema
from annotate.presentation import provenance_rows, render
from annotate.records import AnnotatedDoc

if TYPE_CHECKING:
    from annotate.publish import SplitPlan

CARD_MARKER = "<!-- Written by `annotate publish`. Regenerate it rather than editing it by hand. -->"
CARD_TEMPLATE = "card.md.j2"

Row = Sequence[object]


@dataclass(frozen=True)
class CardFacts:
    """Everything the card says that is not in the data itself."""

    pretty_name: str
    language: str
    license: str
    date: str
    date_source: str
    gold_name: str
    gold_sha256: str
    schema: Schema
    split_plan: SplitPlan
    include_text: bool
    views: tuple[str, str]  # the configurations' names: spans (the default), tokens
    libraries: dict[str, str]  # name → version of the libraries that made the files
    guidelines_text: str | None = None
    guidelines_sha256: str = ""
    agreement: dict | None = None
    agreement_name: str = ""
    tag_columns: dict[str, list[str]] = field(default_factory=dict)  # label → its BIO columns, one per layer
    pseudonymous: bool = True


@dataclass(frozen=True)
class GuidelineNotes:
    """What the annotation guidelines say about one label: its rule headings and its examples."""

    rules: list[str]
    examples: str


def guideline_notes(guidelines: str, label: str) -> GuidelineNotes | None:
    """The section of the guidelines headed by ``label`` (``## 4. ACTOR``), or ``None`` if there is none.

    Its sub-headings are the rules annotators follow (``A2 Extent: determiners and titles are in``);
    its ``**Examples**`` paragraph quotes the articles.
    """
    lines = guidelines.splitlines()
    heading = re.compile(rf"^(#+)\s+(?:\d+\.\s*)?{re.escape(label)}\s*$")
    for index, line in enumerate(lines):
        match = heading.match(line)
        if not match:
            continue
        level = len(match.group(1))
        section: list[str] = []
        for following in lines[index + 1 :]:
            deeper = re.match(r"^(#+)\s+(.*)$", following)
            if deeper and len(deeper.group(1)) <= level:
                break
            section.append(following)
        rules = [m.group(2).strip() for m in (re.match(r"^(#+)\s+(.*)$", ln) for ln in section) if m]
        paragraphs = "\n".join(section).split("\n\n")
        examples = next((p for p in paragraphs if p.lstrip().startswith("**Examples**")), "")
        examples = re.sub(r"^\s*\*\*Examples\*\*[^:]*:\s*", "", examples).replace("\n", " ").strip()
        return GuidelineNotes(rules, examples)
    return None


def _flatten(figures: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(figures, dict):
        return [item for key, value in figures.items() for item in _flatten(value, f"{prefix}{key}.")]
    if isinstance(figures, list):
        return [item for index, value in enumerate(figures) for item in _flatten(value, f"{prefix}{index}.")]
    return [(prefix.rstrip("."), round(figures, 3) if isinstance(figures, float) else figures)]


def _score(value: object) -> str:
    return "undefined" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Agreement:
    """The agreement figures as the card shows them.

    ``summary`` is set for the layout of ``annotate agreement --json-out`` (``schema_version`` 1,
    docs/agreement.md): documents, annotators and tokens; its tables are the headline, per-label
    and per-pair scores. Any other JSON object is one table of its flattened keys.
    """

    name: str
    tables: list[tuple[Row, list[Row]]]
    summary: dict | None = None


def agreement_view(figures: dict | None, name: str = "") -> Agreement | None:
    """The card's agreement figures from the JSON given to ``annotate publish --agreement``, if any."""
    if not figures:
        return None
    if not (figures.get("schema_version") == 1 and isinstance(figures.get("summary"), dict)):
        return Agreement(name, [(("figure", "value"), _flatten(figures))])
    summary = figures["summary"]
    tables: list[tuple[Row, list[Row]]] = [
        (
            ("measure", "value"),
            [
                ("span F1, strict (mean over pairs)", _score(summary.get("strict_f1_mean"))),
                ("span F1, partial (mean over pairs)", _score(summary.get("partial_f1_mean"))),
                ("Cohen's kappa, tokens (mean over pairs and labels)", _score(summary.get("cohen_kappa_mean"))),
                ("Krippendorff's alpha, tokens (mean over labels)", _score(summary.get("krippendorff_alpha_mean"))),
            ],
        )
    ]
    alpha = (figures.get("krippendorff_alpha") or {}).get("per_label") or {}
    if alpha:
        tables.append((("label", "Krippendorff's alpha"), [(label, _score(v)) for label, v in alpha.items()]))
    pairs = figures.get("pairs") or []
    if pairs:
        tables.append(
            (
                ("annotators", "articles", "strict F1", "partial F1", "mean kappa"),
                [
                    (
                        " vs ".join(pair.get("annotators", [])),
                        pair.get("documents", "?"),
                        _score(((pair.get("strict") or {}).get("overall") or {}).get("f1")),
                        _score(((pair.get("partial") or {}).get("overall") or {}).get("f1")),
                        _score((pair.get("cohen_kappa") or {}).get("mean")),
                    )
                    for pair in pairs
                ],
            )
        )
    shared = {
        "documents": figures.get("documents_shared", "?"),
        "annotators": figures.get("annotators", []),
        "tokens": figures.get("tokens_shared", "?"),
    }
    return Agreement(name, tables, shared)


@dataclass(frozen=True)
class CardView:
    """What the card shows, as rows; ``card.md.j2`` adds the prose."""

    facts: CardFacts
    marker: str
    articles: int
    labels: list[Row]  # index, name, meaning
    same_label_overlaps: list[str]  # labels with overlapping spans of their own (extra tag columns)
    guideline_notes: list[tuple[str, GuidelineNotes]]  # labels whose guideline section has something to show
    tag_columns: list[str]
    extra_tag_columns: list[str]
    splits: list[Row]
    folds: list[Row]
    span_counts: list[Row]  # label, per split, total; then all labels
    article_counts: list[Row]  # article, per label, total
    annotators: list[Row]
    agreement: Agreement | None
    sources: list[Row]
    sources_are_urls: bool
    provenance: list[tuple[str, str]]


def card_provenance(facts: CardFacts) -> dict:
    """What the card was made from, as the reports' provenance: one row per key."""
    return {
        "gold file": f"`{facts.gold_name}`",
        "gold SHA-256 (canonical JSONL)": f"`{facts.gold_sha256}`",
        "label schema SHA-256": f"`{facts.schema.sha256}`",
        "toolkit": f"news-annotate {__version__} (`annotate publish`)",
        "libraries": facts.libraries,
        "split seed": facts.split_plan.seed,
        "date": f"{facts.date} ({facts.date_source})",
    }


def card_view(facts: CardFacts, docs: Sequence[AnnotatedDoc]) -> CardView:
    """The card's rows for ``docs``, the gold as published (annotators already pseudonymous if they are to be)."""
    schema, plan = facts.schema, facts.split_plan
    names = schema.names
    by_id = {doc.id: doc for doc in docs}
    in_order = sorted(docs, key=lambda doc: doc.id)
    notes = []
    if facts.guidelines_text is not None:
        for name in names:
            found = guideline_notes(facts.guidelines_text, name)
            if found is not None and (found.rules or (found.examples and facts.include_text)):
                notes.append((name, found))
    columns = {name: facts.tag_columns.get(name) or [] for name in names}
    counts = {
        split: Counter(span.label for doc_id in ids for span in by_id[doc_id].spans)
        for split, ids in plan.splits.items()
    }
    total = Counter(span.label for doc in docs for span in doc.spans)
    return CardView(
        facts=facts,
        marker=CARD_MARKER,
        articles=len(docs),
        labels=[(index, label.name, label.definition) for index, label in enumerate(schema.labels)],
        same_label_overlaps=[name for name in names if len(columns[name]) > 1],
        guideline_notes=notes,
        tag_columns=[column for name in names for column in columns[name]],
        extra_tag_columns=[column for name in names for column in columns[name][1:]],
        splits=[(split, ", ".join(ids)) for split, ids in plan.splits.items()],
        folds=[(number, ", ".join(fold), ", ".join(plan.fold_train(number))) for number, fold in enumerate(plan.folds)],
        span_counts=[(name, *(counts[split][name] for split in plan.splits), total[name]) for name in names]
        + [("all", *(sum(counts[split].values()) for split in plan.splits), sum(total.values()))],
        article_counts=[
            (doc.id, *(sum(1 for span in doc.spans if span.label == name) for name in names), len(doc.spans))
            for doc in in_order
        ],
        annotators=sorted(Counter(doc.annotator or "(not recorded)" for doc in docs).items()),
        agreement=agreement_view(facts.agreement, facts.agreement_name),
        sources=[(doc.id, doc.source or "(not recorded)") for doc in in_order],
        sources_are_urls=all(doc.source.startswith(("http://", "https://")) for doc in docs),
        provenance=provenance_rows(card_provenance(facts)),
    )


def render_card(view: CardView) -> str:
    """The card's Markdown body (everything after the YAML header)."""
    return render(CARD_TEMPLATE, view=view, facts=view.facts)


def card_body(facts: CardFacts, docs: Sequence[AnnotatedDoc]) -> str:
    """The card's text: labels, views, splits and folds, counts, annotators, sources, provenance."""
    return render_card(card_view(facts, docs))
