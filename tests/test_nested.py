"""The honest protocol: nested cross-validation never lets a held-out article shape a choice.

Real spaCy training on three tiny hand-made articles (tests/nested_fixture.py, about a second a
model); spies wrap the trainer, the threshold choice and the fold choice to record which
articles each of them saw.
"""

from __future__ import annotations

import math

import pytest

import annotate.nested as nested
import annotate.train as train_module
from annotate.errors import TrainingError
from annotate.model import predict
from annotate.nested import (
    FoldChoice,
    best_thresholds,
    choose_in_fold,
    scored_predictions,
    thresholded,
    with_thresholds,
)
from annotate.records import AnnotatedDoc, Span
from annotate.train import cross_validate, train_pipeline
from tests.nested_fixture import LABELS, articles, tiny_config

RULES = [{"label": "ACTOR", "pattern": "Hamas"}]


@pytest.fixture(scope="module")
def config(project_root, tmp_path_factory):
    return tiny_config(project_root, tmp_path_factory.mktemp("configs"))


@pytest.fixture(scope="module")
def trained(config):
    """One tiny model on two articles, and the third article it never saw."""
    docs = articles()
    return train_pipeline(docs[:2], config, LABELS), docs[2]


def test_choose_in_fold_refuses_training_articles_that_include_the_held_out_one(config):
    def trainer(docs, config):
        raise AssertionError("nothing may be trained once the held-out article is among the training articles")

    docs = articles()
    with pytest.raises(TrainingError, match="held-out article\\(s\\) a2 among the articles a choice may see"):
        choose_in_fold(docs, ["a2"], [config], LABELS, trainer)


def test_choose_in_fold_needs_two_training_articles(config):
    with pytest.raises(TrainingError, match="at least 2 training articles"):
        choose_in_fold(articles()[:1], ["a2"], [config], LABELS, lambda docs, config: None)


def test_nested_cross_validation_never_shows_a_choice_its_held_out_article(config, monkeypatch):
    """Every training, threshold choice and fold choice of an outer fold leaves its held-out article out;
    the held-out article is predicted only by the model trained without it; inner models are shared."""
    docs = articles()
    current: dict = {"held_out": None}
    trainings: list[tuple[object, tuple[str, ...]]] = []  # (held-out of the outer fold, articles trained on)
    trained_on: dict[int, tuple[str, ...]] = {}  # id(pipeline) -> articles it was trained on
    threshold_choices: list[tuple[object, set[str]]] = []
    fold_choices: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    predicted: list[tuple[str, tuple[str, ...], str]] = []  # (article, articles its model saw, source)

    real_choose, real_train, real_best, real_predict = (
        train_module.choose_in_fold,
        train_module.train_pipeline,
        nested.best_thresholds,
        train_module.predict,
    )

    def spy_choose(train_docs, held_out, *args, **kwargs):
        current["held_out"] = tuple(held_out)
        fold_choices.append((tuple(held_out), tuple(doc.id for doc in train_docs)))
        return real_choose(train_docs, held_out, *args, **kwargs)

    def spy_train(train_docs, *args, **kwargs):
        nlp = real_train(train_docs, *args, **kwargs)
        ids = tuple(sorted(doc.id for doc in train_docs))
        trainings.append((current["held_out"], ids))
        trained_on[id(nlp)] = ids
        return nlp

    def spy_best(gold, scored, *args, **kwargs):
        seen = {doc.id for doc in gold} | {doc.id for doc, _ in scored}
        threshold_choices.append((current["held_out"], seen))
        return real_best(gold, scored, *args, **kwargs)

    def spy_predict(nlp, test_docs, source):
        for doc in test_docs:
            predicted.append((doc.id, trained_on.get(id(nlp), ()), source))
        return real_predict(nlp, test_docs, source)

    monkeypatch.setattr(train_module, "choose_in_fold", spy_choose)
    monkeypatch.setattr(train_module, "train_pipeline", spy_train)
    monkeypatch.setattr(nested, "best_thresholds", spy_best)
    monkeypatch.setattr(train_module, "predict", spy_predict)

    result = cross_validate(docs, config_path=config, patterns=RULES, labels=LABELS, nested=True)

    ids = [doc.id for doc in docs]
    assert [held_out for held_out, _ in fold_choices] == [("a1",), ("a2",), ("a3",)]
    for held_out, seen in fold_choices:
        assert set(held_out).isdisjoint(seen) and sorted(seen) == sorted(set(ids) - set(held_out))
    assert len(threshold_choices) == 3
    for held_out, seen in threshold_choices:
        assert set(held_out).isdisjoint(seen)
    for held_out, trained_ids in trainings:
        assert set(held_out).isdisjoint(trained_ids), (held_out, trained_ids)
    for choice in result.choices:
        assert set(choice.held_out).isdisjoint(choice.seen)
    for doc_id, seen, source in predicted:
        if source.startswith(("model", "both")):
            assert seen == tuple(sorted(set(ids) - {doc_id})), (doc_id, seen, source)
    assert sorted(doc_id for doc_id, _, source in predicted if source.startswith("model")) == ids

    # shared inner models: C(3, 1) one-article models (each serves two outer folds) + 3 outer models
    n = len(docs)
    assert len(trainings) == math.comb(n, n - 2) + n == 6
    assert len({trained_ids for _, trained_ids in trainings}) == len(trainings)
    assert [choice.held_out for choice in result.choices] == [("a1",), ("a2",), ("a3",)]
    assert all(set(choice.thresholds) == set(LABELS) for choice in result.choices)


