"""How far `annotate plan` can be trusted: fit the first sizes of longer curves, compare with what came after.

Three checks, each reproducible here without a network (the figures in docs/plan.md come from this):

1. **A known law** (synthetic): curves drawn from f(n) = 0.8 − 0.5·n^(−0.6) with seeded noise, once
   shaped like the shipped gold's curve (sizes 1–4, 3 repeats) and once longer (1–32). How often
   does each verdict come out, and how often does the interval hold the true size?
2. **A public learning curve**: scikit-learn's bundled handwritten digits (UCI "Optical Recognition
   of Handwritten Digits", 1,797 images, in the package: no download), logistic regression, macro
   F1 on a fixed held-out third, 5 random training subsets per size from 10 to 1,000 images. The
   law is fitted on the first sizes only and its band compared with the sizes measured after.
3. **The shipped gold's curve** (``reports/curve.json`` when `annotate curve` has written it):
   fitted on 1–3 training articles, compared with the runs at 4.

Run: ``PYTHONPATH=. python bench/check_plan.py [CURVE_JSON]``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from annotate.plan import INTERVAL, PowerLaw, answer_for, curve_points, fit_power_law, read_curve, resample_fits

TRUTH = PowerLaw(ceiling=0.8, gap=0.5, exponent=0.6, smallest=1.0)
RESAMPLES = 200


def known_law(trials: int = 100) -> None:
    """Verdicts, and how often the interval held the true size, on curves drawn from :data:`TRUTH`."""
    needed = TRUTH.size_for(0.7)
    print(f"## 1. A known law: {trials} seeded curves per shape, target 0.7 (true size {needed:.1f}), noise sd 0.03\n")
    print(
        "| sizes × 3 repeats | reached | estimate | not reachable | cannot tell | named: held the truth | "
        "any bounded interval within 20×: held the truth |"
    )
    print("|---|---|---|---|---|---|---|")
    for sizes in ([1, 2, 3, 4], [1, 2, 4, 8], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 4, 8, 16, 32]):
        verdicts: Counter = Counter()
        named: list[bool] = []
        bounded: list[bool] = []
        for seed in range(trials):
            rng = np.random.default_rng(1000 + seed)
            points = {size: list(TRUTH(size) + rng.normal(0, 0.03, 3)) for size in sizes}
            answer = answer_for("X", points, target=0.7, gold_articles=sizes[-1] + 1, resamples=RESAMPLES, seed=seed)
            verdicts[answer.verdict] += 1
            if answer.articles:
                named.append(answer.articles[0] <= needed <= answer.articles[2])
            low, high = resample_fits(points, np.asarray([1.0]), target=0.7, resamples=RESAMPLES, seed=seed).needed
            if high <= sizes[-1] * 20:
                bounded.append(low <= needed <= high)
        cells = " | ".join(str(verdicts[v]) for v in ("reached", "estimate", "not reachable", "cannot tell"))
        held = f"{sum(named)} of {len(named)} | {sum(bounded)} of {len(bounded)}"
        print(f"| {', '.join(map(str, sizes))} | {cells} | {held} |")
    print()


def band_at(points: dict[int, list[float]], sizes: list[int]) -> list[tuple[float, float, float]]:
    """The law fitted to ``points``, and its resampled band, at each of ``sizes``: (low, fit, high)."""
    law = fit_power_law([s for s, values in points.items() for _ in values], [v for vs in points.values() for v in vs])
    resampled = resample_fits(points, np.asarray(sizes, dtype=float), target=0.5, resamples=RESAMPLES, seed=0)
    return [(low, float(law(size)), high) for size, (low, high) in zip(sizes, resampled.band, strict=True)]


def digits_curve(sizes: list[int], repeats: int = 5) -> dict[int, list[float]]:
    """Macro F1 of logistic regression on a fixed held-out third of the digits, per training size."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    pool_x, test_x, pool_y, test_y = train_test_split(features, labels, test_size=1 / 3, random_state=0)
    rng = np.random.default_rng(0)
    points: dict[int, list[float]] = {}
    for size in sizes:
        for _ in range(repeats):
            chosen = rng.choice(len(pool_x), size=size, replace=False)
            model = LogisticRegression(max_iter=2000).fit(pool_x[chosen] / 16, pool_y[chosen])
            points.setdefault(size, []).append(f1_score(test_y, model.predict(test_x / 16), average="macro"))
    return points


def public_curve() -> None:
    sizes = [10, 20, 40, 80, 160, 320, 640, 1000]
    began = time.perf_counter()
    points = digits_curve(sizes)
    means = {size: float(np.mean(values)) for size, values in points.items()}
    print(f"## 2. A public curve: digits, logistic regression ({time.perf_counter() - began:.0f} s to measure)\n")
    print("measured mean macro F1: " + ", ".join(f"{size}: {mean:.3f}" for size, mean in means.items()) + "\n")
    print(f"| fitted on | size | measured mean | fit | {INTERVAL:.0%} band | inside |")
    print("|---|---|---|---|---|---|")
    for known in (3, 4, 5):
        fitted, later = dict(list(points.items())[:known]), sizes[known:]
        for size, (low, fit, high) in zip(later, band_at(fitted, later), strict=True):
            inside = "yes" if low <= means[size] <= high else "no"
            measured = f"{means[size]:.3f} | {fit:.3f} | {low:.3f}–{high:.3f} | {inside}"
            print(f"| {sizes[0]}–{sizes[known - 1]} | {size} | {measured} |")
        answer = answer_for("digits", fitted, target=0.95, gold_articles=sizes[known - 1], resamples=RESAMPLES)
        print(f"| {sizes[0]}–{sizes[known - 1]} | to reach 0.95 | | | {answer.verdict}: {answer.reading} | |")
    reached = next((size for size, mean in means.items() if mean >= 0.95), None)
    print(f"\nmeasured: the mean first reaches 0.95 at {reached} images\n")


def shipped_curve(path: Path) -> None:
    if not path.is_file():
        print(f"## 3. The shipped gold: {path} not found (run `annotate curve` first)\n")
        return
    curve, _ = read_curve(path.parent)
    print(f"## 3. The shipped gold ({path}): fitted on 1–3 articles, compared with the runs at 4\n")
    print(f"| label | runs at 4 (mean) | fit at 4 | {INTERVAL:.0%} band at 4 | mean inside |")
    print("|---|---|---|---|---|")
    for label in [*curve["labels"], "micro"]:
        points = curve_points(curve, "strict", label)
        ((low, fit, high),) = band_at({size: values for size, values in points.items() if size <= 3}, [4])
        mean = float(np.mean(points[4]))
        inside = "yes" if low <= mean <= high else "no"
        runs = ", ".join(f"{value:.2f}" for value in points[4])
        print(f"| {label} | {runs} ({mean:.3f}) | {fit:.3f} | {low:.3f}–{high:.3f} | {inside} |")
    print()


if __name__ == "__main__":
    known_law()
    public_curve()
    shipped_curve(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("reports") / "curve.json")
