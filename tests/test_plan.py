"""`annotate plan`: the fit on curves drawn from a known law, the refusals, the hours, plan.json and its page section.

No training here: every curve is made by hand or drawn from an inverse power law with seeded noise.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.curve import Curve, CurveRun, default_sizes, write_curve
from annotate.errors import PlanError, StudioError
from annotate.htmlreport import render_report
from annotate.pace import fixed_pace, outliers, pace_from_lead_times
from annotate.plan import (
    CANNOT_TELL,
    ESTIMATE,
    NOT_REACHABLE,
    PLAN_FILE,
    REACHED,
    PowerLaw,
    answer_for,
    fit_power_law,
    make_plan,
    read_curve,
    write_plan,
)
from annotate.studio.leadtime import annotation_lead_times
from tests.report_fixture import LABELS, write_fixed_evaluation

TRUTH = PowerLaw(ceiling=0.8, gap=0.5, exponent=0.6, smallest=1.0)  # F1 0.7 at 14.6 articles
LONG = [1, 2, 4, 8, 16, 32]


def _drawn(law, sizes, repeats: int, noise: float, seed: int) -> dict[int, list[float]]:
    rng = np.random.default_rng(seed)
    return {size: list(law(size) + rng.normal(0, noise, repeats)) for size in sizes}


def test_the_law_and_the_size_it_needs():
    assert TRUTH(1) == pytest.approx(0.3) and TRUTH(32) == pytest.approx(0.8 - 0.5 * 32**-0.6)
    assert TRUTH(TRUTH.size_for(0.7)) == pytest.approx(0.7)
    assert TRUTH.size_for(0.8) == math.inf and TRUTH.size_for(0.9) == math.inf


def test_the_fit_recovers_the_parameters_of_the_law_it_was_drawn_from():
    points = _drawn(TRUTH, LONG, repeats=5, noise=0.01, seed=0)
    law = fit_power_law([s for s, values in points.items() for _ in values], [v for vs in points.values() for v in vs])
    assert law.ceiling == pytest.approx(0.8, abs=0.03)
    assert law.gap == pytest.approx(0.5, abs=0.03)
    assert law.exponent == pytest.approx(0.6, abs=0.1)


def test_the_interval_covers_the_truth_in_most_seeded_trials():
    needed = TRUTH.size_for(0.7)
    covered_size = covered_ceiling = 0
    trials = 20
    for seed in range(trials):
        points = _drawn(TRUTH, LONG, repeats=4, noise=0.03, seed=100 + seed)
        answer = answer_for("X", points, target=0.7, gold_articles=33, resamples=150, seed=seed)
        assert answer.verdict in (REACHED, ESTIMATE)
        covered_size += answer.articles[0] <= needed <= answer.articles[2]
        covered_ceiling += answer.ceiling[0] <= TRUTH.ceiling <= answer.ceiling[1]
    assert covered_size >= 0.75 * trials and covered_ceiling >= 0.75 * trials


def test_a_flat_curve_cannot_tell():
    for seed in range(5):
        flat = {size: list(0.3 + np.random.default_rng(seed).normal(0, 0.03, 3)) for size in (1, 2, 3, 4)}
        answer = answer_for("FIGURE", flat, target=0.7, gold_articles=5, resamples=100, seed=seed)
        assert answer.verdict == CANNOT_TELL, answer.reading
        assert answer.reading.startswith("cannot tell from this curve: it does not rise beyond the spread")
    exactly_flat = {size: [0.3, 0.3, 0.3] for size in (1, 2, 3, 4)}
    answer = answer_for("FIGURE", exactly_flat, target=0.7, gold_articles=5, resamples=50)
    assert answer.verdict == CANNOT_TELL and "+0.000 to +0.000" in answer.reading


def test_a_noisy_short_curve_cannot_tell_where_a_long_clean_one_can():
    verdicts = [
        answer_for(
            "X", _drawn(TRUTH, [1, 2, 3, 4], 3, noise=0.15, seed=seed), target=0.7, gold_articles=5, resamples=100
        ).verdict
        for seed in range(5)
    ]
    assert verdicts.count(CANNOT_TELL) >= 4
    clean = answer_for("X", _drawn(TRUTH, LONG, 3, noise=0.01, seed=1), target=0.7, gold_articles=9, resamples=100)
    assert clean.verdict == ESTIMATE and clean.more[0] <= 15 - 9 <= clean.more[2]
    assert re.fullmatch(
        r"\d+ more article\(s\) of gold \(\d+–\d+\): F1 0\.7 at about \d+ training articles \(\d+–\d+, 90% interval\); "
        r"the gold has 9",
        clean.reading,
    )


def test_no_claim_beyond_the_curve_before_its_sizes_span_three_doublings():
    short = _drawn(TRUTH, [1, 2, 3, 4], 3, noise=0.005, seed=3)
    answer = answer_for("ACTOR", short, target=0.65, gold_articles=5, resamples=100)
    assert answer.verdict == CANNOT_TELL and answer.articles is None
    assert answer.reading == (
        "cannot tell from this curve: its sizes span only 4× (1 to 4 articles); an answer needs sizes up to 8, "
        "a gold of 9"
    )
    low = PowerLaw(ceiling=0.5, gap=0.3, exponent=1.0, smallest=1.0)
    assert (
        answer_for("DEMAND", _drawn(low, [1, 2, 3, 4], 3, 0.01, 2), target=0.7, gold_articles=5, resamples=50).verdict
        == CANNOT_TELL
    )
    longer = _drawn(TRUTH, [1, 2, 4, 8], 3, noise=0.005, seed=3)
    assert answer_for("ACTOR", longer, target=0.75, gold_articles=9, resamples=100).verdict == ESTIMATE


def test_a_ceiling_below_the_target_is_not_reachable_and_a_target_within_the_gold_is_reached():
    low = PowerLaw(ceiling=0.5, gap=0.3, exponent=1.0, smallest=1.0)
    points = _drawn(low, LONG, 3, noise=0.01, seed=2)
    answer = answer_for("DEMAND", points, target=0.7, gold_articles=33, resamples=100)
    assert answer.verdict == NOT_REACHABLE and answer.ceiling[1] < 0.7
    assert answer.reading.startswith("not reachable within the fitted ceiling: F1 levels off at 0.5")
    reached = answer_for("DEMAND", points, target=0.4, gold_articles=33, resamples=100)
    assert reached.verdict == REACHED and reached.more == (0, 0, 0)
    assert reached.reading.startswith("reached: the fit puts F1 0.4 at ")


def test_too_few_sizes_or_resamples_are_refused():
    with pytest.raises(PlanError, match="at least 3 training sizes"):
        fit_power_law([1, 1, 2, 2], [0.2, 0.3, 0.4, 0.5])
    with pytest.raises(PlanError, match="--bootstrap must be at least 1"):
        answer_for("X", _drawn(TRUTH, LONG, 2, 0.01, 0), target=0.7, gold_articles=33, resamples=0)


# --- annotator time -----------------------------------------------------------------------------


def test_a_task_left_open_overnight_is_an_outlier_and_said():
    times = [600.0, 620, 580, 640, 610, 590, 50_000]
    assert outliers(times) == [False] * 6 + [True]
    pace = pace_from_lead_times({"ana@x": times}, annotators_per_task=1, source="test")
    (ana,) = pace.annotators
    assert ana.kept == 6 and ana.outliers == (50_000,) and ana.median == pytest.approx(605)
    assert (
        ana.reading()
        == "ana@x: 6 annotation(s), median 10.1 min (quartiles 9.9 min–10.3 min); left out as outliers: 13.9 h"
    )
    assert pace.seconds == pytest.approx(605)


def test_an_annotator_with_few_times_is_judged_against_everyone():
    lead_times = {
        "ana@x": [600.0, 620, 580, 640, 610],
        "bo@x": [900.0, 40_000],  # slow, and one task left open
        "cy@x": [None, 0, 300.0],  # two not recorded (an API import, a zero)
    }
    pace = pace_from_lead_times(lead_times, annotators_per_task=2, source="Label Studio project 'News'")
    by_name = {a.annotator: a for a in pace.annotators}
    assert by_name["bo@x"].outliers == (40_000,) and by_name["bo@x"].kept == 1
    assert by_name["cy@x"].unrecorded == 2 and by_name["cy@x"].kept == 1 and not by_name["cy@x"].outliers
    kept = [600.0, 620, 580, 640, 610, 900, 300]
    assert pace.seconds == pytest.approx(float(np.median(kept)))
    assert pace.quartiles == pytest.approx(tuple(np.percentile(kept, [25, 75])))
    # hours: 10 articles × 2 annotators at the median, from 5 at the fast quartile to 20 at the slow one
    low, point, high = pace.hours(5, 10, 20)
    assert point == pytest.approx(10 * 2 * pace.seconds / 3600)
    assert (low, high) == pytest.approx((5 * 2 * pace.quartiles[0] / 3600, 20 * 2 * pace.quartiles[1] / 3600))
    assert pace.reading().endswith(
        "from Label Studio project 'News': 7 annotation(s) by 3 annotator(s), 1 outlier(s) left out"
    )


def test_no_recorded_time_asks_for_seconds_per_article():
    with pytest.raises(PlanError, match="no annotation in Label Studio project 'X' has a lead_time; give --seconds"):
        pace_from_lead_times({"ana@x": [None, 0]}, annotators_per_task=1, source="Label Studio project 'X'")
    pace = fixed_pace(900, annotators_per_task=3)
    assert pace.hours(1, 2, 4) == pytest.approx((0.75, 1.5, 3.0))
    assert (
        pace.reading()
        == "pace: 15.0 min per article and annotator, 3 annotator(s) per article; from --seconds-per-article"
    )
    with pytest.raises(PlanError, match="--seconds-per-article must be above 0"):
        fixed_pace(0)


class _Export:
    """What annotation_lead_times asks of a Studio: the project, the users, the JSON export."""

    url = "http://127.0.0.1:9"

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def project(self, title):
        from annotate.studio.client import Project

        return Project(7, title, "<View/>", annotators_per_task=2)

    def users(self):
        return {1: "ana@x", 2: "bo@x"}

    def export_json(self, project):
        return self.raw


def test_lead_times_are_read_from_the_export_by_annotator():
    tasks = [
        {"id": 1, "annotations": [{"completed_by": 1, "lead_time": 612.5}, {"completed_by": 2, "lead_time": 30}]},
        {"id": 2, "annotations": [{"completed_by": 1, "lead_time": None}, {"completed_by": 2, "was_cancelled": True}]},
        {"id": 3, "annotations": [{"completed_by": {"id": 3, "email": "cy@x"}, "lead_time": 5}]},
        {"id": 4, "annotations": []},
    ]
    times = annotation_lead_times(_Export(json.dumps(tasks).encode()), "News")
    assert times.seconds == {"ana@x": [612.5, None], "bo@x": [30.0], "cy@x": [5.0]}
    assert (times.project, times.annotators_per_task, times.cancelled) == ("News", 2, 1)
    with pytest.raises(StudioError, match="not a JSON list"):
        annotation_lead_times(_Export(b"<html>"), "News")


# --- plan.json, the page, the command -----------------------------------------------------------


def _fixed_curve(folder, labels=LABELS) -> None:
    """A curve of 4 sizes × 3 repeats on a gold of 5 articles: ACTOR rises clearly, FIGURE is flat."""
    laws = {
        "ACTOR": PowerLaw(0.8, 0.35, 0.7, 1),
        "DEMAND": PowerLaw(0.45, 0.4, 0.3, 1),
        "FIGURE": PowerLaw(0.3, 0.0, 1.0, 1),
        "ATTRIBUTION": PowerLaw(0.7, 0.5, 0.6, 1),
        "micro": PowerLaw(0.75, 0.35, 0.5, 1),
    }
    rng = np.random.default_rng(0)
    runs = []
    for size in (1, 2, 3, 4):
        for repeat in (1, 2, 3):
            f1 = {name: float(np.clip(law(size) + rng.normal(0, 0.02), 0, 1)) for name, law in laws.items()}
            runs.append(CurveRun(size, repeat, ("a",), ("b",), {"strict": f1, "partial": f1}, 1.0))
    write_curve(folder, Curve(list(labels), [1, 2, 3, 4], runs, {"articles": 5, "repeats": 3}))


def test_plan_json_on_a_fixed_curve(tmp_path):
    _fixed_curve(tmp_path)
    curve, sha = read_curve(tmp_path)
    plan = make_plan(curve, target=0.5, pace=fixed_pace(600), resamples=100, seed=0, curve_sha256=sha)
    files = write_plan(tmp_path, plan)
    written = json.loads(files["plan"].read_text(encoding="utf-8"))
    assert files["plot"].read_bytes()[:4] == b"\x89PNG"
    assert written["target"] == 0.5 and written["level"] == "strict" and written["gold_articles"] == 5
    assert written["source"]["curve_sha256"] == sha and written["source"]["sizes"] == [1, 2, 3, 4]
    assert written["pace"]["seconds_per_article"] == 600 and written["law"] == "f(n) = c − a·(n/n₁)^(−b)"
    verdicts = {answer["label"]: answer["verdict"] for answer in written["answers"]}
    assert list(verdicts) == [*LABELS, "micro"]
    assert verdicts["ACTOR"] == REACHED and verdicts["FIGURE"] == CANNOT_TELL
    for answer in written["answers"]:
        assert len(answer["points"]) == 12 and {"c", "a", "b", "n1"} == set(answer["fit"])
        assert all(row[1] <= row[3] for row in answer["band"])
    # same inputs and seed, same plan
    again = make_plan(curve, target=0.5, pace=fixed_pace(600), resamples=100, seed=0, curve_sha256=sha)
    assert json.dumps(again.to_dict()) == json.dumps(plan.to_dict())


def test_plan_refuses_what_it_cannot_answer(tmp_path):
    _fixed_curve(tmp_path)
    curve, _ = read_curve(tmp_path)
    with pytest.raises(PlanError, match=r"no such label in the curve: PLACE \(it has ACTOR, DEMAND"):
        make_plan(curve, target=0.7, labels=["PLACE"])
    with pytest.raises(PlanError, match="--target is an F1 between 0 and 1"):
        make_plan(curve, target=70)
    with pytest.raises(PlanError, match="--level must be one of strict, partial"):
        make_plan(curve, target=0.7, level="exact")
    with pytest.raises(PlanError, match=r"curve\.json: no such file \(run `annotate curve` first\)"):
        read_curve(tmp_path / "nowhere")


def test_the_report_shows_the_plan_inline_and_loads_nothing(tmp_path):
    gold = write_fixed_evaluation(tmp_path)
    page = render_report(tmp_path, gold)
    assert 'id="plan"' not in page
    _fixed_curve(tmp_path)
    curve, sha = read_curve(tmp_path)
    write_plan(tmp_path, make_plan(curve, target=0.5, labels=["ACTOR", "FIGURE"], resamples=50, curve_sha256=sha))
    page = render_report(tmp_path, gold)
    section = page[page.index('<h2 id="plan">') :]
    section = section[: section.index("<h2", 5)]
    assert "Plan: gold needed for strict F1 0.5" in section and '<a href="#plan">Plan</a>' in page
    assert re.search(r'<img alt="learning curves[^"]*" src="data:image/png;base64,', section)
    assert "<td>ACTOR</td><td>reached</td>" in section and "<td>FIGURE</td><td>cannot tell</td>" in section
    assert "without --project or --seconds-per-article" in section and "has changed" not in section
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    _fixed_curve(tmp_path, labels=LABELS[::-1])  # a new curve.json: the plan on the page is now stale
    assert "curve.json has changed since this plan was made" in render_report(tmp_path, gold)


def test_plan_command_prints_an_answer_per_label(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.annotate]\n", encoding="utf-8")
    _fixed_curve(tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    args = ["plan", "--target", "0.5", "--bootstrap", "50", "--seconds-per-article", "600"]
    result = CliRunner().invoke(app, [*args, "--label", "ACTOR", "--label", "FIGURE"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "To reach strict F1 0.5 (curve: sizes 1, 2, 3, 4, 12 runs, gold of 5 articles; 50 resamples):"
    assert lines[1].startswith("  ACTOR: reached: the fit puts F1 0.5 at ")
    assert lines[2].startswith("  FIGURE: cannot tell from this curve: it does not rise beyond the spread")
    assert lines[3].startswith("pace: 10.0 min per article and annotator, 1 annotator(s) per article")
    assert (tmp_path / "reports" / PLAN_FILE).is_file()
    result = CliRunner().invoke(app, ["plan", "--target", "0.5", "--bootstrap", "20"])
    assert result.exit_code == 0 and "hours: give --project TITLE" in result.output
    result = CliRunner().invoke(app, [*args, "--project", "News"])
    assert result.exit_code == 1 and result.output.startswith("Error: give --project (times recorded in Label")
    result = CliRunner().invoke(app, ["plan", "--target", "0.5", "--out", "elsewhere"])
    assert result.exit_code == 1 and "Error: elsewhere/curve.json: no such file" in result.output


def test_curve_sizes_go_up_to_the_whole_gold_less_one():
    assert default_sizes(5) == [1, 2, 3, 4] and default_sizes(9) == list(range(1, 9))
    assert default_sizes(101) == [1, 2, 4, 7, 14, 27, 52, 100]
    assert all(default_sizes(n)[-1] == n - 1 and len(default_sizes(n)) <= 8 for n in range(2, 400))


def test_text_from_the_curve_reaches_the_plan_section_escaped(tmp_path):
    gold = write_fixed_evaluation(tmp_path)
    hostile = '<img src=x onerror="alert(1)">'
    law = PowerLaw(0.8, 0.35, 0.7, 1)
    runs = []
    for size in (1, 2, 3, 4):
        for repeat in (1, 2, 3):
            f1 = {hostile: float(law(size)), "micro": float(law(size))}
            runs.append(CurveRun(size, repeat, ("a",), ("b",), {"strict": f1, "partial": f1}, 1.0))
    write_curve(tmp_path, Curve([hostile], [1, 2, 3, 4], runs, {"articles": 5, "repeats": 3}))
    curve, sha = read_curve(tmp_path)
    write_plan(tmp_path, make_plan(curve, target=0.5, labels=[hostile], resamples=20, curve_sha256=sha))
    page = render_report(tmp_path, gold)
    section = page[page.index('<h2 id="plan">') :]
    section = section[: section.index("<h2", 5)]
    assert hostile not in section
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in section
