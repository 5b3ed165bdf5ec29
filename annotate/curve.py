"""A learning curve by article: would more gold help?

For each training size, a few seeded random subsets of whole articles; a model is trained on each
(the same config and training loop as ``annotate train``) and scored on the articles outside it.
The curve is the mean F1 per size, with the spread over the subsets, per label and micro, under
strict and partial matching. Nothing here prints; :func:`write_curve` writes ``curve.json`` and a plot.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from random import Random

from spacy.language import Language

from annotate.artifacts import Each, Maybe
from annotate.corpus import encode_text, gold_sha256
from annotate.engine import check_workers, worker_pool
from annotate.errors import TrainingError
from annotate.evaluate import MICRO, evaluate
from annotate.figures import Panels, figure_png
from annotate.model import library_versions, predict
from annotate.records import AnnotatedDoc
from annotate.targets import check_file_target, check_folder_target, write_files
from annotate.train import ConvertedGold, Progress, Trainings, train_pipeline

CURVE_SCHEMAS = ("strict", "partial")
CURVE_FILE = "curve.json"
_STEP = {
    **dict.fromkeys(("still_rising", "beyond_spread"), bool),
    **dict.fromkeys(("from_size", "to_size"), int),
    **dict.fromkeys(("from_f1", "to_f1", "gain", "spread"), float),
}
# What the report reads of ``curve.json`` (the rest is for people and notebooks), checked by annotate.artifacts.
CURVE_SHAPE = {"sizes": [int], "last_step": Maybe(Each(Maybe(_STEP))), "provenance": Maybe({"repeats": Maybe(int)})}
CURVE_PLOT = "curve.png"
# 3 subsets per size at the config's 300 steps, the fewest that `annotate plan` can resample (with 2,
# one size in two resamples has no spread at all): 12 models on the 5-article gold, about 17 minutes
# on 2 shared cores (measured: 1,010 s; see docs/training.md and docs/plan.md).
DEFAULT_REPEATS = 3
# Default sizes: every size up to the whole gold (less the article scored) while that is at most this
# many; beyond, this many spaced evenly on a log scale, which is how the plan's law is read.
DEFAULT_SIZE_COUNT = 8


@dataclass(frozen=True)
class CurveRun:
    """One model of the curve: the articles it was trained on, those it was scored on, its F1s."""

    size: int
    repeat: int
    train: tuple[str, ...]
    test: tuple[str, ...]
    f1: dict[str, dict[str, float]]  # schema → label (and micro) → F1 on the test articles
    seconds: float

    def to_dict(self) -> dict:
        return {
            "size": self.size,
            "repeat": self.repeat,
            "train": list(self.train),
            "test": list(self.test),
            "f1": self.f1,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class Curve:
    """Every run, and per size, schema and label the mean F1 and its spread over the repeats."""

    labels: list[str]
    sizes: list[int]
    runs: list[CurveRun]
    source: dict = field(default_factory=dict)

    def summary(self) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
        """size → schema → label → mean, std (sample; 0 with one run), min, max, runs."""
        found: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
        for size in self.sizes:
            runs = [run for run in self.runs if run.size == size]
            found[size] = {
                schema: {name: _spread([run.f1[schema][name] for run in runs]) for name in [*self.labels, MICRO]}
                for schema in CURVE_SCHEMAS
            }
        return found

    def last_step(self, schema: str = "strict", label: str = MICRO) -> LastStep | None:
        """How much the last size added over the one before (None with a single size)."""
        if len(self.sizes) < 2:
            return None
        summary = self.summary()
        before, last = summary[self.sizes[-2]][schema][label], summary[self.sizes[-1]][schema][label]
        return LastStep(self.sizes[-2], self.sizes[-1], before["mean"], last["mean"], max(before["std"], last["std"]))

    def to_dict(self) -> dict:
        steps = {schema: self.last_step(schema) for schema in CURVE_SCHEMAS}
        return {
            "provenance": self.source,
            "labels": self.labels,
            "sizes": self.sizes,
            "summary": {str(size): per for size, per in self.summary().items()},
            "last_step": {schema: step.to_dict() if step else None for schema, step in steps.items()},
            "runs": [run.to_dict() for run in self.runs],
        }


@dataclass(frozen=True)
class LastStep:
    """The change in mean micro F1 from the second-to-last to the last training size."""

    before_size: int
    last_size: int
    before: float
    last: float
    spread: float

    @property
    def gain(self) -> float:
        return self.last - self.before

    @property
    def still_rising(self) -> bool:
        return self.gain > 0

    @property
    def beyond_spread(self) -> bool:
        """Whether the change is larger than the spread between repeats (else it may be noise)."""
        return abs(self.gain) > self.spread

    def to_dict(self) -> dict:
        return {
            "from_size": self.before_size,
            "to_size": self.last_size,
            "from_f1": self.before,
            "to_f1": self.last,
            "gain": self.gain,
            "spread": self.spread,
            "still_rising": self.still_rising,
            "beyond_spread": self.beyond_spread,
        }

    def reading(self, schema: str) -> str:
        verdict = "still raises" if self.still_rising else "no longer raises"
        noise = (
            "more than the spread between repeats"
            if self.beyond_spread
            else "within the spread between repeats, so it may be noise"
        )
        return (
            f"{schema} micro F1: {self.before_size} → {self.last_size} articles {verdict} F1 "
            f"({self.before:.3f} → {self.last:.3f}, {self.gain:+.3f}; spread ±{self.spread:.3f}: {noise})"
        )


def _spread(values: Sequence[float]) -> dict[str, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "runs": len(values)}


def training_subsets(doc_ids: Sequence[str], size: int, repeats: int, rng: Random) -> list[tuple[str, ...]]:
    """``repeats`` distinct subsets of ``size`` articles (all of them when fewer exist), seeded."""
    possible = list(combinations(sorted(doc_ids), size))
    if repeats >= len(possible):
        return possible
    return sorted(rng.sample(possible, repeats))


def default_sizes(n_articles: int) -> list[int]:
    """1 … n − 1 for a small gold; for a larger one :data:`DEFAULT_SIZE_COUNT` sizes, log-spaced, ending at n − 1."""
    largest = n_articles - 1
    if largest <= DEFAULT_SIZE_COUNT:
        return list(range(1, largest + 1))
    ratio = largest ** (1 / (DEFAULT_SIZE_COUNT - 1))
    return sorted({round(ratio**step) for step in range(DEFAULT_SIZE_COUNT)} | {largest})


def check_sizes(sizes: Sequence[int], n_articles: int) -> list[int]:
    """Sizes sorted and unique; each must leave at least one article to score on."""
    if n_articles < 2:
        raise TrainingError(f"a learning curve needs at least 2 articles, the gold has {n_articles}")
    bad = [size for size in sizes if not 1 <= size < n_articles]
    if bad or not sizes:
        raise TrainingError(
            f"--sizes must be between 1 and {n_articles - 1} (the gold has {n_articles} articles, "
            f"and each model is scored on articles it was not trained on); got {bad or 'none'}"
        )
    return sorted(set(sizes))


def learning_curve(
    gold: Sequence[AnnotatedDoc],
    *,
    config_path: str | Path,
    labels: Sequence[str],
    sizes: Sequence[int] | None = None,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    lang: str = "en",
    overrides: dict | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    engine: str = "local",
) -> Curve:
    """Train on ``repeats`` seeded subsets of each size, score each on the articles outside it.

    ``sizes`` defaults to :func:`default_sizes`: up to the whole gold less one article. Every model
    is trained with the same ``seed`` so that the spread comes from which articles were chosen, not
    from the initialisation. The
    models train on ``workers`` processes or Ray tasks (:mod:`annotate.engine`), same results.
    """
    check_workers(workers, engine)
    if repeats < 1:
        raise TrainingError(f"--repeats must be at least 1, not {repeats}")
    steps = (overrides or {}).get("training.max_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise TrainingError(f"--steps must be at least 1 (training steps per model), not {steps}")
    by_id = {doc.id: doc for doc in gold}
    sizes = check_sizes(list(sizes) if sizes else default_sizes(len(by_id)), len(by_id))
    report = progress or (lambda message: None)
    rng = Random(seed)
    plan = [(size, subset) for size in sizes for subset in training_subsets(list(by_id), size, repeats, rng)]
    runs: list[CurveRun] = []
    began = time.perf_counter()

    converted = ConvertedGold.of(gold, lang)

    def train(docs: Sequence[AnnotatedDoc], config: Path) -> Language:
        return train_pipeline(docs, config, labels, seed=seed, lang=lang, overrides=overrides, converted=converted)

    with worker_pool(workers, engine) as pool:
        trainings = Trainings(train, docs=gold, pool=pool, options=(labels, seed, lang, overrides, converted))
        for number, (_, subset) in enumerate(plan, start=1):
            trainings.needed_by(number, config_path, subset)
        for number, (size, subset) in enumerate(plan, start=1):
            repeat = sum(1 for run in runs if run.size == size) + 1
            report(f"model {number}/{len(plan)}: {size} article(s), repeat {repeat}")
            started = time.perf_counter()
            train_docs = [by_id[doc_id] for doc_id in subset]
            test_docs = [doc for doc in gold if doc.id not in subset]
            nlp = trainings.get(train_docs, config_path)
            trainings.release(number)
            scored = evaluate(test_docs, predict(nlp, test_docs, "model"), labels, bootstrap=0, with_errors=False)
            f1 = {schema: {name: score.f1 for name, score in scored.scores[schema].items()} for schema in CURVE_SCHEMAS}
            for per in f1.values():
                per.pop("macro", None)
            took = time.perf_counter() - started
            runs.append(CurveRun(size, repeat, subset, tuple(d.id for d in test_docs), f1, took))
    source = {
        "gold_sha256": gold_sha256(gold),
        "articles": len(by_id),
        "config": str(config_path),
        "config_sha256": hashlib.sha256(Path(config_path).read_bytes()).hexdigest(),
        "overrides": overrides or {},
        "seed": seed,
        "repeats": repeats,
        "versions": library_versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - began, 1),
    }
    return Curve(list(labels), sizes, runs, source)


def curve_png(curve: Curve) -> bytes:
    """Mean F1 against training articles, one line per label and micro, whiskers min–max; strict and partial."""
    summary = curve.summary()

    def draw(panels: Panels) -> None:
        for axis, schema in zip(panels[0], CURVE_SCHEMAS, strict=True):
            for name in [*curve.labels, MICRO]:
                points = [summary[size][schema][name] for size in curve.sizes]
                means = [p["mean"] for p in points]
                # max(0, …): the mean of equal scores can land a rounding error outside them
                whiskers = [
                    [max(0.0, p["mean"] - p["min"]) for p in points],
                    [max(0.0, p["max"] - p["mean"]) for p in points],
                ]
                axis.errorbar(
                    curve.sizes,
                    means,
                    yerr=whiskers,
                    marker="o",
                    capsize=3,
                    label=name,
                    linewidth=2.5 if name == MICRO else 1.2,
                    color="black" if name == MICRO else None,
                )
            axis.set_xticks(curve.sizes)
            axis.set_xlabel("training articles")
            axis.set_ylabel("F1 on the other articles")
            axis.set_ylim(0, 1.0)
            axis.set_title(f"{schema}: mean over repeats, whiskers min–max", fontsize=10)
            axis.grid(alpha=0.3)
        panels[0][0].legend(fontsize=7, loc="upper left")

    return figure_png(draw, rows=1, columns=len(CURVE_SCHEMAS), size=(5.2 * len(CURVE_SCHEMAS), 3.8))


def check_curve_targets(folder: str | Path) -> None:
    """Before any training: ``curve.json`` and ``curve.png`` can be written into ``folder`` (hours may follow)."""
    folder = Path(folder)
    check_folder_target(folder, marker=None, what="reports folder")
    for name in (CURVE_FILE, CURVE_PLOT):
        check_file_target(folder / name)


def write_curve(folder: str | Path, curve: Curve) -> dict[str, Path]:
    """Write ``curve.json`` and ``curve.png`` into ``folder``, both or neither (the plot is drawn first)."""
    folder = Path(folder)
    data, plot = folder / CURVE_FILE, folder / CURVE_PLOT
    text = json.dumps(curve.to_dict(), indent=2, ensure_ascii=False) + "\n"
    write_files([(data, encode_text(text, str(data))), (plot, curve_png(curve))])
    return {"curve": data, "plot": plot}
