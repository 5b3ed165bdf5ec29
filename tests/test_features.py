"""Word-cluster vectors (annotate.cluster_vectors.v1): words used alike get close vectors, and it is repeatable."""

from __future__ import annotations

import numpy as np
import pytest
import spacy

from annotate.features import CALLBACK, cluster_table, create_cluster_vectors

pytest.importorskip("spacy_lookups_data")


@pytest.fixture(scope="module")
def nlp():
    return create_cluster_vectors(words=30000, width=64, seed=0)(spacy.blank("en"))


def _similarity(nlp, first: str, second: str) -> float:
    return float(nlp.vocab[first].vector @ nlp.vocab[second].vector)


def test_words_of_one_kind_are_closer_than_words_of_different_kinds(nlp):
    assert nlp.vocab.vectors.shape == (30000, 64)
    assert _similarity(nlp, "Egypt", "Israel") > _similarity(nlp, "Egypt", "said") + 0.5
    assert _similarity(nlp, "troops", "soldiers") > _similarity(nlp, "troops", "said") + 0.5
    assert _similarity(nlp, "demanded", "insisted") > _similarity(nlp, "demanded", "Egypt") + 0.5


def test_the_table_is_the_same_every_time_and_depends_on_the_seed():
    keys, vectors = cluster_table("en", 1000, 16, 0)
    cluster_table.cache_clear()
    again_keys, again = cluster_table("en", 1000, 16, 0)
    other_keys, other = cluster_table("en", 1000, 16, 1)
    assert np.array_equal(keys, again_keys) and np.array_equal(vectors, again)
    assert np.array_equal(keys, other_keys) and not np.array_equal(vectors, other)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.all(np.isclose(norms, 1.0, atol=1e-5) | (norms == 0))  # 0: a path too short for any prefix
    assert np.mean(norms > 0) > 0.9


def test_the_callback_is_registered_for_configs():
    assert spacy.registry.callbacks.get(CALLBACK) is create_cluster_vectors
