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


def test_the_table_is_built_once_and_read_back_from_the_cache_by_the_next_process(tmp_path, monkeypatch):
    """What a second training process does: the cache file (named by the lookups version) instead of a rebuild."""
    from importlib.metadata import version

    import annotate.features as features

    monkeypatch.setenv("ANNOTATE_CACHE_DIR", str(tmp_path))
    cluster_table.cache_clear()
    keys, vectors = cluster_table("en", 500, 8, 0)
    (cached,) = tmp_path.iterdir()
    assert cached == features.cache_path("en", 500, 8, 0)
    assert f"lookups{version('spacy-lookups-data')}" in cached.name and not list(tmp_path.glob(".*"))

    def no_rebuild(*args):
        raise AssertionError("the cached table must be read, not rebuilt")

    monkeypatch.setattr(features, "build_cluster_table", no_rebuild)
    cluster_table.cache_clear()
    again_keys, again = cluster_table("en", 500, 8, 0)
    assert np.array_equal(keys, again_keys) and np.array_equal(vectors, again)
    cluster_table.cache_clear()


def test_a_damaged_cache_file_is_rebuilt_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATE_CACHE_DIR", str(tmp_path))
    from annotate.features import build_cluster_table, cache_path

    path = cache_path("en", 300, 8, 0)
    path.write_bytes(b"half a file")
    cluster_table.cache_clear()
    keys, vectors = cluster_table("en", 300, 8, 0)
    built_keys, built = build_cluster_table("en", 300, 8, 0)
    assert np.array_equal(keys, built_keys) and np.array_equal(vectors, built)
    with np.load(path) as saved:
        assert np.array_equal(saved["vectors"], built)
    cluster_table.cache_clear()


def test_an_unwritable_cache_folder_costs_only_the_rebuild(tmp_path, monkeypatch):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("ANNOTATE_CACHE_DIR", str(blocker / "cache"))
    cluster_table.cache_clear()
    keys, vectors = cluster_table("en", 200, 8, 0)
    assert len(keys) == 200 and vectors.shape == (200, 8)
    cluster_table.cache_clear()
