"""Gold vs predicted spans → numbers you can trust. Never prints.

Four matching schemas, all per label plus micro and macro:

* ``strict``: same boundaries and same label, counted over sets exactly as spaCy's
  ``Scorer.score_spans`` does (the tests hold us to it);
* ``exact``, ``partial``, ``type``: the SemEval-2013 schemas with nervaluate's greedy matching
  (predictions in order, each takes the first unmatched gold span it may take; ``partial`` counts
  half). The tests hold us to nervaluate's figures.

Matching only ever happens between spans that overlap, so the work is split into clusters of
overlapping spans: clusters of one gold and one predicted span (nearly all of them) are decided
with numpy in one go, the rest by the same greedy loop nervaluate runs. 95% confidence intervals
come from a bootstrap that resamples whole articles, because spans within an article are not
independent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from annotate.errors import EvaluationError
from annotate.memory import cycle_collector_paused
from annotate.records import AnnotatedDoc, Span

SCHEMAS = ("strict", "exact", "partial", "type")
CATEGORIES = ("correct", "incorrect", "partial", "missed", "spurious")
MICRO = "micro"
MACRO = "macro"
MIN_OVERLAP_PERCENT = 1.0  # nervaluate's default threshold for "overlaps enough"
_C, _I, _P, _M, _S = range(5)
_GREEDY = ("exact", "partial", "type")


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    precision_ci: tuple[float, float] = (float("nan"), float("nan"))
    recall_ci: tuple[float, float] = (float("nan"), float("nan"))
    f1_ci: tuple[float, float] = (float("nan"), float("nan"))

    def to_dict(self) -> dict:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "predicted": self.predicted,
            "precision_ci": _interval(self.precision_ci),
            "recall_ci": _interval(self.recall_ci),
            "f1_ci": _interval(self.f1_ci),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Score:
        """A score as ``metrics.json`` holds it (a ``null`` interval was not computed)."""
        nan = (float("nan"), float("nan"))
        intervals = [tuple(data.get(key) or nan) for key in ("precision_ci", "recall_ci", "f1_ci")]
        numbers = (float(data[key]) for key in ("precision", "recall", "f1"))
        return cls(*numbers, int(data["support"]), int(data["predicted"]), *intervals)


def _interval(bounds: tuple[float, float]) -> list[float] | None:
    """JSON has no NaN: an interval that was not computed is ``null``."""
    return None if any(math.isnan(b) for b in bounds) else list(bounds)


class SpanError(NamedTuple):
    """A false positive or false negative under strict matching, with the text around it.

    A named tuple rather than a frozen dataclass: a large evaluation builds hundreds of thousands
    of them, and a tuple is built about 2.5 times faster (measured).
    """

    doc_id: str
    kind: str  # "false positive" or "false negative"
    span: Span
    left: str
    right: str

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "kind": self.kind, **self.span.to_dict(), "left": self.left, "right": self.right}

    @classmethod
    def from_dict(cls, data: dict) -> SpanError:
        return cls(str(data["doc_id"]), str(data["kind"]), Span.from_dict(data), str(data["left"]), str(data["right"]))


@dataclass
class Evaluation:
    """Scores per schema and label (plus ``micro``/``macro``), counts, confusions and errors."""

    labels: list[str]
    doc_ids: list[str]
    scores: dict[str, dict[str, Score]]
    counts: dict[str, dict[str, dict[str, int]]]
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[SpanError] = field(default_factory=list)
    bootstrap_samples: int = 0
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "labels": self.labels,
            "articles": self.doc_ids,
            "bootstrap": {"samples": self.bootstrap_samples, "seed": self.seed, "resampled": "articles", "level": 0.95},
            "scores": {s: {k: v.to_dict() for k, v in per.items()} for s, per in self.scores.items()},
            "counts": self.counts,
            "confusion": self.confusion,
            "errors": [error.to_dict() for error in self.errors],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        """One system's evaluation as ``metrics.json`` holds it, so reports can be rebuilt without re-scoring."""
        bootstrap = data.get("bootstrap") or {}
        return cls(
            labels=list(data["labels"]),
            doc_ids=list(data["articles"]),
            scores={s: {k: Score.from_dict(v) for k, v in per.items()} for s, per in data["scores"].items()},
            counts=data.get("counts") or {},
            confusion=data.get("confusion") or {},
            errors=[SpanError.from_dict(error) for error in data.get("errors") or []],
            bootstrap_samples=int(bootstrap.get("samples", 0)),
            seed=int(bootstrap.get("seed", 0)),
        )