def test_each_candidate_config_gets_its_inner_models_and_only_the_chosen_one_an_outer_model(
    config, project_root, tmp_path, monkeypatch
):
    other = tiny_config(project_root, tmp_path, name="other.cfg", steps=4)
    trainings: list[tuple[str, tuple[str, ...]]] = []
    real_train = train_module.train_pipeline

    def spy_train(train_docs, config_path, *args, **kwargs):
        trainings.append((str(config_path), tuple(sorted(doc.id for doc in train_docs))))
        return real_train(train_docs, config_path, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_pipeline", spy_train)
    events = []
    result = cross_validate(
        articles(),
        config_path=config,
        patterns=RULES,
        labels=LABELS,
        nested=True,
        configs=[config, other],
        systems=("model",),
        progress=events.append,
    )
    n = len(articles())
    assert len(trainings) == 2 * math.comb(n, n - 2) + n
    assert len(set(trainings)) == len(trainings)
    outer = [(path, ids) for path, ids in trainings if len(ids) == n - 1]
    assert [path for path, _ in outer] == [choice.config for choice in result.choices]
    assert all(set(choice.inner_f1) == {str(config), str(other)} for choice in result.choices)
    messages = [event.message for event in events if event.message]
    assert "fold 1/3, inner 1/2 (tiny.cfg): training without a1, a2" in messages
    assert "fold 2/3, inner 1/2 (other.cfg): reusing the model trained without a2, a1" in messages


def test_best_thresholds_chooses_each_label_on_its_own():
    text = "Hamas said 57 people died and Israel demanded a halt now."
    gold = AnnotatedDoc(
        "d",
        text,
        (
            Span.from_offsets(text, 0, 5, "ACTOR"),
            Span.from_offsets(text, 11, 20, "FIGURE"),
            Span.from_offsets(text, 0, 10, "ATTRIBUTION"),
        ),
    )
    scored = [
        (
            gold,
            (
                (Span.from_offsets(text, 0, 5, "ACTOR"), 0.45),  # right: kept at 0.2-0.4
                (Span.from_offsets(text, 30, 36, "ACTOR"), 0.25),  # wrong: dropped from 0.3
                (Span.from_offsets(text, 11, 20, "FIGURE"), 0.65),  # right: kept up to 0.6
                (Span.from_offsets(text, 11, 13, "FIGURE"), 0.55),  # wrong: dropped from 0.6
                (Span.from_offsets(text, 0, 10, "ATTRIBUTION"), 0.25),  # right, low: only 0.2 keeps it
            ),
        )
    ]
    chosen, micro = best_thresholds([gold], scored, LABELS, grid=(0.5, 0.2, 0.3, 0.4, 0.6, 0.7))
    assert chosen == {"ACTOR": 0.3, "FIGURE": 0.6, "ATTRIBUTION": 0.2, "DEMAND": 0.2}  # ties go to the lower
    assert micro == 1.0
    kept = thresholded(scored, chosen, default=0.5)[0].spans
    assert kept == gold.spans


def test_thresholded_scores_are_what_the_pipeline_predicts_at_those_thresholds(trained):
    """The claim scored_predictions' docstring makes, on a real trained model with the per-label filter."""
    nlp, unseen = trained
    scored = scored_predictions(nlp, [unseen], floor=0.2)
    scores = {label: sorted(score for span, score in scored[0][1] if span.label == label) for label in LABELS}
    assert all(scores.values()), scores
    # per label a cut in the middle of its own scores, so every label loses some spans and keeps some
    thresholds = {label: round(values[len(values) // 2], 6) for label, values in scores.items()}
    expected = thresholded(scored, thresholds, default=0.2)[0].spans
    assert 0 < len(expected) < len(scored[0][1])
    assert predict(with_thresholds(nlp, thresholds), [unseen], "model")[0].spans == expected
    assert nlp.get_pipe("spancat").cfg["threshold"] == min(thresholds.values())
    assert nlp.config["components"]["best_per_label"]["thresholds"] == thresholds


def test_fold_choice_is_plain_data():
    choice = FoldChoice(("a1",), ("a2", "a3"), "c.cfg", {"ACTOR": 0.3}, {"c.cfg": 0.5})
    assert choice.to_dict() == {
        "held_out": ("a1",),
        "seen": ("a2", "a3"),
        "config": "c.cfg",
        "thresholds": {"ACTOR": 0.3},
        "inner_f1": {"c.cfg": 0.5},
    }
