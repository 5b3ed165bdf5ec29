"""The span summaries of ``annotate.SpanCategorizer.v1`` equal spaCy's extract-then-reduce, forward and backward.

spaCy's own layers (``extract_spans`` then last/first/mean/max reducers, as ``spacy.SpanCategorizer.v1``
with ``spacy.mean_max_reducer.v1`` chains them) are the oracle, on random batches of docs and
candidates, ties included (the max's gradient goes to the earliest token, as thinc's does).
"""

from __future__ import annotations

import numpy as np
import spacy
from hypothesis import given
from hypothesis import strategies as st
from spacy.ml.extract_spans import extract_spans
from thinc.api import NumpyOps, chain, concatenate, reduce_first, reduce_last, reduce_max, reduce_mean
from thinc.types import Ragged

from annotate.spanlayers import ARCHITECTURE, span_summaries

ops = NumpyOps()


@st.composite
def batches(draw):
    """Token vectors of a few docs (some empty, some with tied values) and candidates inside each doc."""
    doc_lengths = draw(st.lists(st.integers(0, 70), min_size=1, max_size=4))
    width = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((sum(doc_lengths), width)).astype("float32")
    if draw(st.booleans()):
        data = np.round(data)  # many ties
    rows, counts = [], []
    for length in doc_lengths:
        spans = draw(st.lists(st.tuples(st.integers(0, 69), st.integers(1, 40)), max_size=25)) if length else []
        spans = [(start % length, min(length, start % length + size)) for start, size in spans]
        rows.extend(spans)
        counts.append(len(spans))
    bounds = np.array(rows, dtype="int32").reshape(-1, 2)
    tokens = Ragged(data, ops.asarray1i(doc_lengths))
    return tokens, Ragged(ops.asarray2i(bounds), ops.asarray1i(counts)), rng


@given(batches())
def test_span_summaries_equal_spacys_extract_and_reduce(batch):
    tokens, spans, rng = batch
    got, backprop = span_summaries()((tokens, spans), is_train=True)
    assert got.shape == (len(spans.dataXd), 4 * tokens.dataXd.shape[1])
    if len(spans.dataXd) == 0:
        assert backprop(got)[0].dataXd.shape == tokens.dataXd.shape
        return  # spaCy's reducers refuse a batch without candidates: nothing to compare with
    reference = chain(extract_spans(), concatenate(reduce_last(), reduce_first(), reduce_mean(), reduce_max()))
    expected, expected_backprop = reference((tokens, spans), is_train=True)
    width = tokens.dataXd.shape[1]
    np.testing.assert_array_equal(got[:, : 2 * width], expected[:, : 2 * width])  # last, first: copies
    np.testing.assert_allclose(got[:, 2 * width : 3 * width], expected[:, 2 * width : 3 * width], atol=1e-5)
    np.testing.assert_array_equal(got[:, 3 * width :], expected[:, 3 * width :])  # max: a copy too
    d_out = rng.standard_normal(got.shape).astype("float32")
    np.testing.assert_allclose(backprop(d_out)[0].dataXd, expected_backprop(d_out)[0].dataXd, atol=1e-4)


def test_architecture_is_registered_for_configs_and_saved_pipelines():
    """The config names it; a saved pipeline loads it by name through spaCy's registry."""
    assert spacy.registry.architectures.get(ARCHITECTURE) is not None


def test_every_annotating_listener_reads_vectors_its_upstream_sets_during_training(config):
    """A component that annotates during training through a tok2vec listener needs that tok2vec annotating too.

    Otherwise its listener reads an empty ``doc.tensor`` when it annotates, and what it proposes
    to spancat is noise (the stall that once kept the two components on separate tok2vecs).
    """
    from spacy import util

    loaded = util.load_config(config, interpolate=True)
    annotating = loaded["training"]["annotating_components"]
    for name in annotating:
        model = loaded["components"][name]["model"]
        listener = model.get("tok2vec", {})
        if listener.get("@architectures", "").startswith("spacy.Tok2VecListener"):
            assert listener["upstream"] in annotating, f"{name} annotates but {listener['upstream']} does not"
    assert loaded["components"]["spancat"]["model"]["@architectures"] == ARCHITECTURE


def test_predicting_a_few_candidates_at_a_time_gives_the_scores_of_the_whole_batch(monkeypatch):
    """The predict path summarizes and scores groups of docs; the scores equal the whole network's."""
    from spacy.ml.models import build_linear_logistic
    from spacy.ml.models.tok2vec import build_hash_embed_cnn_tok2vec

    import annotate.spanlayers as spanlayers

    nlp = spacy.blank("en")
    docs = [nlp.make_doc(text) for text in ("Hamas said 57 people died.", "", "Israel demanded a halt to the war now.")]
    rows, counts = [], []
    for doc in docs:
        found = [(start, end) for start in range(len(doc)) for end in range(start + 1, min(len(doc), start + 4) + 1)]
        rows.extend(found)
        counts.append(len(found))
    spans = Ragged(ops.asarray2i(np.array(rows, dtype="int32")), ops.asarray1i(counts))
    tok2vec = build_hash_embed_cnn_tok2vec(
        width=8,
        depth=1,
        embed_size=100,
        window_size=1,
        maxout_pieces=2,
        subword_features=True,
        pretrained_vectors=None,
    )
    model = spacy.registry.architectures.get(ARCHITECTURE)(tok2vec, 6, build_linear_logistic(nO=3))
    model.initialize(X=(docs, spans), Y=model.ops.alloc2f(len(rows), 3))
    whole = model.layers[0].predict((docs, spans))
    monkeypatch.setattr(spanlayers, "PREDICT_CANDIDATES", 5)  # several groups, one doc larger than a group
    np.testing.assert_allclose(model.predict((docs, spans)), whole, rtol=1e-6, atol=1e-7)
    assert model.predict((docs, spans)).shape == (len(rows), 3)