@dataclass
class _Encoded:
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    label: np.ndarray


def _encode(docs: Sequence[AnnotatedDoc], label_index: dict[str, int], what: str) -> _Encoded:
    """Spans as arrays (doc number, start, end, label number); a span listed twice counts once, as for spaCy."""
    unknown = {span.label for doc in docs for span in doc.spans} - label_index.keys()
    if unknown:
        doc, span = next((d, s) for d in docs for s in d.spans if s.label in unknown)
        known = sorted(label_index)
        raise EvaluationError(f"{what} article {doc.id}: span {span.describe()} has a label outside {known}")
    flat: list[int] = []
    for number, doc in enumerate(docs):
        for start, end, label in dict.fromkeys((span.start, span.end, span.label) for span in doc.spans):
            flat += (number, start, end, label_index[label])
    array = np.array(flat, dtype=np.int64).reshape(-1, 4)
    bad = np.flatnonzero((array[:, 1] < 0) | (array[:, 2] <= array[:, 1]))
    if len(bad):
        number, start, end, label = array[bad[0]].tolist()
        span = Span(start, end, list(label_index)[label], docs[number].text[max(start, 0) : max(end, 0)])
        raise EvaluationError(f"{what} article {docs[number].id}: span {span.describe()} is empty or negative")
    return _Encoded(array[:, 0], array[:, 1], array[:, 2], array[:, 3])


def align_predictions(gold: Sequence[AnnotatedDoc], predicted: Sequence[AnnotatedDoc]) -> list[AnnotatedDoc]:
    """Predictions in gold's article order; the two sets must cover the same articles and texts."""
    by_id = {}
    for doc in predicted:
        if doc.id in by_id:
            raise EvaluationError(f"predictions: article {doc.id} appears twice")
        by_id[doc.id] = doc
    ids = [doc.id for doc in gold]
    if len(set(ids)) != len(ids):
        raise EvaluationError(f"gold: article {Counter(ids).most_common(1)[0][0]} appears twice")
    missing = [doc_id for doc_id in ids if doc_id not in by_id]
    if missing:
        raise EvaluationError(f"predictions lack {len(missing)} gold article(s), first {missing[0]}")
    extra = sorted(set(by_id) - set(ids))
    if extra:
        raise EvaluationError(f"predictions have {len(extra)} article(s) not in gold, first {extra[0]}")
    for doc in gold:
        if by_id[doc.id].text != doc.text:
            raise EvaluationError(f"predictions: article {doc.id} has different text than gold")
    return [by_id[doc_id] for doc_id in ids]


