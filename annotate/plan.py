"""How much more gold, and how many annotator hours, to reach a target F1: what ``annotate plan`` answers.

Each label's learning curve (every run of ``curve.json``, not only the means) is fitted with an
inverse power law with a ceiling, f(n) = c − a·(n/n₁)^(−b) with n₁ the smallest size measured: the
model the sample-size literature fits to classifier learning curves (Mukherjee et al. 2003,
"Estimating dataset size requirements for classifying DNA microarray data"; Figueroa et al. 2012,
"Predicting sample size required for classification performance"), because it rises fast and then
levels off at c, as learning curves do, and has few enough parameters for a short curve. Its
uncertainty comes from the bootstrap: the repeats of each size are resampled and the law refitted.

The answer is an interval or an honest refusal: "not reachable within the fitted ceiling" when even
the high end of the ceiling's interval is below the target, "cannot tell from this curve" when the
curve does not rise beyond its noise or the interval has no upper end within reach of the sizes
measured. Articles become annotator hours through a :class:`~annotate.pace.Pace`. Nothing here prints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotate.corpus import atomic_write_bytes, atomic_write_text
from annotate.curve import CURVE_FILE, CURVE_SCHEMAS
from annotate.errors import PlanError
from annotate.evaluate import MICRO
from annotate.figures import Panels, figure_png
from annotate.pace import Pace

PLAN_FILE = "plan.json"
PLAN_PLOT = "plan.png"
LAW = "f(n) = c − a·(n/n₁)^(−b)"
DEFAULT_RESAMPLES = 1000
INTERVAL = 0.90  # the bootstrap interval reported: 5th to 95th percentile
# A size is named only within this factor of the largest size measured: a power law fitted to a
# short curve says little about sizes far beyond it (docs/plan.md, "How far to trust it").
MAX_EXTRAPOLATION = 20
# Nothing beyond the curve (no number, no "not reachable") before its sizes span three doublings:
# fitted on 1–4 the law's intervals held the true size of a known law 10 times in 17, and on real
# curves (digits 10–40, the shipped gold 1–3) it missed the next sizes measured (docs/plan.md).
MIN_SPAN = 8
# Bounds of the fit: the ceiling is an F1; a is the gap between the ceiling and F1 at n₁, so it
# cannot much exceed 1; b from a curve that has barely started to rise to one that is flat after n₁.
BOUNDS = ((0.0, 0.0, 0.01), (1.0, 1.5, 3.0))
START_EXPONENTS = np.geomspace(0.02, 3.0, 24)

REACHED = "reached"
ESTIMATE = "estimate"
NOT_REACHABLE = "not reachable"
CANNOT_TELL = "cannot tell"


@dataclass(frozen=True)
class PowerLaw:
    """f(n) = c − a·(n/n₁)^(−b): rises from c − a at n₁ towards the ceiling c."""

    ceiling: float
    gap: float
    exponent: float
    smallest: float

    def __call__(self, sizes: np.ndarray | float) -> np.ndarray | float:
        return self.ceiling - self.gap * (np.asarray(sizes, dtype=float) / self.smallest) ** -self.exponent

    def size_for(self, target: float) -> float:
        """The training size at which the law reaches ``target`` (infinite when the ceiling is below it)."""
        if target >= self.ceiling:
            return math.inf
        if self.gap <= 0:
            return 0.0
        return self.smallest * (self.gap / (self.ceiling - target)) ** (1 / self.exponent)

    def to_dict(self) -> dict:
        return {"c": self.ceiling, "a": self.gap, "b": self.exponent, "n1": self.smallest}


def _law_values(sizes: np.ndarray, ceiling: float, gap: float, exponent: float, smallest: float) -> np.ndarray:
    return ceiling - gap * (sizes / smallest) ** -exponent


def _law_jacobian(relative: np.ndarray, gap: float, exponent: float) -> np.ndarray:
    """∂f/∂(c, a, b) at each run: the fit needs no numerical derivatives."""
    power = relative**-exponent
    return np.column_stack([np.ones_like(relative), -power, gap * power * np.log(relative)])


def fit_power_law(sizes: Sequence[float], scores: Sequence[float]) -> PowerLaw:
    """Least squares over every run, within :data:`BOUNDS`; started from the best exponent on a grid.

    For a fixed exponent the law is linear in c and a, so a grid of exponents gives a start near
    the global optimum, from which ``scipy.optimize.curve_fit`` refines all three.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.asarray(sizes, dtype=float)
    y = np.asarray(scores, dtype=float)
    if len(set(x.tolist())) < 3:
        raise PlanError(f"a curve with a ceiling needs at least 3 training sizes, not {sorted(set(x.tolist()))}")
    smallest = float(x.min())
    start = _grid_start(x / smallest, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            found, _ = curve_fit(
                lambda n, c, a, b: _law_values(n, c, a, b, smallest),
                x,
                y,
                p0=start,
                bounds=BOUNDS,
                jac=lambda n, c, a, b: _law_jacobian(n / smallest, a, b),
                max_nfev=400,
            )
        except (RuntimeError, ValueError):  # no convergence: the grid's start is the fit
            found = start
    return PowerLaw(float(found[0]), float(found[1]), float(found[2]), smallest)


def _grid_start(relative: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """For each exponent of :data:`START_EXPONENTS` the least-squares c and a (clipped to the bounds); the best."""
    low, high = BOUNDS
    powers = relative[None, :] ** -START_EXPONENTS[:, None]  # exponent × run
    centred = powers - powers.mean(axis=1, keepdims=True)
    gaps = -(centred @ (y - y.mean())) / np.maximum((centred**2).sum(axis=1), 1e-12)
    ceilings = y.mean() + gaps * powers.mean(axis=1)
    gaps, ceilings = np.clip(gaps, low[1], high[1]), np.clip(ceilings, low[0], high[0])
    errors = ((ceilings[:, None] - gaps[:, None] * powers - y[None, :]) ** 2).sum(axis=1)
    best = int(np.argmin(errors))
    return float(ceilings[best]), float(gaps[best]), float(START_EXPONENTS[best])


def _interval(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The central :data:`INTERVAL` of ``values`` by order statistics (infinite values allowed)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    tail = (1 - INTERVAL) / 2
    last = len(ordered) - 1
    return float(ordered[math.floor(tail * last)]), float(ordered[math.ceil((1 - tail) * last)])


def _resampled(points: Mapping[int, Sequence[float]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The repeats of each size drawn with replacement, as many as there were, spread back to their own spread.

    Drawing r values from r underestimates their variance by (r − 1)/r, which matters with the
    three repeats a curve has; each draw's deviation from the size's mean is scaled by √(r/(r − 1))
    (the rescaled bootstrap, Efron and Tibshirani 1993, §6.7), so the spread is theirs again.
    """
    sizes, scores = [], []
    for size, values in points.items():
        values = np.asarray(values, dtype=float)
        drawn = rng.choice(values, size=len(values), replace=True)
        if len(values) > 1:
            drawn = values.mean() + (drawn - values.mean()) * math.sqrt(len(values) / (len(values) - 1))
        sizes.extend([size] * len(values))
        scores.extend(drawn.tolist())
    return np.asarray(sizes, dtype=float), np.asarray(scores)


def _slope_per_doubling(sizes: np.ndarray, scores: np.ndarray) -> float:
    """The slope of a straight line in log₂ n: F1 gained per doubling of the articles, whatever the law."""
    return float(np.polyfit(np.log2(sizes), scores, 1)[0])


@dataclass
class Answer:
    """One label's (or micro's) fit and what it says about the target."""

    label: str
    verdict: str
    reading: str
    law: PowerLaw
    ceiling: tuple[float, float]
    slope: tuple[float, float]
    articles: tuple[float, float, float] | None  # low, fit, high: training articles at which F1 reaches the target
    more: tuple[int, int, int] | None  # low, fit, high: articles beyond the gold the curve was measured on
    hours: tuple[float, float, float] | None
    points: list[tuple[int, float]]
    band: list[tuple[float, float, float, float]]  # size, low, fit, high

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "verdict": self.verdict,
            "reading": self.reading,
            "fit": self.law.to_dict(),
            "ceiling": list(self.ceiling),
            "slope_per_doubling": list(self.slope),
            "articles": list(self.articles) if self.articles else None,
            "more_articles": list(self.more) if self.more else None,
            "hours": [round(value, 1) for value in self.hours] if self.hours else None,
            "points": [list(point) for point in self.points],
            "band": [[round(value, 4) for value in row] for row in self.band],
        }


@dataclass
class Plan:
    """The answer for every label asked about, with what it was computed from."""

    target: float
    level: str
    gold_articles: int
    answers: list[Answer]
    pace: Pace | None
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "level": self.level,
            "gold_articles": self.gold_articles,
            "law": LAW,
            "interval": INTERVAL,
            "max_extrapolation": MAX_EXTRAPOLATION,
            "min_span": MIN_SPAN,
            "source": self.source,
            "pace": self.pace.to_dict() if self.pace else None,
            "answers": [answer.to_dict() for answer in self.answers],
        }


def read_curve(folder: str | Path) -> tuple[dict, str]:
    """``curve.json`` from ``folder`` and its SHA-256."""
    path = Path(folder) / CURVE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file (run `annotate curve` first)") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PlanError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data.get("labels"):
        raise PlanError(f"{path}: not a learning curve written by `annotate curve`")
    return data, hashlib.sha256(raw).hexdigest()


def curve_points(curve: Mapping, level: str, label: str) -> dict[int, list[float]]:
    """Size → the F1 of every run of that size, for one label at one level."""
    found: dict[int, list[float]] = {}
    for run in curve["runs"]:
        found.setdefault(int(run["size"]), []).append(float(run["f1"][level][label]))
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Resampled:
    """What the refits on resampled repeats say, each as a :data:`INTERVAL` interval."""

    needed: tuple[float, float]  # training articles at which F1 reaches the target (infinite: never)
    ceiling: tuple[float, float]
    slope: tuple[float, float]  # F1 per doubling of the articles, from a straight line in log n
    band: list[tuple[float, float]]  # F1 at each size of the grid


def resample_fits(
    points: Mapping[int, Sequence[float]], grid: np.ndarray, *, target: float, resamples: int, seed: int
) -> Resampled:
    """Refit the law ``resamples`` times on the repeats of each size drawn with replacement."""
    if resamples < 1:
        raise PlanError(f"--bootstrap must be at least 1, not {resamples}: the intervals come from the resamples")
    rng = np.random.default_rng(seed)
    needed, ceilings, slopes, curves = [], [], [], []
    for _ in range(resamples):
        sizes, scores = _resampled(points, rng)
        law = fit_power_law(sizes, scores)
        needed.append(law.size_for(target))
        ceilings.append(law.ceiling)
        slopes.append(_slope_per_doubling(sizes, scores))
        curves.append(law(grid))
    band = [_interval(column) for column in np.asarray(curves).T]
    return Resampled(_interval(needed), _interval(ceilings), _interval(slopes), band)


def judge(
    law: PowerLaw, resampled: Resampled, *, target: float, gold_articles: int, sizes: Sequence[int]
) -> tuple[str, str, tuple[float, float, float] | None]:
    """The verdict, its reading, and the training articles needed (low, fit, high) when they can be named.

    In this order: reached (even the high end is within the gold); cannot tell (the curve does not
    rise beyond its noise, so it says nothing of a ceiling); cannot tell (its sizes span less than
    :data:`MIN_SPAN`: too short for any claim beyond it); not reachable (the ceiling's interval is
    below the target); cannot tell (no upper end within :data:`MAX_EXTRAPOLATION` × the largest
    size); else the interval.
    """
    low, high = resampled.needed
    point = min(max(law.size_for(target), low), high)
    interval = f"{INTERVAL:.0%} interval"
    if high <= gold_articles:
        reading = (
            f"reached: the fit puts F1 {target:g} at {_count(point)} training article(s) "
            f"({_count(low)}–{_count(high)}, {interval}); the gold has {gold_articles}"
        )
        return REACHED, reading, (low, point, high)
    slope, ceiling = resampled.slope, resampled.ceiling
    if slope[0] <= 0:
        reading = (
            f"cannot tell from this curve: it does not rise beyond the spread between repeats "
            f"(F1 per doubling of the articles {_signed(slope[0])} to {_signed(slope[1])}, {interval})"
        )
        return CANNOT_TELL, reading, None
    smallest, largest = min(sizes), max(sizes)
    if largest < MIN_SPAN * smallest:
        reading = (
            f"cannot tell from this curve: its sizes span only {largest / smallest:g}× ({smallest} to {largest} "
            f"articles); an answer needs sizes up to {MIN_SPAN * smallest}, a gold of {MIN_SPAN * smallest + 1}"
        )
        return CANNOT_TELL, reading, None
    if ceiling[1] < target:
        reading = (
            f"not reachable within the fitted ceiling: F1 levels off at {law.ceiling:.2f} "
            f"({ceiling[0]:.2f}–{ceiling[1]:.2f}, {interval}), below {target:g}"
        )
        return NOT_REACHABLE, reading, None
    horizon = largest * MAX_EXTRAPOLATION
    reach = f"{_count(horizon)} training articles ({MAX_EXTRAPOLATION}× the largest size measured)"
    if low > horizon:
        return CANNOT_TELL, f"cannot tell from this curve: not within {reach} even at the low end, if at all", None
    if high > horizon:
        reading = f"cannot tell from this curve: at least {_count(low)} training articles; no upper end within {reach}"
        return CANNOT_TELL, reading, None
    more = [max(0, math.ceil(value) - gold_articles) for value in (low, point, high)]
    reading = (
        f"{more[1]} more article(s) of gold ({more[0]}–{more[2]}): F1 {target:g} at about {_count(point)} "
        f"training articles ({_count(low)}–{_count(high)}, {interval}); the gold has {gold_articles}"
    )
    return ESTIMATE, reading, (low, point, high)


def answer_for(
    label: str,
    points: Mapping[int, Sequence[float]],
    *,
    target: float,
    gold_articles: int,
    pace: Pace | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Answer:
    """Fit one curve, resample it, and say how many articles reach ``target`` (or why that cannot be said)."""
    sizes = np.asarray([size for size, values in points.items() for _ in values], dtype=float)
    law = fit_power_law(sizes, [value for values in points.values() for value in values])
    horizon = float(max(points)) * MAX_EXTRAPOLATION
    grid = np.unique(np.concatenate([np.geomspace(law.smallest, horizon, 60), list(points)]))
    resampled = resample_fits(points, grid, target=target, resamples=resamples, seed=seed)
    verdict, reading, articles = judge(law, resampled, target=target, gold_articles=gold_articles, sizes=list(points))
    more = None
    if articles is not None:
        fewest, likely, most = (max(0, math.ceil(value) - gold_articles) for value in articles)
        more = (fewest, likely, most)
    hours = pace.hours(*more) if pace is not None and more is not None else None
    if hours is not None and verdict == ESTIMATE:
        reading += f"; about {hours[1]:.0f} annotator hours ({hours[0]:.0f}–{hours[2]:.0f})"
    band = [(float(size), low, float(law(size)), high) for size, (low, high) in zip(grid, resampled.band, strict=True)]
    return Answer(
        label,
        verdict,
        reading,
        law,
        resampled.ceiling,
        resampled.slope,
        articles,
        more,
        hours,
        [(size, value) for size, values in points.items() for value in values],
        band,
    )


def _count(value: float) -> str:
    return "∞" if not math.isfinite(value) else str(math.ceil(value))


def _signed(value: float) -> str:
    """``+0.012``; never ``-0.000``."""
    return f"{round(value, 3) + 0.0:+.3f}"


def make_plan(
    curve: Mapping,
    *,
    target: float,
    labels: Sequence[str] | None = None,
    level: str = "strict",
    pace: Pace | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    curve_sha256: str = "",
) -> Plan:
    """The answer per label (default: every label of the curve, then micro) for one target F1."""
    if not 0 < target < 1:
        raise PlanError(f"--target is an F1 between 0 and 1 (exclusive), not {target:g}")
    if level not in CURVE_SCHEMAS:
        raise PlanError(f"--level must be one of {', '.join(CURVE_SCHEMAS)}, not {level!r}")
    known = [*curve["labels"], MICRO]
    wanted = list(dict.fromkeys(labels)) if labels else known
    unknown = [label for label in wanted if label not in known]
    if unknown:
        raise PlanError(f"no such label in the curve: {', '.join(unknown)} (it has {', '.join(known)})")
    provenance = curve.get("provenance") or {}
    gold_articles = int(provenance.get("articles") or max(int(run["size"]) for run in curve["runs"]) + 1)
    answers = [
        answer_for(
            label,
            curve_points(curve, level, label),
            target=target,
            gold_articles=gold_articles,
            pace=pace,
            resamples=resamples,
            seed=seed,
        )
        for label in wanted
    ]
    source = {
        "curve": CURVE_FILE,
        "curve_sha256": curve_sha256,
        "gold_sha256": provenance.get("gold_sha256", ""),
        "sizes": sorted({int(run["size"]) for run in curve["runs"]}),
        "runs": len(curve["runs"]),
        "resamples": resamples,
        "seed": seed,
    }
    return Plan(target, level, gold_articles, answers, pace, source)


def plan_png(plan: Plan) -> bytes:
    """One panel per label: every run, the fit with its band, the target, the gold size and the answer."""
    columns = min(3, len(plan.answers))
    rows = math.ceil(len(plan.answers) / columns)

    def draw(panels: Panels) -> None:
        cells = [axis for row in panels for axis in row]
        for axis in cells[len(plan.answers) :]:
            axis.set_visible(False)
        for axis, answer in zip(cells, plan.answers, strict=False):
            band = np.asarray(answer.band)
            axis.fill_between(
                band[:, 0], band[:, 1], band[:, 3], color="tab:blue", alpha=0.2, label=f"{INTERVAL:.0%} band"
            )
            axis.plot(band[:, 0], band[:, 2], color="tab:blue", label="fit")
            sizes, scores = zip(*answer.points, strict=True)
            axis.scatter(sizes, scores, s=14, color="black", zorder=3, label="runs")
            axis.axhline(plan.target, color="tab:red", linestyle="--", linewidth=1, label=f"target {plan.target:g}")
            axis.axvline(plan.gold_articles, color="gray", linestyle=":", linewidth=1, label="gold now")
            if answer.articles and math.isfinite(answer.articles[2]):
                axis.axvspan(answer.articles[0], answer.articles[2], color="tab:green", alpha=0.15, label="answer")
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
            axis.set_ylim(0, 1)
            axis.set_xlabel("training articles (log scale)")
            axis.set_ylabel(f"{plan.level} F1")
            axis.set_title(f"{answer.label}: {answer.verdict}", fontsize=10)
            axis.grid(alpha=0.3)
        shown = {}  # one legend for every panel, above them
        for axis in cells:
            handles, names = axis.get_legend_handles_labels()
            shown.update(zip(names, handles, strict=True))
        cells[0].figure.legend(
            shown.values(), shown.keys(), loc="upper center", ncol=len(shown), fontsize=8, frameon=False
        )

    return figure_png(draw, rows=rows, columns=columns, size=(4.4 * columns, 3.4 * rows), top_inches=0.3)


def write_plan(folder: str | Path, plan: Plan) -> dict[str, Path]:
    """Write ``plan.json`` and ``plan.png`` into ``folder`` (each atomically)."""
    files = {"plan": Path(folder) / PLAN_FILE, "plot": Path(folder) / PLAN_PLOT}
    atomic_write_text(files["plan"], json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")
    atomic_write_bytes(files["plot"], plan_png(plan))
    return files


def plan_section(folder: str | Path) -> dict | None:
    """What the report's plan section shows (None without ``plan.json``): built only from the files written."""
    folder = Path(folder)
    path = folder / PLAN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        answers = [{"label": a["label"], "verdict": a["verdict"], "reading": a["reading"]} for a in data["answers"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PlanError(f"{path}: not a plan written by `annotate plan` ({exc!r})") from None
    curve = folder / CURVE_FILE
    current = hashlib.sha256(curve.read_bytes()).hexdigest() if curve.is_file() else ""
    plot = folder / PLAN_PLOT
    pace = data.get("pace")
    return {
        "target": data.get("target"),
        "level": data.get("level"),
        "gold_articles": data.get("gold_articles"),
        "law": data.get("law", LAW),
        "interval": f"{float(data.get('interval', INTERVAL)):.0%}",
        "resamples": (data.get("source") or {}).get("resamples"),
        "max_extrapolation": data.get("max_extrapolation"),
        "min_span": data.get("min_span"),
        "pace": pace["reading"] if pace else "",
        "stale": bool(current) and current != (data.get("source") or {}).get("curve_sha256"),
        "answers": answers,
        "image": "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode("ascii")
        if plot.is_file()
        else "",
    }
