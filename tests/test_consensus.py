"""`measure_agreement` and `adjudicate_into_gold` called as a notebook would: no command line in between."""

from __future__ import annotations

import json

import pytest

from annotate.acceptance import acceptance_path, write_acceptance
from annotate.consensus import PulledSource, adjudicate_into_gold, measure_agreement, read_annotations
from annotate.corpus import read_gold, write_gold, write_pulled
from annotate.errors import AgreementError, StudioError, TargetError
from annotate.records import AnnotatedDoc, PulledAnnotation, text_sha256
from annotate.studio import review
from tests.conftest import span

TEXT = "Hamas said talks stalled."
HAMAS, HAMAS_SAID, TALKS = span(TEXT, "Hamas", "ACTOR"), span(TEXT, "Hamas said", "ACTOR"), span(TEXT, "talks", "ACTOR")
SHA = text_sha256(TEXT)


@pytest.fixture
def source(tmp_path) -> PulledSource:
    """Three annotators on one article (and a cancelled fourth), with the article they annotated."""
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "doc.txt").write_text(TEXT, encoding="utf-8")
    pulled = tmp_path / "pulled.jsonl"
    write_pulled(
        pulled,
        [
            PulledAnnotation(7, 70, "doc", "alice", (HAMAS, TALKS), text_sha256=SHA),
            PulledAnnotation(7, 71, "doc", "bob", (HAMAS_SAID, TALKS), text_sha256=SHA),
            PulledAnnotation(7, 72, "doc", "carol", (HAMAS,), text_sha256=SHA),
            PulledAnnotation(7, 73, "doc", "dave", (), was_cancelled=True, text_sha256=SHA),
        ],
    )
    return PulledSource(pulled, (tmp_path / "articles",))


def _files(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_read_annotations_pairs_each_with_its_checked_text(source, schema):
    found = read_annotations(source, schema)
    assert [a.annotator for a in found.annotations] == ["alice", "bob", "carol", "dave"]
    assert found.texts == {"doc": TEXT} and found.repairs == ()


def test_measure_agreement_writes_the_figures_and_reads_the_acceptance_beside_the_pulled_file(source, schema, tmp_path):
    figures = {"model_versions": {}, "unassisted_annotations": 2}
    write_acceptance(figures, acceptance_path(source.path))
    measured = measure_agreement(source, schema=schema, json_out=tmp_path / "agreement.json")
    assert list(measured.report.annotators) == ["alice", "bob", "carol"]
    written = json.loads((tmp_path / "agreement.json").read_text(encoding="utf-8"))
    assert written == measured.report.to_dict(include_disagreements=False)
    assert (measured.acceptance, measured.acceptance_file) == (figures, acceptance_path(source.path))


def test_measure_agreement_without_two_annotators_writes_nothing(source, schema, tmp_path):
    alone = tmp_path / "alone.jsonl"
    write_pulled(alone, [PulledAnnotation(7, 1, "doc", "alice", (HAMAS,), text_sha256=SHA)])
    with pytest.raises(AgreementError, match="no article has two or more annotators"):
        measure_agreement(PulledSource(alone, source.articles), schema=schema, json_out=tmp_path / "figures.json")
    assert not (tmp_path / "figures.json").exists()


def test_adjudicate_into_gold_writes_gold_and_conflicts_and_keeps_the_rest(source, schema, tmp_path):
    gold = tmp_path / "gold.jsonl"
    curated = AnnotatedDoc("curated", "Curated by hand.", annotator="gold-v1", source="seeds/curated.txt")
    write_gold(gold, [curated])
    done = adjudicate_into_gold(
        source,
        schema=schema,
        gold_path=gold,
        conflicts_path=tmp_path / "conflicts.jsonl",
        origins={"doc": "seeds/doc.txt"},
    )
    assert done.kept == ("curated",) and done.review is None
    merged = {doc.id: doc for doc in read_gold(gold)}
    assert merged["curated"] == curated
    assert merged["doc"].spans == (HAMAS, TALKS)
    assert merged["doc"].source == "seeds/doc.txt | label-studio adjudicated: 3 annotator(s), min-agree 2"
    (conflict,) = [json.loads(line) for line in (tmp_path / "conflicts.jsonl").read_text().splitlines()]
    assert conflict == done.result.conflicts[0].to_dict() and conflict["marked_by"] == ["bob"]

    replaced = adjudicate_into_gold(source, schema=schema, gold_path=gold, replace=True)
    assert replaced.kept == () and [doc.id for doc in read_gold(gold)] == ["doc"]


def test_adjudicate_into_gold_writes_all_or_nothing(source, schema, tmp_path):
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, [AnnotatedDoc("old", "Old text.")])
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    before = _files(tmp_path)
    with pytest.raises(TargetError):
        adjudicate_into_gold(source, schema=schema, gold_path=gold, conflicts_path=tmp_path / "notes.txt")
    with pytest.raises(AgreementError, match="--min-agree must be at least 1"):
        adjudicate_into_gold(source, schema=schema, gold_path=gold, conflicts_path=tmp_path / "c.jsonl", min_agree=0)
    assert _files(tmp_path) == before


class _Connection:
    """Stands in for a Label Studio connection: sending the review set is replaced in the test."""


def test_the_review_set_goes_out_before_anything_is_written(source, schema, tmp_path, monkeypatch):
    sent = []

    def send_review(connection, *, title, items, texts, model_version):
        sent.append((connection, title, [item.doc_id for item in items], model_version))
        if title == "Down":
            raise StudioError("cannot reach Label Studio")
        return review.ReviewReport(title, model_version, tasks=[7], created=1)

    monkeypatch.setattr(review, "send_review", send_review)
    connection = _Connection()
    gold = tmp_path / "gold.jsonl"
    with pytest.raises(StudioError):
        adjudicate_into_gold(source, schema=schema, gold_path=gold, review_project="Down", connection=connection)
    assert not gold.exists(), "a review set that did not go out leaves the gold as it was"
    done = adjudicate_into_gold(source, schema=schema, gold_path=gold, review_project="News", connection=connection)
    assert sent[-1] == (connection, "News", ["doc"], "adjudication-min2")
    assert done.review.created == 1 and gold.exists()
