"""A saved model's one owner: its identity (hash, version) recorded and read back, one loader, one span extractor."""

from __future__ import annotations

import json
import shutil

import pytest
import spacy
from spacy.tokens import Span as SpacySpan

import annotate.model as model
from annotate.apply import apply
from annotate.corpus import read_gold
from annotate.errors import TrainingError
from annotate.experiment import evaluate_target
from annotate.labels import load_schema
from annotate.model import (
    META_FILE,
    ModelIdentity,
    computed_identity,
    load_pipeline,
    load_predictor,
    model_identity,
    model_version,
    pipeline_sha256,
    predict,
    scored_spans,
    spans_of,
)
from annotate.nested import scored_predictions, with_thresholds
from annotate.records import AnnotatedDoc, Span
from annotate.settings import load_settings
from annotate.train import train, train_pipeline
from tests.nested_fixture import LABELS, articles, tiny_config

TEXT = "Hamas 😀 met Israel. Hamas"


@pytest.fixture(scope="module")
def schema(project_root):
    return load_schema(project_root / "guidelines" / "labels.toml")


def _write_meta(model_dir, meta) -> None:
    (model_dir / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def _no_hashing(monkeypatch) -> None:
    def refuse(path):
        raise AssertionError(f"{path} was hashed again although its identity is recorded")

    monkeypatch.setattr(model, "pipeline_sha256", refuse)


# --- identity -------------------------------------------------------------------------------------


def test_the_hash_is_stable_covers_the_pipeline_files_and_not_the_meta_file(ruler_model_dir):
    digest = pipeline_sha256(ruler_model_dir)
    assert digest == pipeline_sha256(ruler_model_dir) and len(digest) == 64
    _write_meta(ruler_model_dir, {"anything": 1})
    assert pipeline_sha256(ruler_model_dir) == digest, "the meta file records the hash, so it is no part of it"
    meta = ruler_model_dir / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text(encoding="utf-8")), "x": 1}), encoding="utf-8")
    assert pipeline_sha256(ruler_model_dir) != digest
    assert computed_identity(ruler_model_dir) == ModelIdentity(
        pipeline_sha256(ruler_model_dir), f"model-best-{pipeline_sha256(ruler_model_dir)[:12]}"
    )


def test_a_recorded_identity_is_read_not_recomputed_and_travels_with_the_folder(ruler_model_dir, schema, monkeypatch):
    recorded = computed_identity(ruler_model_dir)
    _write_meta(ruler_model_dir, {"articles": ["a"], **recorded.to_dict()})
    moved = shutil.move(ruler_model_dir, ruler_model_dir.with_name("renamed"))
    _no_hashing(monkeypatch)
    assert model_identity(moved) == recorded
    assert model_version(moved) == recorded.version and recorded.version.startswith("model-best-")
    assert load_predictor(moved, schema).model_version == recorded.version


@pytest.mark.parametrize(
    "meta",
    [None, "{not json", {"articles": ["a"]}, {"model_sha256": "", "model_version": ""}, ["a list"]],
    ids=["no meta file", "unreadable", "saved before identity was recorded", "empty values", "not an object"],
)
def test_a_model_without_a_recorded_identity_gets_it_computed(ruler_model_dir, meta):
    expected = computed_identity(ruler_model_dir)
    if meta is not None:
        (ruler_model_dir / META_FILE).write_text(meta if isinstance(meta, str) else json.dumps(meta), encoding="utf-8")
    assert model_identity(ruler_model_dir) == expected
    assert model_version(ruler_model_dir) == f"model-best-{pipeline_sha256(ruler_model_dir)[:12]}"


def test_a_meta_file_with_only_the_hash_gives_the_version_from_folder_and_hash(ruler_model_dir, monkeypatch):
    digest = pipeline_sha256(ruler_model_dir)
    _write_meta(ruler_model_dir, {"model_sha256": digest})
    _no_hashing(monkeypatch)
    assert model_identity(ruler_model_dir) == ModelIdentity(digest, f"model-best-{digest[:12]}")


def test_evaluate_names_the_model_by_its_identity_in_the_provenance(ruler_model_dir, schema, project_root, tmp_path):
    gold = read_gold(load_settings(project_root).gold)
    outcome = evaluate_target(ruler_model_dir, gold, tmp_path, schema=schema, bootstrap=0)
    keys = list(outcome.source)
    assert keys[keys.index("model") : keys.index("model") + 4] == [
        "model",
        "model_sha256",
        "model_version",
        "trained_on_gold",
    ]
    assert outcome.source["model_version"] == model_version(ruler_model_dir)
    written = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["provenance"]
    assert written["model_sha256"] == pipeline_sha256(ruler_model_dir)
    assert written["model_version"] == model_version(ruler_model_dir)


