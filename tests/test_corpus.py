"""Reading gold, writing gold atomically, and the JSONL round trip (articles: test_articles.py)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotate.corpus import (
    atomic_write_text,
    gold_sha256,
    read_gold,
    read_pulled,
    write_gold,
    write_pulled,
)
from annotate.errors import InputError
from annotate.records import AnnotatedDoc, PulledAnnotation, Span, text_sha256
from tests.conftest import awkward_text


def test_gold_structure_errors_name_file_and_line(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x", "spans": [{"start": "0", "end": 1}]}) + "\n")
    with pytest.raises(InputError, match=r"gold\.jsonl:1: span #0 needs start, end, label and text"):
        read_gold(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("old\n", encoding="utf-8")

    class Boom(str):
        def encode(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_text(path, Boom("new"))
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["gold.jsonl"]


def test_atomic_write_keeps_permissions_or_follows_the_umask(tmp_path):
    fresh = tmp_path / "fresh.txt"
    atomic_write_text(fresh, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    fresh.chmod(0o640)
    atomic_write_text(fresh, "y")
    assert fresh.stat().st_mode & 0o777 == 0o640
    secret = tmp_path / "token"
    atomic_write_text(secret, "s", mode=0o600)
    assert secret.stat().st_mode & 0o777 == 0o600


def test_write_gold_is_canonical_and_hash_is_stable(tmp_path):
    doc = AnnotatedDoc("b", "Hamas said", (Span(6, 10, "ATTRIBUTION", "said"), Span(0, 5, "ACTOR", "Hamas")))
    other = AnnotatedDoc("a", "x y", ())
    sha = write_gold(tmp_path / "g.jsonl", [doc, other])
    assert sha == gold_sha256([other, doc])
    lines = (tmp_path / "g.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b"]
    assert json.loads(lines[1])["spans"][0]["text"] == "Hamas"


@st.composite
def docs_with_spans(draw):
    text = draw(awkward_text)
    bounds = st.integers(min_value=0, max_value=len(text))
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        start, end = sorted((draw(bounds), draw(bounds)))
        label = draw(st.sampled_from(["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]))
        spans.append(Span.from_offsets(text, start, end, label))
    return AnnotatedDoc(draw(st.text(min_size=1, max_size=8)), text, tuple(spans), "someone", "test")


@given(docs=st.lists(docs_with_spans(), max_size=4, unique_by=lambda d: d.id))
def test_gold_jsonl_round_trip_keeps_every_span_and_character(tmp_path_factory, docs):
    path = tmp_path_factory.mktemp("gold") / "gold.jsonl"
    write_gold(path, docs)
    read_back = read_gold(path)
    assert sorted(read_back, key=lambda d: d.id) == sorted(docs, key=lambda d: d.id)
    for doc in read_back:
        assert doc.text_sha256 == text_sha256(doc.text)
        for span in doc.spans:
            assert doc.text[span.start : span.end] == span.text


def test_pulled_annotations_round_trip(tmp_path):
    pulled = [
        PulledAnnotation(2, 7, "b", "ann@x", (Span(0, 2, "ACTOR", "Hi"),), ground_truth=True),
        PulledAnnotation(1, 3, "a", "other@x", (), was_cancelled=True, updated_at="2026-01-01"),
    ]
    write_pulled(tmp_path / "p.jsonl", pulled)
    assert read_pulled(tmp_path / "p.jsonl") == sorted(pulled, key=lambda a: a.doc_id)
