"""Gold v1 and v2 differ exactly as gold/CHANGELOG.md says: separable DEMAND spans split, nothing else."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from annotate.agreement import span_agreement
from annotate.convert import blank_pipeline
from annotate.corpus import read_gold
from annotate.gold import gold_stats, inspect_gold
from annotate.labels import load_schema

# What may lie between the parts of one split demand: coordinators, commas, quote marks, spaces.
BETWEEN_PARTS = re.compile(r"^[\s,“”\"]*(?:and|or)?[\s,“”\"]*$")


@pytest.fixture(scope="module")
def releases(project_root):
    v1 = {doc.id: doc for doc in read_gold(project_root / "gold" / "v1" / "gold.jsonl")}
    v2 = {doc.id: doc for doc in read_gold(project_root / "gold" / "gold.jsonl")}
    return v1, v2


def _demands(doc):
    return [span for span in doc.spans if span.label == "DEMAND"]


def _splits(releases) -> dict[tuple[str, int, int], list[tuple[int, int]]]:
    """Each v1 DEMAND span that v2 does not keep, with the v2 spans that replace it."""
    v1, v2 = releases
    found = {}
    for doc_id, old in v1.items():
        new = v2[doc_id]
        for span in set(_demands(old)) - set(_demands(new)):
            parts = [p for p in _demands(new) if span.start <= p.start and p.end <= span.end]
            found[(doc_id, span.start, span.end)] = [(p.start, p.end) for p in sorted(parts)]
    return found


def test_v1_and_v2_differ_only_in_demand_spans(releases):
    v1, v2 = releases
    assert sorted(v1) == sorted(v2)
    for doc_id, old in v1.items():
        new = v2[doc_id]
        assert (new.text, new.text_sha256, new.annotator, new.source) == (
            old.text,
            old.text_sha256,
            old.annotator,
            old.source,
        )
        assert [s for s in new.spans if s.label != "DEMAND"] == [s for s in old.spans if s.label != "DEMAND"]


def test_every_v2_demand_lies_inside_a_v1_demand(releases):
    v1, v2 = releases
    for doc_id, new in v2.items():
        for span in _demands(new):
            assert any(o.start <= span.start and span.end <= o.end for o in _demands(v1[doc_id])), (doc_id, span)


def test_a_split_demand_keeps_its_edges_and_drops_only_coordinators(releases):
    v1, _ = releases
    splits = _splits(releases)
    assert splits, "v2 splits some v1 DEMAND spans"
    for (doc_id, start, end), parts in splits.items():
        text = v1[doc_id].text
        assert len(parts) >= 2, (doc_id, text[start:end])
        assert parts[0][0] == start and parts[-1][1] == end, (doc_id, text[start:end])
        for (_, left_end), (right_start, _) in pairwise(parts):
            assert BETWEEN_PARTS.match(text[left_end:right_start]), (doc_id, text[left_end:right_start])


def test_the_changelog_lists_every_changed_span(project_root, releases):
    v1, v2 = releases
    changelog = (project_root / "gold" / "CHANGELOG.md").read_text(encoding="utf-8")
    listed = {}
    for doc_id, old, new in re.findall(r"^\d+\. `(\w+)` (\[\d+:\d+\] `[^`]+`)\n +→ (.+)$", changelog, re.M):
        start, end = map(int, re.match(r"\[(\d+):(\d+)\]", old).groups())
        listed[(doc_id, start, end)] = [tuple(map(int, m)) for m in re.findall(r"\[(\d+):(\d+)\]", new)]
        assert f"`{v1[doc_id].text[start:end]}`" in old
        assert all(f"`{v2[doc_id].text[a:b]}`" in new for a, b in listed[(doc_id, start, end)])
    assert listed == _splits(releases)


def test_changelog_table_matches_gold_stats(project_root, releases):
    schema = load_schema(project_root / "guidelines" / "labels.toml")
    nlp = blank_pipeline("en")
    before, after = (gold_stats(release.values(), schema, nlp) for release in releases)
    changelog = (project_root / "gold" / "CHANGELOG.md").read_text(encoding="utf-8")
    for label in schema.names:
        (old_mean, old_max), (new_mean, new_max) = before.length_summary(label), after.length_summary(label)
        old, new = before.totals[label], after.totals[label]
        row = f"| {label} | {old} | {new} | {new - old:+d} |".replace("+0 |", "0 |")
        row += f" {old_mean:.1f} | {new_mean:.1f} | {old_max} | {new_max} |"
        assert row in changelog


def test_gold_v1_is_still_clean(project_root):
    schema = load_schema(project_root / "guidelines" / "labels.toml")
    found = inspect_gold(project_root / "gold" / "v1" / "gold.jsonl", schema, blank_pipeline("en"))
    assert [str(p) for p in found.problems + found.warnings] == []


def test_readme_counts_are_the_shipped_gold(project_root, releases):
    schema = load_schema(project_root / "guidelines" / "labels.toml")
    before, after = (gold_stats(release.values(), schema, blank_pipeline("en")).totals for release in releases)
    readme = " ".join((project_root / "README.md").read_text(encoding="utf-8").split())
    per_label = ", ".join(f"{label} {after[label]}" for label in schema.names)
    assert f"{sum(after.values())} spans ({per_label})" in readme
    assert f"Gold v1 ({sum(before.values())} spans" in readme


def test_changelog_agreement_of_v1_and_v2(project_root, releases):
    v1, v2 = ({doc_id: doc.spans for doc_id, doc in release.items()} for release in releases)
    strict, partial = span_agreement(v1, v2, ["DEMAND"])
    changelog = " ".join((project_root / "gold" / "CHANGELOG.md").read_text(encoding="utf-8").split())
    figures = f"strict F1 {strict['DEMAND'].f1:.2f} and overlap F1 {partial['DEMAND'].f1:.2f} over the five articles"
    assert figures in changelog