def _strict_counts(gold: _Encoded, pred: _Encoded, n_docs: int, n_labels: int):
    """Set-based strict counts per (doc, label): correct = tp, spurious = fp, missed = fn (as spaCy).

    Also returns, per gold and per predicted row, whether it has a strict match (for the error list).
    """
    width = int(max(gold.end.max(initial=0), pred.end.max(initial=0))) + 1
    positions = np.concatenate([gold.start * width + gold.end, pred.start * width + pred.end])
    _, position_code = np.unique(positions, return_inverse=True)
    n_codes = int(position_code.max(initial=-1)) + 1
    group = np.concatenate([gold.doc * n_labels + gold.label, pred.doc * n_labels + pred.label])
    keys = group * n_codes + position_code.reshape(-1)
    gold_rows, pred_rows = keys[: len(gold.doc)], keys[len(gold.doc) :]
    gold_keys, pred_keys = np.unique(gold_rows), np.unique(pred_rows)
    hit = np.isin(pred_keys, gold_keys, assume_unique=True)
    size = n_docs * n_labels
    tp = np.bincount(pred_keys[hit] // n_codes, minlength=size)
    fp = np.bincount(pred_keys[~hit] // n_codes, minlength=size)
    fn = np.bincount(gold_keys // n_codes, minlength=size) - tp
    counts = np.zeros((size, 5), dtype=np.int64)
    counts[:, _C], counts[:, _S], counts[:, _M] = tp, fp, fn
    gold_hit, pred_hit = np.isin(gold_rows, pred_keys), np.isin(pred_rows, gold_keys)
    return counts.reshape(n_docs, n_labels, 5), gold_hit, pred_hit


def _sufficient(p_start, p_end, g_start, g_end, min_percent: float):
    """nervaluate's test: the overlap covers at least ``min_percent`` of the gold span (floats as it computes)."""
    overlap = np.minimum(p_end, g_end) - np.maximum(p_start, g_start)
    return (overlap > 0) & ((overlap / (g_end - g_start)) * 100.0 >= min_percent)


def _greedy_cluster(gold: list[tuple], pred: list[tuple], min_percent: float) -> list[int]:
    """nervaluate's exact, partial and ent_type strategies on one cluster; spans are (start, end, label).

    Returns 15 counts: (correct, incorrect, partial, missed, spurious) for exact, partial, type.
    """
    # for each prediction, the gold spans it may take, in gold order: (index, same bounds, same label, distance)
    options = []
    for p_start, p_end, p_label in pred:
        mine = []
        for j, (g_start, g_end, g_label) in enumerate(gold):
            if p_start >= g_end or p_end <= g_start:
                continue
            if ((min(p_end, g_end) - max(p_start, g_start)) / (g_end - g_start)) * 100.0 < min_percent:
                continue
            same = p_start == g_start and p_end == g_end
            mine.append((j, same, p_label == g_label, abs(p_start - g_start) + abs(p_end - g_end)))
        options.append(mine)
    out = [0] * 15
    for schema, offset in ((0, 0), (1, 5)):  # exact and partial choose alike; they differ in what they call it
        taken: set[int] = set()
        for mine in options:
            choice = next((o for o in mine if o[1] and o[0] not in taken), None)
            if choice is not None:
                out[offset + _C] += 1
            else:
                choice = next((o for o in mine if o[0] not in taken), None)
                out[offset + (_S if choice is None else (_I if schema == 0 else _P))] += 1
            if choice is not None:
                taken.add(choice[0])
        out[offset + _M] = len(gold) - len(taken)
    taken = set()
    for mine in options:
        best = None
        for option in mine:
            if option[2] and option[0] not in taken and (best is None or option[3] < best[3]):
                best = option
        if best is not None:
            out[10 + _C] += 1
        else:
            best = next((o for o in mine if not o[2] and o[0] not in taken), None)
            out[10 + (_S if best is None else _I)] += 1
        if best is not None:
            taken.add(best[0])
    out[10 + _M] = len(gold) - len(taken)
    return out


def _greedy_counts(
    gold: _Encoded,
    pred: _Encoded,
    gold_group: np.ndarray,
    pred_group: np.ndarray,
    n_groups: int,
    min_percent: float,
    pred_strict_hit: np.ndarray,
) -> np.ndarray:
    """nervaluate's three schemas per group (a group is a doc, or a doc and one label): shape (groups, 3, 5).

    ``pred_strict_hit`` marks predictions with a gold span of the same boundaries and label.
    """
    n_gold = len(gold_group)
    group = np.concatenate([gold_group, pred_group])
    start = np.concatenate([gold.start, pred.start])
    end = np.concatenate([gold.end, pred.end])
    label = np.concatenate([gold.label, pred.label])
    is_pred = np.concatenate([np.zeros(n_gold, bool), np.ones(len(pred_group), bool)])
    strict_miss = np.concatenate([np.zeros(n_gold, bool), ~pred_strict_hit])
    counts = np.zeros((n_groups, 3, 5), dtype=np.int64)
    if len(group) == 0:
        return counts
    # spans sorted by (group, start, end, label): the order nervaluate sees within a document
    order = np.lexsort((label, end, start, group))
    group, start, end, label, is_pred = group[order], start[order], end[order], label[order], is_pred[order]
    strict_miss = strict_miss[order]
    width = int(end.max()) + 1
    reach = np.maximum.accumulate(group * width + end)
    new_cluster = np.ones(len(group), bool)
    new_cluster[1:] = group[1:] * width + start[1:] >= reach[:-1]
    cluster = np.cumsum(new_cluster) - 1
    n_clusters = int(cluster[-1]) + 1
    golds_in = np.bincount(cluster, weights=~is_pred, minlength=n_clusters).astype(np.int64)
    preds_in = np.bincount(cluster, weights=is_pred, minlength=n_clusters).astype(np.int64)
    cluster_group = group[new_cluster]

    # clusters without predictions: every gold span missed; without gold: every prediction spurious
    lonely_gold = ~is_pred & (preds_in[cluster] == 0)
    lonely_pred = is_pred & (golds_in[cluster] == 0)
    for kind, mask in ((_M, lonely_gold), (_S, lonely_pred)):
        counts[:, :, kind] += np.bincount(group[mask], minlength=n_groups)[:, None]

    # one gold and one predicted span: decide all such pairs at once
    pair = (golds_in == 1) & (preds_in == 1)
    first = np.flatnonzero(new_cluster)[pair]
    second = first + 1
    g = np.where(is_pred[first], second, first)
    p = np.where(is_pred[first], first, second)
    same_bounds = (start[g] == start[p]) & (end[g] == end[p])
    enough = _sufficient(start[p], end[p], start[g], end[g], min_percent)
    same_label = label[g] == label[p]
    pair_group = group[g]
    outcomes = {
        0: {_C: same_bounds, _I: ~same_bounds & enough},
        1: {_C: same_bounds, _P: ~same_bounds & enough},
        2: {_C: enough & same_label, _I: enough & ~same_label},
    }
    for schema, kinds in outcomes.items():
        for kind, mask in kinds.items():
            counts[:, schema, kind] += np.bincount(pair_group[mask], minlength=n_groups)
        apart = np.bincount(pair_group[~enough], minlength=n_groups)
        counts[:, schema, _S] += apart
        counts[:, schema, _M] += apart

    # crowded clusters where every prediction is strictly right: each takes its own gold span under
    # all three schemas (an exact same-label match is taken before any other), the rest are missed
    misses_in = np.bincount(cluster, weights=strict_miss, minlength=n_clusters)
    busy = (golds_in > 0) & (preds_in > 0) & ~pair
    all_right = busy & (misses_in == 0)
    right_group = cluster_group[all_right]
    counts[:, :, _C] += np.bincount(right_group, weights=preds_in[all_right], minlength=n_groups).astype(np.int64)[
        :, None
    ]
    left_over = (golds_in - preds_in)[all_right]
    counts[:, :, _M] += np.bincount(right_group, weights=left_over, minlength=n_groups).astype(np.int64)[:, None]

    def add(kind_by_schema: dict[int, dict[int, np.ndarray]], groups: np.ndarray) -> None:
        for schema, kinds in kind_by_schema.items():
            for kind, weights in kinds.items():
                counts[:, schema, kind] += np.bincount(groups, weights=weights, minlength=n_groups).astype(np.int64)

    # one prediction, several gold spans: it takes the first gold span it may take (exact, partial)
    # or a same-label one (type); only whether such a span exists decides the counts
    lone_pred = busy & ~all_right & (preds_in == 1)
    if lone_pred.any():
        where_pred = np.full(n_clusters, -1)
        members = np.flatnonzero(is_pred & lone_pred[cluster])
        where_pred[cluster[members]] = members
        golds = np.flatnonzero(~is_pred & lone_pred[cluster])
        p, c = where_pred[cluster[golds]], cluster[golds]
        bounds_equal = (start[golds] == start[p]) & (end[golds] == end[p])
        enough = _sufficient(start[p], end[p], start[golds], end[golds], min_percent)
        same = label[golds] == label[p]
        any_exact = np.bincount(c, weights=bounds_equal, minlength=n_clusters)[lone_pred] > 0
        any_enough = np.bincount(c, weights=enough, minlength=n_clusters)[lone_pred] > 0
        any_same = np.bincount(c, weights=enough & same, minlength=n_clusters)[lone_pred] > 0
        any_other = np.bincount(c, weights=enough & ~same, minlength=n_clusters)[lone_pred] > 0
        n_golds = golds_in[lone_pred]
        no_take = ~any_exact & ~any_enough
        no_type = ~any_same & ~any_other
        add(
            {
                0: {_C: any_exact, _I: ~any_exact & any_enough, _S: no_take, _M: n_golds - 1 + no_take},
                1: {_C: any_exact, _P: ~any_exact & any_enough, _S: no_take, _M: n_golds - 1 + no_take},
                2: {_C: any_same, _I: ~any_same & any_other, _S: no_type, _M: n_golds - 1 + no_type},
            },
            cluster_group[lone_pred],
        )

    # one gold span, several predictions: the first prediction that may take it does; the rest are spurious
    lone_gold = busy & ~all_right & (golds_in == 1) & (preds_in > 1)
    if lone_gold.any():
        where_gold = np.full(n_clusters, -1)
        members = np.flatnonzero(~is_pred & lone_gold[cluster])
        where_gold[cluster[members]] = members
        preds = np.flatnonzero(is_pred & lone_gold[cluster])
        g, c = where_gold[cluster[preds]], cluster[preds]
        enough = _sufficient(start[preds], end[preds], start[g], end[g], min_percent)
        takers = preds[enough]
        _, first = np.unique(c[enough], return_index=True)
        taker = takers[first]
        taken_by = np.full(n_clusters, -1)
        taken_by[cluster[taker]] = taker
        t = taken_by[lone_gold]
        taken = t >= 0
        gold_of = where_gold[lone_gold]
        bounds_equal = taken & (start[t] == start[gold_of]) & (end[t] == end[gold_of])
        same = taken & (label[t] == label[gold_of])
        spurious = preds_in[lone_gold] - taken
        add(
            {
                0: {_C: bounds_equal, _I: taken & ~bounds_equal, _S: spurious, _M: ~taken},
                1: {_C: bounds_equal, _P: taken & ~bounds_equal, _S: spurious, _M: ~taken},
                2: {_C: same, _I: taken & ~same, _S: spurious, _M: ~taken},
            },
            cluster_group[lone_gold],
        )

    # the rest: crowded clusters, matched by the greedy loop
    crowded = np.flatnonzero(busy & ~all_right & ~lone_pred & ~lone_gold)
    if len(crowded):
        bounds = np.flatnonzero(new_cluster)
        stops = np.append(bounds[1:], len(group)).tolist()
        bounds = bounds.tolist()
        spans = list(zip(start.tolist(), end.tolist(), label.tolist(), strict=True))
        flags = is_pred.tolist()
        crowded_counts = []
        for index in crowded.tolist():
            lo, hi = bounds[index], stops[index]
            gold_spans = [spans[i] for i in range(lo, hi) if not flags[i]]
            pred_spans = [spans[i] for i in range(lo, hi) if flags[i]]
            crowded_counts.append(_greedy_cluster(gold_spans, pred_spans, min_percent))
        np.add.at(counts, cluster_group[crowded], np.array(crowded_counts, dtype=np.int64).reshape(-1, 3, 5))
    return counts


def _metrics(counts: np.ndarray, partial_weight: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P, R, F1 from counts whose last axis is CATEGORIES (nervaluate's formulas; 0 where undefined)."""
    c, i, p, m, s = (counts[..., k].astype(float) for k in range(5))
    hits = c + partial_weight * p
    actual = c + i + p + s
    possible = c + i + p + m
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(actual > 0, hits / np.where(actual > 0, actual, 1), 0.0)
        recall = np.where(possible > 0, hits / np.where(possible > 0, possible, 1), 0.0)
        total = precision + recall
        f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return precision, recall, f1


@dataclass
class _Matching:
    counts: np.ndarray
    gold: list[AnnotatedDoc]
    predicted: list[AnnotatedDoc]
    gold_rows: _Encoded
    pred_rows: _Encoded
    gold_hit: np.ndarray
    pred_hit: np.ndarray


def _match(
    gold: Sequence[AnnotatedDoc], predicted: Sequence[AnnotatedDoc], labels: list[str], min_overlap_percent: float
) -> _Matching:
    gold = list(gold)
    predicted = align_predictions(gold, predicted)
    label_index = {name: number for number, name in enumerate(labels)}
    gold_rows = _encode(gold, label_index, "gold")
    pred_rows = _encode(predicted, label_index, "predictions")
    n_docs, n_labels = len(gold), len(labels)
    counts = np.zeros((n_docs, len(SCHEMAS), n_labels + 1, 5), dtype=np.int64)
    strict, gold_hit, pred_hit = _strict_counts(gold_rows, pred_rows, n_docs, n_labels)
    counts[:, 0, :n_labels] = strict
    counts[:, 0, n_labels] = strict.sum(axis=1)
    overall = _greedy_counts(gold_rows, pred_rows, gold_rows.doc, pred_rows.doc, n_docs, min_overlap_percent, pred_hit)
    counts[:, 1:, n_labels] = overall
    per_label = _greedy_counts(
        gold_rows,
        pred_rows,
        gold_rows.doc * n_labels + gold_rows.label,
        pred_rows.doc * n_labels + pred_rows.label,
        n_docs * n_labels,
        min_overlap_percent,
        pred_hit,
    )
    counts[:, 1:, :n_labels] = per_label.reshape(n_docs, n_labels, 3, 5).transpose(0, 2, 1, 3)
    return _Matching(counts, gold, predicted, gold_rows, pred_rows, gold_hit, pred_hit)


def count_matches(
    gold: Sequence[AnnotatedDoc],
    predicted: Sequence[AnnotatedDoc],
    labels: Sequence[str],
    *,
    min_overlap_percent: float = MIN_OVERLAP_PERCENT,
) -> np.ndarray:
    """Counts per article, schema, label (+ micro as the last column) and category.

    Shape ``(articles, len(SCHEMAS), len(labels) + 1, len(CATEGORIES))``; ``predicted`` must hold
    the same articles as ``gold`` (any order).
    """
    return _match(gold, predicted, list(labels), min_overlap_percent).counts


def _scores_from_counts(summed: np.ndarray, n_labels: int):
    """P, R, F1 for every schema and column, plus macro (mean over labels seen in gold or predictions)."""
    precision, recall, f1 = _metrics(summed)
    actual = summed[..., :n_labels, [_C, _I, _P, _S]].sum(axis=-1)
    possible = summed[..., :n_labels, [_C, _I, _P, _M]].sum(axis=-1)
    present = (actual + possible) > 0
    seen = np.maximum(present.sum(axis=-1), 1)
    macro = [np.where(present, metric[..., :n_labels], 0.0).sum(axis=-1) / seen for metric in (precision, recall, f1)]
    return precision, recall, f1, macro


def score_counts(
    counts: np.ndarray, labels: Sequence[str], *, bootstrap: int = 1000, seed: int = 0
) -> dict[str, dict[str, Score]]:
    """Scores with 95% bootstrap intervals from per-article counts (as :func:`count_matches` returns)."""
    labels = list(labels)
    n_labels = len(labels)
    summed = counts.sum(axis=0)
    precision, recall, f1, macro = _scores_from_counts(summed, n_labels)
    intervals = None
    if bootstrap > 0 and len(counts) > 0:
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(len(counts), np.full(len(counts), 1 / len(counts)), size=bootstrap)
        resampled = (weights.astype(float) @ counts.reshape(len(counts), -1).astype(float)).reshape(
            bootstrap, *summed.shape
        )
        b_p, b_r, b_f, b_macro = _scores_from_counts(resampled, n_labels)
        columns = [
            np.concatenate([metric, m[..., None]], axis=-1) for metric, m in zip((b_p, b_r, b_f), b_macro, strict=True)
        ]
        intervals = [np.percentile(column, [2.5, 97.5], axis=0) for column in columns]
    support = summed[..., [_C, _I, _P, _M]].sum(axis=-1)
    predicted_count = summed[..., [_C, _I, _P, _S]].sum(axis=-1)
    result: dict[str, dict[str, Score]] = {}
    for s, schema in enumerate(SCHEMAS):
        per: dict[str, Score] = {}
        names = [*labels, MICRO, MACRO]
        for column, name in enumerate(names):
            if name == MACRO:
                point = (macro[0][s], macro[1][s], macro[2][s])
                sup, pred = support[s, n_labels], predicted_count[s, n_labels]
            else:
                point = (precision[s, column], recall[s, column], f1[s, column])
                sup, pred = support[s, column], predicted_count[s, column]
            cis = [(float("nan"), float("nan"))] * 3
            if intervals is not None:
                cis = [(float(ci[0, s, column]), float(ci[1, s, column])) for ci in intervals]
            per[name] = Score(*(float(v) for v in point), int(sup), int(pred), *cis)
        result[schema] = per
    return result


def _label_confusion(matching: _Matching, labels: list[str]) -> dict[str, dict[str, int]]:
    """The confusion table with numpy: every (prediction, gold span it may overlap) pair at once.

    A prediction that is not strictly right is compared with the gold spans of its article that
    start before its end and at most ``longest gold span`` before its start (the only ones that can
    overlap it); ties on overlap go to the gold span that comes first (by start, then gold order).
    """
    n_labels = len(labels)
    table = np.zeros((n_labels, n_labels), dtype=np.int64)

    def count(gold_labels: np.ndarray, pred_labels: np.ndarray) -> None:
        table.flat[:] += np.bincount(gold_labels * n_labels + pred_labels, minlength=n_labels * n_labels)

    # a strictly right prediction overlaps a gold span of its own label: the diagonal, no search needed
    right = matching.pred_rows.label[matching.pred_hit]
    count(right, right)
    gold, rows, rest = matching.gold_rows, matching.pred_rows, ~matching.pred_hit
    if len(gold.doc) and rest.any():
        order = np.lexsort((gold.start, gold.doc))  # stable: equal starts keep gold order
        g_doc, g_start, g_end, g_label = gold.doc[order], gold.start[order], gold.end[order], gold.label[order]
        p_doc, p_start, p_end, p_label = rows.doc[rest], rows.start[rest], rows.end[rest], rows.label[rest]
        width = int(max(g_end.max(), p_end.max())) + 1
        longest = int((g_end - g_start).max())
        keys = g_doc * width + g_start
        lo = np.searchsorted(keys, p_doc * width + np.maximum(p_start - longest + 1, 0), side="left")
        hi = np.searchsorted(keys, p_doc * width + p_end, side="left")
        n_candidates = hi - lo
        pred_of = np.repeat(np.arange(len(p_doc)), n_candidates)
        first_of = np.repeat(lo - np.cumsum(n_candidates) + n_candidates, n_candidates)
        gold_of = first_of + np.arange(len(pred_of))
        overlap = np.minimum(g_end[gold_of], p_end[pred_of]) - np.maximum(g_start[gold_of], p_start[pred_of])
        touching = overlap > 0
        pred_of, gold_of, overlap = pred_of[touching], gold_of[touching], overlap[touching]
        same = g_label[gold_of] == p_label[pred_of]
        has_same = np.bincount(pred_of, weights=same, minlength=len(p_doc)) > 0
        count(p_label[has_same], p_label[has_same])
        other = ~has_same[pred_of]
        pred_of, gold_of, overlap = pred_of[other], gold_of[other], overlap[other]
        best = np.lexsort((gold_of, -overlap, pred_of))  # per prediction: most overlap, then first gold span
        firsts = best[np.r_[True, pred_of[best][1:] != pred_of[best][:-1]]] if len(best) else best
        count(g_label[gold_of[firsts]], p_label[pred_of[firsts]])
    return {gold: dict(zip(labels, row.tolist(), strict=True)) for gold, row in zip(labels, table, strict=True)}


def label_confusion(
    gold: Sequence[AnnotatedDoc], predicted: Sequence[AnnotatedDoc], labels: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Gold label → predicted label for predicted spans that overlap gold spans.

    A prediction counts on the diagonal when some overlapping gold span has its label; otherwise
    it counts against the label of the gold span it overlaps most. Off-diagonal cells are the
    overlapping spans that carry different labels.
    """
    return _label_confusion(_match(gold, predicted, list(labels), MIN_OVERLAP_PERCENT), list(labels))


def _strict_errors(matching: _Matching, labels: list[str], context: int) -> list[SpanError]:
    gold, pred = matching.gold_rows, matching.pred_rows
    miss, wrong = ~matching.gold_hit, ~matching.pred_hit
    doc = np.concatenate([gold.doc[miss], pred.doc[wrong]])
    start = np.concatenate([gold.start[miss], pred.start[wrong]])
    end = np.concatenate([gold.end[miss], pred.end[wrong]])
    label = np.concatenate([gold.label[miss], pred.label[wrong]])
    is_fp = np.concatenate([np.zeros(int(miss.sum()), bool), np.ones(int(wrong.sum()), bool)])
    order = np.lexsort((is_fp, label, end, start, doc))
    kinds = ("false negative", "false positive")
    found = []
    docs = matching.gold
    for number, first, last, tag, fp in zip(
        *(column[order].tolist() for column in (doc, start, end, label, is_fp)), strict=True
    ):
        text = docs[number].text
        span = Span(first, last, labels[tag], text[first:last])
        left, right = text[max(0, first - context) : first], text[last : last + context]
        found.append(SpanError(docs[number].id, kinds[fp], span, left, right))
    return found


def strict_errors(
    gold: Sequence[AnnotatedDoc], predicted: Sequence[AnnotatedDoc], labels: Sequence[str], *, context: int = 60
) -> list[SpanError]:
    """False positives and negatives under strict matching, each with ``context`` characters either side."""
    return _strict_errors(_match(gold, predicted, list(labels), MIN_OVERLAP_PERCENT), list(labels), context)


def evaluate(
    gold: Sequence[AnnotatedDoc],
    predicted: Sequence[AnnotatedDoc],
    labels: Sequence[str],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    context: int = 60,
    with_errors: bool = True,
    min_overlap_percent: float = MIN_OVERLAP_PERCENT,
) -> Evaluation:
    """Everything a report shows: scores with CIs under every schema, counts, confusions, errors."""
    labels = list(labels)
    with cycle_collector_paused():
        matching = _match(gold, predicted, labels, min_overlap_percent)
        errors = _strict_errors(matching, labels, context) if with_errors else []
    summed = matching.counts.sum(axis=0)
    columns = [*labels, MICRO]
    count_table = {
        schema: {
            name: {category: int(summed[s, c, k]) for k, category in enumerate(CATEGORIES)}
            for c, name in enumerate(columns)
        }
        for s, schema in enumerate(SCHEMAS)
    }
    return Evaluation(
        labels=labels,
        doc_ids=[doc.id for doc in matching.gold],
        scores=score_counts(matching.counts, labels, bootstrap=bootstrap, seed=seed),
        counts=count_table,
        confusion=_label_confusion(matching, labels) if with_errors else {},
        errors=errors,
        bootstrap_samples=bootstrap,
        seed=seed,
    )
