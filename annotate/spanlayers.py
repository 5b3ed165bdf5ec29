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
from thinc.api import Maxout, Model, chain, list2ragged, with_getitem
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
    model = chain(
        with_getitem(0, chain(tok2vec, list2ragged())),
        span_summaries(),
        reducer,
        scorer,
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("reducer", reducer)
    model.set_ref("scorer", scorer)
    return model


def span_summaries() -> Model[tuple[Ragged, Ragged], Floats2d]:
    """(token vectors per doc, (start, end) per candidate per doc) → last, first, mean and max of each candidate."""
    return Model("span_summaries", _forward)


def _forward(model: Model, inputs: tuple[Ragged, Ragged], is_train: bool) -> tuple[Floats2d, Callable]:
    tokens, spans = inputs
    data = np.ascontiguousarray(model.ops.to_numpy(tokens.dataXd), dtype="float32")
    total, width = data.shape
    starts, ends = _flat_bounds(model.ops.to_numpy(tokens.lengths), model.ops.to_numpy(spans.dataXd), spans.lengths)
    count = len(starts)
    if count == 0:
        return model.ops.alloc2f(0, 4 * width), lambda d_out: (
            Ragged(model.ops.alloc2f(total, width), tokens.lengths),
            spans,
        )
    lengths = ends - starts
    if lengths.min() <= 0:
        raise ValueError("span_summaries: every candidate needs at least one token")
    running = np.zeros((total + 1, width), dtype="float64")
    np.cumsum(data, axis=0, out=running[1:])
    mean = ((running[ends] - running[starts]) / lengths[:, None]).astype("float32")
    del running
    maxima, which = _span_max(data, starts, ends, with_positions=is_train)
    summary = np.hstack([data[ends - 1], data[starts], mean, maxima])

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


def _flat_bounds(doc_lengths: np.ndarray, bounds: np.ndarray, spans_per_doc) -> tuple[np.ndarray, np.ndarray]:
    """Candidates' (start, end) in the batch's flat token array (they arrive per doc)."""
    per_doc = np.asarray(spans_per_doc, dtype="int64")
    offsets = np.concatenate([[0], np.cumsum(doc_lengths, dtype="int64")[:-1]])
    shift = np.repeat(offsets, per_doc)
    bounds = np.asarray(bounds, dtype="int64").reshape(-1, 2)
    return bounds[:, 0] + shift, bounds[:, 1] + shift


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
