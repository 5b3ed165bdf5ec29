"""The acceptance report on hand-made cases: what annotators did to the predictions they were shown."""

from __future__ import annotations

from annotate.acceptance import (
    ShownPrediction,
    acceptance,
    acceptance_path,
    compare,
    read_acceptance,
    write_acceptance,
)
from annotate.records import PulledAnnotation, Span

TEXT = "Hamas said Israel must withdraw 57,000 troops."
HAMAS = Span(0, 5, "ACTOR", "Hamas")
ISRAEL = Span(11, 17, "ACTOR", "Israel")
FIGURE = Span(32, 38, "FIGURE", "57,000")


def _figures(counts) -> dict:
    return {label: (c.kept, c.boundary_changed, c.label_changed, c.deleted, c.added) for label, c in counts.items()}


def test_all_kept():
    assert _figures(compare([HAMAS, ISRAEL, FIGURE], [HAMAS, ISRAEL, FIGURE])) == {
        "ACTOR": (2, 0, 0, 0, 0),
        "FIGURE": (1, 0, 0, 0, 0),
    }


def test_one_boundary_moved_one_deleted_one_added():
    moved = Span(32, 45, "FIGURE", "57,000 troops")
    added = Span(18, 31, "DEMAND", "must withdraw")
    assert _figures(compare([HAMAS, ISRAEL, FIGURE], [HAMAS, moved, added])) == {
        "ACTOR": (1, 0, 0, 1, 0),
        "FIGURE": (0, 1, 0, 0, 0),
        "DEMAND": (0, 0, 0, 0, 1),
    }


def test_a_label_changed_counts_under_the_predicted_label():
    relabelled = Span(11, 17, "DEMAND", "Israel")
    assert _figures(compare([ISRAEL], [relabelled])) == {"ACTOR": (0, 0, 1, 0, 0)}


def test_an_exact_match_wins_over_an_overlap_of_another_predicted_span():
    wide = Span(0, 17, "ACTOR", "Hamas said Israel")
    # the annotation keeps Hamas exactly; Israel is widened to cover both (boundary changed)
    assert _figures(compare([HAMAS, ISRAEL], [HAMAS, wide])) == {"ACTOR": (1, 1, 0, 0, 0)}


def _annotation(task_id, spans, created, cancelled=False, number=1):
    return PulledAnnotation(task_id, number, f"d{task_id}", "ann@x", tuple(spans), False, cancelled, created, created)


def test_each_annotation_is_compared_with_the_latest_prediction_shown_before_it():
    old = ShownPrediction(1, "m-old", "2026-01-01T10:00:00Z", (HAMAS,))
    new = ShownPrediction(1, "m-new", "2026-01-01T12:00:00Z", (HAMAS, ISRAEL))
    after_old = _annotation(1, [HAMAS], "2026-01-01T11:00:00Z", number=1)
    after_new = _annotation(1, [HAMAS], "2026-01-01T13:00:00Z", number=2)
    no_prediction = _annotation(2, [FIGURE], "2026-01-01T13:00:00Z", number=3)
    cancelled = _annotation(1, [], "2026-01-01T13:00:00Z", cancelled=True, number=4)
    report = acceptance([after_old, after_new, no_prediction, cancelled], [old, new])
    figures = report.to_dict()
    assert figures["unassisted_annotations"] == 1
    assert figures["model_versions"]["m-old"]["annotations"] == 1
    assert figures["model_versions"]["m-old"]["total"]["kept"] == 1
    assert figures["model_versions"]["m-old"]["total"]["precision"] == 1.0
    newer = figures["model_versions"]["m-new"]
    assert (newer["total"]["kept"], newer["total"]["deleted"]) == (1, 1)
    assert (newer["total"]["precision"], newer["total"]["recall"]) == (0.5, 1.0)


def test_precision_and_recall_count_exact_matches_only():
    moved = Span(32, 45, "FIGURE", "57,000 troops")
    added = Span(18, 31, "DEMAND", "must withdraw")
    report = acceptance(
        [_annotation(1, [HAMAS, moved, added], "2026-01-02T00:00:00Z")],
        [ShownPrediction(1, "m", "2026-01-01T00:00:00Z", (HAMAS, ISRAEL, FIGURE))],
    )
    total = report.to_dict()["model_versions"]["m"]["total"]
    assert total["predicted"] == 3 and total["annotated"] == 3
    assert total["precision"] == round(1 / 3, 4) and total["recall"] == round(1 / 3, 4)
    assert report.to_dict()["model_versions"]["m"]["labels"]["DEMAND"]["precision"] is None


def test_agreement_on_a_pulled_file_shows_the_acceptance_the_pull_found(tmp_path, monkeypatch, project_root):
    import json

    from typer.testing import CliRunner

    from annotate.cli import app
    from annotate.corpus import write_pulled
    from annotate.records import text_sha256

    monkeypatch.chdir(project_root)
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "doc.txt").write_text(TEXT, encoding="utf-8")
    pulled = tmp_path / "news.jsonl"
    sha = text_sha256(TEXT)
    write_pulled(
        pulled,
        [
            PulledAnnotation(
                7, 70, "doc", "alice", (HAMAS, FIGURE), created_at="2026-01-02T00:00:00Z", text_sha256=sha
            ),
            PulledAnnotation(7, 71, "doc", "bob", (HAMAS,), created_at="2026-01-02T00:00:00Z", text_sha256=sha),
        ],
    )
    report = acceptance(
        [_annotation(7, [HAMAS, FIGURE], "2026-01-02T00:00:00Z")],
        [ShownPrediction(7, "model-best-abc", "2026-01-01T00:00:00Z", (HAMAS, ISRAEL))],
    )
    write_acceptance(report.to_dict(), acceptance_path(pulled))
    assert json.loads(acceptance_path(pulled).read_text())["model_versions"]["model-best-abc"]["total"]["deleted"] == 1
    result = CliRunner().invoke(app, ["agreement", str(pulled), "--articles", str(tmp_path / "articles")])
    assert result.exit_code == 0, result.output
    assert "What annotators did to the predictions (as pulled, news.acceptance.json)" in result.output
    assert "model-best-abc" in result.output


def test_acceptance_file_sits_beside_the_pulled_file_and_reads_back(tmp_path):
    report = acceptance(
        [_annotation(7, [HAMAS], "2026-01-02T00:00:00Z")],
        [ShownPrediction(7, "m", "2026-01-01T00:00:00Z", (HAMAS, ISRAEL))],
    )
    path = acceptance_path(tmp_path / "pulled" / "news-spans.jsonl")
    assert path == tmp_path / "pulled" / "news-spans.acceptance.json"
    assert read_acceptance(path) is None, "no file: no figures, not an error"
    write_acceptance(report.to_dict(), path)
    assert read_acceptance(path) == report.to_dict()
    path.write_text("{not json", encoding="utf-8")
    assert read_acceptance(path) is None
