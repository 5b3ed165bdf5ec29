"""The predictor guards its input in one place: the same article gets the same answer from push, serve and apply.

A blank text is answered with no spans (never handed to spaCy: a batch of them only crashes spancat);
a lone surrogate or a text over ``MAX_TEXT_CHARS`` is refused with the reason, by the article readers
first (push refuses the file line, apply rejects the row), by the predictor for what no reader saw
(the ML backend answers 422).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from annotate import records
from annotate.apply import REJECTS, apply
from annotate.articles import read_articles
from annotate.backend.app import create_app
from annotate.backend.state import BackendOptions
from annotate.errors import InputError
from annotate.model import load_predictor
from tests.test_apply import make_scored_model


@pytest.fixture
def scored_model_dir(tmp_path) -> Path:
    return make_scored_model(tmp_path / "scored-model")


def test_blank_texts_get_no_spans_even_a_whole_batch_of_them(scored_model_dir, schema):
    predictor = load_predictor(scored_model_dir, schema)
    assert predictor.predict(["", " \n\t", ""]) == [[], [], []]
    texts = ["", "Hamas said so.", " ", "Israel", "", ""]
    answers = list(predictor.stream(iter(texts), batch_size=2))
    assert [bool(spans) for spans in answers] == [False, True, False, True, False, False]
    assert answers[1] == predictor.predict(["Hamas said so."])[0]


def test_a_text_over_spacys_own_limit_is_predicted_up_to_the_readers_limit(ruler_model_dir, schema):
    text = "Hamas met. " * 100_001  # 1,100,011 characters: spaCy's E088 stops at 1,000,000
    spans = load_predictor(ruler_model_dir, schema).predict([text])[0]
    assert len(spans) == 100_001 and spans[-1][0].text == "Hamas"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("Hamas \ud800", "lone surrogate '\\ud800'"), ("Hamas " * 20, "120 characters is over the limit of 100")],
)
def test_a_text_no_reader_takes_is_refused_with_the_reason_by_push_apply_and_serve(
    ruler_model_dir, schema, project_root, tmp_path, monkeypatch, text, reason
):
    monkeypatch.setattr(records, "MAX_TEXT_CHARS", 100)
    source = tmp_path / "src.jsonl"
    lines = [{"id": "ok", "text": "Hamas"}, {"id": "bad", "text": text}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    with pytest.raises(InputError, match=f"src.jsonl:2: .*{re.escape(reason)}"):
        read_articles([source])  # what push reads: refused before anything is sent

    report = apply(ruler_model_dir, [source], tmp_path / "out", schema=schema, workers=1, skip_bad=True)
    assert report.articles == 1 and report.rejected == 1
    reject = json.loads((tmp_path / "out" / REJECTS).read_text(encoding="utf-8"))
    assert reason in reject["problem"]
    assert [row["id"] for row in pq.read_table(next((tmp_path / "out").glob("part-*.parquet"))).to_pylist()] == ["ok"]

    options = BackendOptions(
        root=project_root,
        schema_path=project_root / "guidelines" / "labels.toml",
        config_path=project_root / "configs" / "spancat.cfg",
        models_dir=tmp_path / "live",
    )
    client = TestClient(create_app(ruler_model_dir, schema, options))
    tasks = [{"id": n, "data": {"text": t}} for n, t in enumerate(["Hamas", text], start=1)]
    body = json.dumps({"tasks": tasks})  # ASCII: a lone surrogate travels as its \\u escape, as a client may send it
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    # The request model refuses what it can see (a lone surrogate, naming the field); the guard the rest.
    assert "\n" not in detail
    if not detail.startswith("malformed request: tasks.1.data.text: "):
        assert detail.startswith("text #2 of the batch: ") and reason in detail, detail
    assert client.post("/predict", json={"tasks": tasks[:1]}).status_code == 200  # and it keeps serving


def test_apply_refuses_zero_workers_instead_of_taking_the_default(ruler_model_dir, schema, tmp_path):
    source = tmp_path / "src.jsonl"
    source.write_text('{"id": "a", "text": "Hamas"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="workers and batch size must be at least 1 \\(got 0"):
        apply(ruler_model_dir, [source], tmp_path / "out", schema=schema, workers=0)
    assert not (tmp_path / "out").exists()
