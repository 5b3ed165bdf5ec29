"""The evaluation's figures as PNG bytes, all drawn through one matplotlib helper.

Only this module imports matplotlib: :func:`figure_png` sets the windowless backend, lays out the
panels, saves at one resolution and always closes the figure, so every figure of every report
(scores, confusion, learning curve) is made the same way. Nothing here prints or writes files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from annotate.evaluate import MACRO, MICRO, Evaluation

CHART_SCHEMAS = ("strict", "partial")
DPI = 110

Panels = Sequence[Sequence[Any]]  # rows of matplotlib Axes


def figure_png(
    draw: Callable[[Panels], None], *, rows: int, columns: int, size: tuple[float, float], top_inches: float = 0.0
) -> bytes:
    """A figure of ``rows`` × ``columns`` panels, filled in by ``draw(panels)``, as PNG bytes.

    ``top_inches`` keeps a strip above the panels free (for a legend ``draw`` puts on the figure).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(rows, columns, figsize=size, squeeze=False)
    try:
        draw(panels)
        figure.tight_layout(rect=(0, 0, 1, 1 - top_inches / figure.get_figheight()))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def chart_png(evaluations: Mapping[str, Evaluation]) -> bytes:
    """Per-label P/R/F bars with 95% CI whiskers: one panel per system and schema."""
    systems = list(evaluations)

    def draw(panels: Panels) -> None:
        for column, system in enumerate(systems):
            result = evaluations[system]
            names = [*result.labels, MICRO, MACRO]
            for row, schema in enumerate(CHART_SCHEMAS):
                axis = panels[row][column]
                for offset, metric in enumerate(("precision", "recall", "f1")):
                    values = [getattr(result.scores[schema][n], metric) for n in names]
                    intervals = [getattr(result.scores[schema][n], f"{metric}_ci") for n in names]
                    pairs = list(zip(values, intervals, strict=True))
                    below = [0 if math.isnan(lo) else max(0.0, v - lo) for v, (lo, _) in pairs]
                    above = [0 if math.isnan(hi) else max(0.0, hi - v) for v, (_, hi) in pairs]
                    positions = [i + (offset - 1) * 0.27 for i in range(len(names))]
                    axis.bar(positions, values, width=0.27, label=metric, yerr=[below, above], capsize=2)
                axis.set_xticks(range(len(names)))
                axis.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
                axis.set_ylim(0, 1.05)
                axis.set_title(f"{system}: {schema}", fontsize=10)
                if row == 0 and column == 0:
                    axis.legend(fontsize=7, loc="upper right")

    size = (4.5 * len(systems), 3.6 * len(CHART_SCHEMAS))
    return figure_png(draw, rows=len(CHART_SCHEMAS), columns=len(systems), size=size)


def confusion_png(evaluations: Mapping[str, Evaluation]) -> bytes | None:
    """The label confusion of overlapping spans as a heat map per system (rows gold, columns predicted)."""
    systems = [name for name, result in evaluations.items() if result.confusion]
    if not systems:
        return None

    def draw(panels: Panels) -> None:
        for axis, system in zip(panels[0], systems, strict=True):
            result = evaluations[system]
            labels = result.labels
            table = [[result.confusion[gold][predicted] for predicted in labels] for gold in labels]
            axis.imshow(table, cmap="Blues")
            top = max((max(row) for row in table), default=0)
            for row, values in enumerate(table):
                for column, value in enumerate(values):
                    color = "white" if top and value > top / 2 else "black"
                    axis.text(column, row, str(value), ha="center", va="center", color=color, fontsize=8)
            axis.set_xticks(range(len(labels)))
            axis.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
            axis.set_yticks(range(len(labels)))
            axis.set_yticklabels(labels, fontsize=8)
            axis.set_xlabel("predicted")
            axis.set_ylabel("gold")
            axis.set_title(system, fontsize=10)

    return figure_png(draw, rows=1, columns=len(systems), size=(4.2 * len(systems), 3.8))
