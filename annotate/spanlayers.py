"""The span categorizer's network, with each candidate's summary computed without copying its tokens.

spaCy's ``spacy.SpanCategorizer.v1`` copies every token of every candidate into one array
(``extract_spans``, a Python loop over the candidates) and then reduces each copy to its last,
first, mean and max vector. Our suggester offers ~1.7 candidates per token, ~8 tokens long, so
that copy is ~14 token vectors per token: on the gold it took more time than the rest of the
span categorizer together. :func:`span_summaries` gives the very same four vectors from the
token vectors directly: first and last by index, the mean from running sums, the max from a
sparse table (the max over two overlapping power-of-two windows), ties going to the earlier
token as in thinc's ``reduce_max``. The layers after it (spaCy's ``mean_max_reducer`` hidden
layer and the scorer) are unchanged, so a config moves to this architecture without retuning.

Registered as ``annotate.SpanCategorizer.v1`` (also an entry point), so a saved pipeline loads
with plain ``spacy.load`` wherever this package is installed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import spacy
from spacy.tokens import Doc
from thinc.api import Maxout, Model, chain, list2ragged, to_numpy, with_getitem
from thinc.types import Floats2d, Ragged

ARCHITECTURE = "annotate.SpanCategorizer.v1"


@spacy.registry.architectures(ARCHITECTURE)
def build_span_categorizer(
    tok2vec: Model[list[Doc], list[Floats2d]],
    hidden_size: int,
    scorer: Model[Floats2d, Floats2d],
) -> Model[tuple[list[Doc], Ragged], Floats2d]:
    """spaCy's span categorizer with ``spacy.mean_max_reducer.v1``, its candidates summarized in place."""
    reducer = Maxout(nO=hidden_size, normalize=True, dropout=0.0)
    network = chain(with_getitem(0, chain(tok2vec, list2ragged())), span_summaries(), reducer, scorer)
    model = Model("annotate_span_categorizer", _categorize, layers=[network], init=_initialize)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("reducer", reducer)
    model.set_ref("scorer", scorer)
    return model


PREDICT_CANDIDATES = 4096  # candidates summarized and scored at a time when predicting


def _initialize(model: Model, X=None, Y=None) -> None:
    model.layers[0].initialize(X=X, Y=Y)


def _categorize(model: Model, inputs: tuple[list[Doc], Ragged], is_train: bool) -> tuple[Floats2d, Callable]:
    """Training: the whole network on the batch. Predicting: a few thousand candidates at a time.

    A batch of 64 articles holds ~100,000 candidates; summarizing and scoring them all at once
    makes arrays of hundreds of MB that the kernel must hand over and zero page by page (17% of
    the model's CPU time in a profile). The hidden layer and the scorer work row by row, so the
    scores are the same.
    """
    network = model.layers[0]
    if is_train:
        return network(inputs, is_train)
    tokens, spans = network.layers[0].predict(inputs)
    head = chain(model.get_ref("reducer"), model.get_ref("scorer"))
    per_doc = model.ops.to_numpy(spans.lengths)
    scores = None
    for docs in _doc_groups(per_doc, PREDICT_CANDIDATES):
        summary = _summaries(tokens, spans, docs, with_positions=False)[0]
        scored = model.ops.to_numpy(head.predict(model.ops.asarray2f(summary)))
        if scores is None:
            scores = np.empty((len(spans.dataXd), scored.shape[1]), dtype="float32")
        first = int(per_doc[: docs.start].sum())
        scores[first : first + len(scored)] = scored
    if scores is None:
        return network.predict(inputs), lambda d_scores: d_scores
    return model.ops.asarray2f(scores), lambda d_scores: d_scores


def _doc_groups(per_doc: np.ndarray, limit: int):
    """Consecutive docs (a ``slice`` each) holding up to ``limit`` candidates together (more for one big doc)."""
    start, held = 0, 0
    for doc, count in enumerate(per_doc.tolist()):
        if held and held + count > limit:
            yield slice(start, doc)
            start, held = doc, 0
        held += count
    if held:
        yield slice(start, len(per_doc))


def span_summaries() -> Model[tuple[Ragged, Ragged], Floats2d]:
    """(token vectors per doc, (start, end) per candidate per doc) → last, first, mean and max of each candidate."""
    return Model("span_summaries", _forward)


