"""Several annotators' work, end to end: where it is read from, what they agree on, and the gold it makes.

What ``annotate agreement`` and ``annotate adjudicate`` do, as plain functions a notebook can call.
The annotations come from a pulled file (with the articles they were made on) or straight from a
Label Studio project; the figures are :mod:`annotate.agreement`'s and the merge rules
:mod:`annotate.adjudicate`'s. Every target is checked before anything is read, and the files are
written together or not at all, after every check passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from annotate.acceptance import acceptance_path, read_acceptance
from annotate.adjudicate import Adjudication, adjudicate, review_items
from annotate.agreement import AgreementReport, agreement, pulled_texts
from annotate.articles import read_articles
from annotate.convert import blank_pipeline
from annotate.corpus import (
    atomic_write_text,
    encode_text,
    gold_jsonl,
    is_gold_file,
    json_with_keys,
    jsonl_with_keys,
    read_gold,
    read_pulled,
)
from annotate.errors import AgreementError
from annotate.labels import Schema
from annotate.lsformat import merge_gold, source_origin, with_origins
from annotate.records import Problem, PulledAnnotation
from annotate.targets import check_file_target, write_files

if TYPE_CHECKING:
    from annotate.studio.client import Studio
    from annotate.studio.review import ReviewReport


@dataclass(frozen=True)
class PulledSource:
    """Annotations ``annotate pull`` wrote, and the articles (folders or files) they were made on."""

    path: Path
    articles: tuple[Path, ...]

    def describe(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class ProjectSource:
    """Every annotation of a Label Studio project, read from the server; the texts are the task texts."""

    title: str

    def describe(self) -> str:
        return f"project {self.title!r}"


AnnotationSource = PulledSource | ProjectSource


@dataclass(frozen=True)
class Annotations:
    """Annotations with the text of each article they were made on, checked against each other."""

    source: AnnotationSource
    annotations: tuple[PulledAnnotation, ...]
    texts: dict[str, str]
    repairs: tuple[Problem, ...] = ()  # spans whose UTF-16 offsets were read as code points (from a project)


@dataclass(frozen=True)
class AgreementRun:
    """The agreement figures, and what annotators did to the predictions they were shown, if known."""

    report: AgreementReport
    annotations: Annotations
    acceptance: dict | None
    acceptance_file: Path | None  # where the acceptance figures were read; None when fresh from the project


@dataclass(frozen=True)
class AdjudicationRun:
    """The adjudication, the gold written from it, and the review set sent, if any."""

    result: Adjudication
    annotations: Annotations
    gold_path: Path
    conflicts_path: Path | None
    kept: tuple[str, ...]  # articles of the previous gold that were not adjudicated and stay
    review: ReviewReport | None


def _connected(connection: Studio | None) -> Studio:
    from annotate.studio import client

    return connection if connection is not None else client.connect()


def read_annotations(source: AnnotationSource, schema: Schema, *, connection: Studio | None = None) -> Annotations:
    """The annotations and their texts; refuses a missing or changed article and any span that does not fit.

    A project is read through ``connection`` (default: the server ``annotate`` finds from here).
    """
    if isinstance(source, ProjectSource):
        from annotate.studio.pull import fetch_annotations

        fetched = fetch_annotations(_connected(connection), title=source.title, schema=schema)
        annotations, articles, repairs = fetched.annotations, fetched.articles, fetched.repairs
    else:
        annotations, articles, repairs = tuple(read_pulled(source.path)), read_articles(source.articles), ()
    texts = pulled_texts(annotations, articles, schema.names, source.describe())
    return Annotations(source, tuple(annotations), texts, tuple(repairs))


def measure_agreement(
    source: AnnotationSource,
    *,
    schema: Schema,
    lang: str = "en",
    json_out: str | Path | None = None,
    force: bool = False,
    connection: Studio | None = None,
) -> AgreementRun:
    """Agreement between annotators (:func:`annotate.agreement.agreement`); the figures also to ``json_out``.

    Refuses annotations where no article has two annotators. The acceptance figures are fetched fresh
    from a project, or read beside a pulled file where ``annotate pull`` left them.
    """
    if json_out is not None:
        json_out = Path(json_out)
        recognise = json_with_keys("schema_version", "krippendorff_alpha")
        check_file_target(json_out, recognise=recognise, what="JSON of agreement figures", force=force)
    if isinstance(source, ProjectSource):
        connection = _connected(connection)
    found = read_annotations(source, schema, connection=connection)
    report = agreement(found.annotations, found.texts, schema.names, blank_pipeline(lang))
    if not report.pairs:
        raise AgreementError(
            f"{source.describe()}: no article has two or more annotators ({len(report.doc_annotators)} article(s), "
            f"annotators: {', '.join(report.annotators) or 'none'}); agreement needs articles annotated by several"
        )
    acceptance, acceptance_file = _acceptance(found, schema, connection)
    if json_out is not None:
        figures = json.dumps(report.to_dict(include_disagreements=False), indent=2, ensure_ascii=False)
        atomic_write_text(json_out, figures + "\n")
    return AgreementRun(report, found, acceptance, acceptance_file)


def _acceptance(found: Annotations, schema: Schema, connection: Studio | None) -> tuple[dict | None, Path | None]:
    """What annotators did to the predictions: fresh from a project, or as the pull of a pulled file found it."""
    if isinstance(found.source, PulledSource):
        path = acceptance_path(found.source.path)
        figures = read_acceptance(path)
        return figures, path if figures is not None else None
    from annotate.studio.pull import prediction_acceptance

    project = connection.project(found.source.title)
    shown = prediction_acceptance(connection, project, found.annotations, found.texts, schema)
    return (None if shown is None else shown.to_dict()), None


def adjudicate_into_gold(
    source: AnnotationSource,
    *,
    schema: Schema,
    gold_path: str | Path,
    min_agree: int = 2,
    conflicts_path: str | Path | None = None,
    replace: bool = False,
    review_project: str | None = None,
    origins: Mapping[str, str] | None = None,
    force: bool = False,
    connection: Studio | None = None,
) -> AdjudicationRun:
    """Merge the annotations into gold by :func:`annotate.adjudicate.adjudicate`'s rules and write it.

    The adjudicated articles replace theirs in the gold at ``gold_path`` and the rest stay (with
    ``replace``, only the adjudicated are written). ``origins`` (article id → its file, as
    ``seeds/x.txt``) and the previous gold name where each text came from. With ``review_project``
    the conflicts go to that Label Studio project as a review set first. Gold and conflicts
    (``conflicts_path``, JSONL) are written together or not at all.
    """
    gold_path = Path(gold_path)
    check_file_target(gold_path, recognise=is_gold_file, what="gold file", force=force)
    if conflicts_path is not None:
        conflicts_path = Path(conflicts_path)
        recognise = jsonl_with_keys("doc_id", "span", "marked_by")
        check_file_target(conflicts_path, recognise=recognise, what="conflicts file", force=force)
    if isinstance(source, ProjectSource) or review_project is not None:
        connection = _connected(connection)
    found = read_annotations(source, schema, connection=connection)
    if not found.annotations:
        raise AgreementError(f"{source.describe()}: no annotations to adjudicate; nothing written")
    result = adjudicate(found.annotations, found.texts, min_agree)
    previous = read_gold(gold_path) if gold_path.exists() else []
    known = {doc.id: source_origin(doc.source) for doc in previous} | dict(origins or {})
    gold, kept = with_origins(result.gold, known), []
    if not replace:
        gold, kept = merge_gold(previous, gold)
    sent = None
    if review_project is not None:
        from annotate.studio import review

        sent = review.send_review(
            connection,
            title=review_project,
            items=review_items(result),
            texts=found.texts,
            model_version=review.review_version(min_agree),
        )
    writes = [(gold_path, encode_text(gold_jsonl(gold), str(gold_path)))]
    if conflicts_path is not None:
        lines = "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in result.conflicts)
        writes.insert(0, (conflicts_path, encode_text(lines, str(conflicts_path))))
    write_files(writes)
    return AdjudicationRun(result, found, gold_path, conflicts_path, tuple(kept), sent)