@pytest.mark.slow
def test_train_records_the_identity_every_reader_uses(project_root, schema, tmp_path, monkeypatch):
    config = tiny_config(project_root, tmp_path)
    output = tmp_path / "spancat-tiny"
    result = train(articles()[:2], output, config_path=config, labels=LABELS, schema_sha256=schema.sha256)
    meta = json.loads((output / META_FILE).read_text(encoding="utf-8"))
    digest = pipeline_sha256(output)
    assert meta == result.meta
    assert (meta["model_sha256"], meta["model_version"]) == (digest, f"spancat-tiny-{digest[:12]}")
    _no_hashing(monkeypatch)
    assert model_identity(output) == ModelIdentity(digest, meta["model_version"])
    assert load_predictor(output, schema).model_version == meta["model_version"]


# --- the one loader -------------------------------------------------------------------------------


def _broken(folder, how):
    if how == "missing":
        return folder / "nowhere"
    if how == "empty":
        folder.mkdir()
        return folder
    spacy.blank("en").to_disk(folder)
    (folder / "config.cfg").write_text("not [ a config", encoding="utf-8")
    return folder


def _through_apply(model_dir, schema, tmp_path):
    (tmp_path / "a.txt").write_text("Hamas", encoding="utf-8")
    return apply(model_dir, [tmp_path / "a.txt"], tmp_path / "out", schema=schema, workers=1)


LOADERS = {
    "load_pipeline": lambda model_dir, schema, tmp_path: load_pipeline(model_dir),
    "load_predictor": lambda model_dir, schema, tmp_path: load_predictor(model_dir, schema),
    "apply": _through_apply,
}


@pytest.mark.parametrize("how", ["missing", "empty"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_every_path_refuses_a_folder_without_a_pipeline_with_the_same_error(tmp_path, schema, loader, how):
    model_dir = _broken(tmp_path / "model", how)
    with pytest.raises(TrainingError) as raised:
        LOADERS[loader](model_dir, schema, tmp_path)
    assert str(raised.value) == f"{model_dir}: not a saved spaCy pipeline (no config.cfg); run `annotate train` first"
    assert not (tmp_path / "out").exists(), "nothing is planned or written around a folder that holds no model"


@pytest.mark.parametrize("loader", ["load_pipeline", "load_predictor"])
def test_a_broken_pipeline_is_one_error_in_one_line(tmp_path, schema, loader):
    model_dir = _broken(tmp_path / "model", "broken")
    with pytest.raises(TrainingError) as raised:
        LOADERS[loader](model_dir, schema, tmp_path)
    assert str(raised.value).startswith(f"{model_dir}: cannot load the saved pipeline (Config validation error; ")
    assert "\n" not in str(raised.value)


# --- spans out of a doc ---------------------------------------------------------------------------


def _doc(scores: list[float] | None):
    doc = spacy.blank("en")(TEXT)
    doc.spans["sc"] = [SpacySpan(doc, 5, 6, "ACTOR"), SpacySpan(doc, 0, 1, "ACTOR"), SpacySpan(doc, 3, 4, "ACTOR")]
    if scores is not None:
        doc.spans["sc"].attrs["scores"] = scores
    return doc


def test_scored_spans_are_the_doc_spans_in_order_with_code_point_offsets_and_scores():
    hamas, israel, last = Span(0, 5, "ACTOR", "Hamas"), Span(12, 18, "ACTOR", "Israel"), Span(20, 25, "ACTOR", "Hamas")
    assert TEXT[israel.start : israel.end] == "Israel", "offsets count code points, the emoji as one"
    assert scored_spans(_doc([0.9, 0.4, 0.7])) == [(last, 0.9), (hamas, 0.4), (israel, 0.7)]
    assert scored_spans(_doc(None)) == [(last, 1.0), (hamas, 1.0), (israel, 1.0)], "no scores (rules): 1.0"
    assert scored_spans(_doc([0.9, 0.4, 0.7]), TEXT) == scored_spans(_doc([0.9, 0.4, 0.7]))
    assert scored_spans(spacy.blank("en")(TEXT)) == [], "a doc without the span group has no spans"
    doubled = _doc(None)
    doubled.spans["sc"] = [*doubled.spans["sc"], SpacySpan(doubled, 0, 1, "ACTOR")]
    assert spans_of(doubled) == (hamas, israel, last), "records: duplicates removed, sorted"


def test_the_predictor_and_predict_take_the_same_spans_out_of_the_same_model(ruler_model_dir, schema):
    predictor = load_predictor(ruler_model_dir, schema)
    (scored,) = predictor.predict([TEXT])
    (predicted,) = predict(load_pipeline(ruler_model_dir), [AnnotatedDoc("d", TEXT)], "model")
    assert scored == scored_spans(load_pipeline(ruler_model_dir)(TEXT))
    assert predicted.spans == tuple(sorted({span for span, _ in scored})) and len(predicted.spans) == 3


@pytest.mark.slow
def test_nested_cross_validation_scores_the_spans_the_saved_model_predicts(project_root, schema, tmp_path):
    nlp = train_pipeline(articles()[:2], tiny_config(project_root, tmp_path), LABELS)
    (_, scored), *_ = scored_predictions(nlp, articles()[2:], 0.2)
    with_thresholds(nlp, {label: 0.2 for label in LABELS})
    nlp.to_disk(tmp_path / "model")
    (saved,) = load_predictor(tmp_path / "model", schema).predict([articles()[2].text])
    assert [(span, round(score, 5)) for span, score in scored] == [(span, round(score, 5)) for span, score in saved]
    assert scored, "the tiny model predicts spans at this threshold"


# --- bounded batches -------------------------------------------------------------------------------

SEEN_BATCHES: list[int] = []  # tokens per batch as the pipeline's last component received them


@spacy.Language.factory("annotate_test_batch_recorder")
def _batch_recorder(nlp, name):
    return _BatchRecorder()


class _BatchRecorder:
    """A pipeline component that notes how many tokens each batch it is handed holds."""

    def __call__(self, doc):
        SEEN_BATCHES.append(len(doc))
        return doc

    def pipe(self, stream, batch_size=128):
        from spacy.util import minibatch

        for batch in minibatch(stream, size=batch_size):
            SEEN_BATCHES.append(sum(len(doc) for doc in batch))
            yield from batch


@pytest.fixture
def recording_model_dir(tmp_path):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "sc"})
    ruler.add_patterns([{"label": "ACTOR", "pattern": "Hamas"}])
    nlp.add_pipe("annotate_test_batch_recorder")
    nlp.to_disk(tmp_path / "recording")
    return tmp_path / "recording"