def _forward(model: Model, inputs: tuple[Ragged, Ragged], is_train: bool) -> tuple[Floats2d, Callable]:
    tokens, spans = inputs
    total, width = tokens.dataXd.shape
    summary, which, starts, ends = _summaries(tokens, spans, slice(0, len(spans.lengths)), with_positions=is_train)
    if len(summary) == 0:
        return model.ops.alloc2f(0, 4 * width), lambda d_out: (
            Ragged(model.ops.alloc2f(total, width), tokens.lengths),
            spans,
        )
    lengths = ends - starts

    def backprop(d_summary: Floats2d) -> tuple[Ragged, Ragged]:
        d_summary = model.ops.to_numpy(d_summary)
        d_last, d_first, d_mean, d_max = (d_summary[:, k * width : (k + 1) * width] for k in range(4))
        columns = np.arange(width)
        d_tokens = _scatter(total, width, ends - 1, d_last, columns)
        d_tokens += _scatter(total, width, starts, d_first, columns)
        d_tokens += _scatter(total, width, which, d_max, columns)
        share = d_mean / lengths[:, None]
        steps = _scatter(total + 1, width, starts, share, columns) - _scatter(total + 1, width, ends, share, columns)
        d_tokens += np.cumsum(steps, axis=0)[:total]
        return Ragged(model.ops.asarray2f(d_tokens.astype("float32")), tokens.lengths), spans

    return model.ops.asarray2f(summary), backprop


def _summaries(
    tokens: Ragged, spans: Ragged, docs: slice, *, with_positions: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Last, first, mean and max of the candidates of ``docs``; for training also where each max came from.

    Also the candidates' (start, end) in the batch's flat token array. One doc at a time: its
    running sums and max table stay small enough for the cache.
    """
    data = np.ascontiguousarray(to_numpy(tokens.dataXd), dtype="float32")
    width = data.shape[1]
    doc_starts = np.concatenate([[0], np.cumsum(to_numpy(tokens.lengths), dtype="int64")])
    span_starts = np.concatenate([[0], np.cumsum(to_numpy(spans.lengths), dtype="int64")])
    bounds = np.asarray(to_numpy(spans.dataXd), dtype="int64").reshape(-1, 2)
    low, high = int(span_starts[docs.start]), int(span_starts[docs.stop])
    shift = np.repeat(doc_starts[docs.start : docs.stop], to_numpy(spans.lengths)[docs])
    starts, ends = bounds[low:high, 0] + shift, bounds[low:high, 1] + shift
    if np.any(ends <= starts):
        raise ValueError("span_summaries: every candidate needs at least one token")
    summary = np.empty((high - low, 4 * width), dtype="float32")
    which = np.empty((high - low, width), dtype="int64") if with_positions else None
    for doc in range(docs.start, docs.stop):
        rows = slice(int(span_starts[doc]) - low, int(span_starts[doc + 1]) - low)
        if rows.start == rows.stop:
            continue
        offset = int(doc_starts[doc])
        vectors = data[offset : int(doc_starts[doc + 1])]
        first, end = starts[rows] - offset, ends[rows] - offset
        summary[rows, :width] = vectors[end - 1]
        summary[rows, width : 2 * width] = vectors[first]
        running = np.zeros((len(vectors) + 1, width), dtype="float64")
        np.cumsum(vectors, axis=0, out=running[1:])
        summary[rows, 2 * width : 3 * width] = (running[end] - running[first]) / (end - first)[:, None]
        maxima, positions = _span_max(vectors, first, end, with_positions=with_positions)
        summary[rows, 3 * width :] = maxima
        if which is not None:
            which[rows] = positions + offset
    return summary, which, starts, ends


def _span_max(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray, *, with_positions: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each candidate's max per column, and (for training) the token it came from, the earliest on a tie.

    Level k of the sparse table holds, for every token i, the max over tokens i .. i + 2**k - 1; a
    candidate of length n is covered by the two level-floor(log2 n) windows at its start and end.
    """
    lengths = ends - starts
    levels = np.floor(np.log2(lengths)).astype("int64")
    maxima = np.empty((len(starts), data.shape[1]), dtype=data.dtype)
    which = np.empty(maxima.shape, dtype="int64") if with_positions else None
    values = data
    positions = np.broadcast_to(np.arange(len(data))[:, None], data.shape) if with_positions else None
    for level in range(int(levels.max()) + 1):
        if level > 0:
            half = 1 << (level - 1)
            left, right = values[:-half], values[half:]
            if with_positions:
                earlier = left >= right
                positions = np.where(earlier, positions[:-half], positions[half:])
            values = np.maximum(left, right)
        chosen = np.flatnonzero(levels == level)
        if len(chosen) == 0:
            continue
        head, tail = starts[chosen], ends[chosen] - (1 << level)
        a, b = values[head], values[tail]
        maxima[chosen] = np.maximum(a, b)
        if with_positions:
            which[chosen] = np.where(a >= b, positions[head], positions[tail])
    return maxima, which


def _scatter(rows: int, width: int, where: np.ndarray, values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A (rows, width) array holding the sum of ``values`` added at row ``where`` (per candidate, or per cell)."""
    cells = (where[:, None] if where.ndim == 1 else where) * width + columns
    summed = np.bincount(cells.ravel(), weights=values.ravel(), minlength=rows * width)
    return summed.reshape(rows, width)
