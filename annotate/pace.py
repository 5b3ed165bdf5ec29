"""Annotator time per article, from the seconds Label Studio records per annotation: what ``annotate plan`` bills.

Label Studio keeps on every annotation its ``lead_time`` (seconds the labeling view was open until
submit, added up over later edits). Those times are skewed and carry outliers — a task left open
overnight, a submit by mistake — so they are read robustly: the modified z-score of Iglewicz and
Hoaglin on log seconds, per annotator when they have enough times, else against everyone's. The
pace is the median of the kept times with its quartiles; hours are articles × pace × annotators
per task. Nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import median_abs_deviation

from annotate.errors import PlanError

# Annotation times: the modified z-score of Iglewicz and Hoaglin on log seconds (robust sd = 1.4826 × MAD).
OUTLIER_Z = 3.5
# A floor on the robust sd (log seconds): however alike the other times, a time is cut only when it is
# more than e^(3.5 × 0.5) ≈ 5.8× off the median (articles differ in length; a night is 50× a task).
MIN_LOG_SPREAD = 0.5
MIN_OWN_TIMES = 5  # fewer annotations than this: an annotator's times are judged against everyone's


@dataclass(frozen=True)
class AnnotatorPace:
    """One annotator's seconds per annotation: median and quartiles of the kept times, and what was cut."""

    annotator: str
    kept: int
    median: float
    quartiles: tuple[float, float]
    outliers: tuple[float, ...] = ()
    unrecorded: int = 0

    def reading(self) -> str:
        cut = ""
        if self.outliers:
            cut = f"; left out as outliers: {', '.join(_duration(s) for s in self.outliers)}"
        unrecorded = f"; {self.unrecorded} without lead_time" if self.unrecorded else ""
        if not self.kept:
            return f"{self.annotator}: no time kept{cut}{unrecorded}"
        return (
            f"{self.annotator}: {self.kept} annotation(s), median {_duration(self.median)} "
            f"(quartiles {_duration(self.quartiles[0])}–{_duration(self.quartiles[1])}){cut}{unrecorded}"
        )

    def to_dict(self) -> dict:
        return {
            "annotator": self.annotator,
            "annotations": self.kept,
            "median_s": round(self.median, 1) if self.kept else None,
            "quartiles_s": [round(q, 1) for q in self.quartiles] if self.kept else None,
            "outliers_s": [round(s, 1) for s in self.outliers],
            "unrecorded": self.unrecorded,
        }


@dataclass(frozen=True)
class Pace:
    """Seconds of annotator time per article, and how many annotators label each article."""

    seconds: float
    quartiles: tuple[float, float]
    annotators_per_task: int
    source: str
    annotators: tuple[AnnotatorPace, ...] = ()

    def hours(self, low: float, point: float, high: float) -> tuple[float, float, float]:
        """Annotator hours for ``point`` articles at the median pace; the range runs from ``low`` articles
        at the fast quartile to ``high`` articles at the slow quartile."""
        per = self.annotators_per_task / 3600
        return low * self.quartiles[0] * per, point * self.seconds * per, high * self.quartiles[1] * per

    def reading(self) -> str:
        spread = ""
        if self.quartiles[0] != self.quartiles[1]:
            spread = f" (quartiles {_duration(self.quartiles[0])}–{_duration(self.quartiles[1])})"
        counted = ""
        if self.annotators:
            kept = sum(a.kept for a in self.annotators)
            cut = sum(len(a.outliers) for a in self.annotators)
            counted = f": {kept} annotation(s) by {len(self.annotators)} annotator(s), {cut} outlier(s) left out"
        return (
            f"pace: {_duration(self.seconds)} per article and annotator{spread}, "
            f"{self.annotators_per_task} annotator(s) per article; from {self.source}{counted}"
        )

    def to_dict(self) -> dict:
        return {
            "seconds_per_article": round(self.seconds, 1),
            "quartiles_s": [round(q, 1) for q in self.quartiles],
            "annotators_per_task": self.annotators_per_task,
            "source": self.source,
            "annotators": [a.to_dict() for a in self.annotators],
            "reading": self.reading(),
        }


def _duration(seconds: float) -> str:
    """Seconds as people say them: ``45 s``, ``6.2 min``, ``14.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def outliers(seconds: Sequence[float], reference: Sequence[float] | None = None) -> list[bool]:
    """Which times are outliers: a modified z-score above :data:`OUTLIER_Z` on log seconds.

    Times are compared on a log scale because they are skewed (a slow article takes twice as
    long, not a fixed number of seconds more); the median and MAD are those of ``reference``
    (default: the times themselves), so a task left open overnight moves neither.
    """
    logs = np.log(np.asarray(seconds, dtype=float))
    base = np.log(np.asarray(reference if reference is not None else seconds, dtype=float))
    centre = float(np.median(base))
    spread = max(float(median_abs_deviation(base, scale="normal")), MIN_LOG_SPREAD)
    return [bool(abs(value - centre) / spread > OUTLIER_Z) for value in logs]


def pace_from_lead_times(
    lead_times: Mapping[str, Sequence[float | None]], *, annotators_per_task: int, source: str
) -> Pace:
    """The pace from each annotator's ``lead_time`` values (seconds; None or ≤ 0: not recorded).

    An annotator with at least :data:`MIN_OWN_TIMES` times is judged against their own median
    (people work at different speeds); with fewer, against everyone's. The pace is the median of
    every kept time, each annotation one vote, with its quartiles.
    """
    if annotators_per_task < 1:
        raise PlanError(f"annotators per task must be at least 1, not {annotators_per_task}")
    recorded = {who: [float(s) for s in times if s is not None and s > 0] for who, times in lead_times.items()}
    everyone = [s for times in recorded.values() for s in times]
    if not everyone:
        raise PlanError(f"no annotation in {source} has a lead_time; give --seconds-per-article instead")
    paces, kept_all = [], []
    for who, times in sorted(recorded.items()):
        unrecorded = len(lead_times[who]) - len(times)
        cut = outliers(times, None if len(times) >= MIN_OWN_TIMES else everyone) if times else []
        kept = [s for s, out in zip(times, cut, strict=True) if not out]
        dropped = tuple(s for s, out in zip(times, cut, strict=True) if out)
        q1, median, q3 = np.percentile(kept, [25, 50, 75]) if kept else (math.nan,) * 3
        paces.append(AnnotatorPace(who, len(kept), float(median), (float(q1), float(q3)), dropped, unrecorded))
        kept_all.extend(kept)
    q1, median, q3 = np.percentile(kept_all, [25, 50, 75])
    return Pace(float(median), (float(q1), float(q3)), annotators_per_task, source, tuple(paces))


def fixed_pace(seconds_per_article: float, *, annotators_per_task: int = 1) -> Pace:
    """A pace given by hand (``--seconds-per-article``): no spread."""
    if seconds_per_article <= 0 or annotators_per_task < 1:
        raise PlanError(
            f"--seconds-per-article must be above 0 and annotators per task at least 1, "
            f"not {seconds_per_article} and {annotators_per_task}"
        )
    return Pace(
        seconds_per_article, (seconds_per_article, seconds_per_article), annotators_per_task, "--seconds-per-article"
    )