def _texts(count: int, length: int) -> list[str]:
    return [" ".join(["Hamas"] + ["word"] * (length - 1 - number % 3)) for number in range(count)]


def test_a_predictor_holds_at_most_the_word_budget_whatever_the_number_of_texts(
    recording_model_dir, schema, monkeypatch
):
    monkeypatch.setattr(model, "BATCH_WORDS", 100)
    predictor = load_predictor(recording_model_dir, schema)
    for count in (10, 300):
        SEEN_BATCHES.clear()
        texts = _texts(count, 40)
        found = predictor.predict(texts)
        assert [len(spans) for spans in found] == [1] * count
        assert max(SEEN_BATCHES) <= 100  # 2 articles of ~40 words per batch, at 10 articles as at 300
        assert sum(SEEN_BATCHES) == sum(len(text.split()) for text in texts)
    assert len(SEEN_BATCHES) >= 300 // 2


def test_a_text_longer_than_the_budget_goes_alone_and_a_stream_is_read_one_batch_ahead(recording_model_dir, schema):
    predictor = load_predictor(recording_model_dir, schema)
    texts = _texts(5, 30) + _texts(1, 500) + _texts(5, 30)
    read = []

    def source():
        for text in texts:
            read.append(text)
            yield text

    SEEN_BATCHES.clear()
    stream = predictor.stream(source(), batch_words=100)
    first = next(stream)
    assert first and len(read) <= 5  # the first batch (3 texts of ~30 words) and the one that did not fit
    rest = list(stream)
    assert len(rest) + 1 == len(texts)
    assert 500 in SEEN_BATCHES and all(seen <= 100 for seen in SEEN_BATCHES if seen != 500)


def test_evaluate_predicts_in_word_batches_too(recording_model_dir, monkeypatch):
    monkeypatch.setattr(model, "BATCH_WORDS", 100)
    nlp = load_pipeline(recording_model_dir)
    docs = [AnnotatedDoc(f"a{number}", text, ()) for number, text in enumerate(_texts(20, 40))]
    SEEN_BATCHES.clear()
    predicted = predict(nlp, docs, "test")
    assert [doc.id for doc in predicted] == [doc.id for doc in docs]
    assert max(SEEN_BATCHES) <= 100
