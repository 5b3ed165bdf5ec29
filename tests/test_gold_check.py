"""`gold check` finds each kind of problem, and passes on the project's gold; each check level reads the file once."""

from __future__ import annotations

import json

import pytest

from annotate.errors import GoldError
from annotate.gold import GoldCheck, check_gold, gold_stats, inspect_gold, validated_gold
from annotate.records import text_sha256

TEXT = "Hamas officials said 57,000 Palestinians 😀 died."


def _check(tmp_path, schema, nlp, spans, text=TEXT, sha=None, extra_docs=()):
    record = {"id": "doc1", "text": text, "text_sha256": sha or text_sha256(text), "spans": spans}
    lines = [json.dumps(record, ensure_ascii=False)] + [json.dumps(doc) for doc in extra_docs]
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [str(problem) for problem in check_gold(path, schema, nlp)]


def span(start, end, label="ACTOR", text=None):
    return {"start": start, "end": end, "label": label, "text": TEXT[start:end] if text is None else text}


def test_clean_spans_pass(tmp_path, schema, nlp):
    spans = [span(0, 5), span(0, 20, "ATTRIBUTION"), span(21, 40, "FIGURE")]
    assert _check(tmp_path, schema, nlp, spans) == []


def test_offsets_outside_the_text(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [span(40, 99, text="x")])
    assert problem.endswith("doc1: [40:99] ACTOR 'x': offsets outside the text (0..48) or empty")
    assert "gold.jsonl:1" in problem


def test_text_that_does_not_match_the_offsets(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [span(0, 5, text="Hamaz")])
    assert problem.endswith("[0:5] ACTOR 'Hamaz': text at these offsets is 'Hamas'")


def test_label_not_in_schema(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [span(0, 5, "PERSON")])
    assert problem.endswith("label not in the schema (ACTOR, DEMAND, FIGURE, ATTRIBUTION)")


def test_leading_or_trailing_whitespace(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [span(0, 6)])
    assert problem.endswith("[0:6] ACTOR 'Hamas ': leading or trailing whitespace")


def test_exact_duplicates(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [span(0, 5), span(0, 5)])
    assert problem.endswith("[0:5] ACTOR 'Hamas': exact duplicate (2 times)")


def test_text_hash_mismatch(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [], sha="0" * 64)
    assert problem.endswith("doc1: text_sha256 does not match the text (was the article edited?)")


def test_span_edges_off_token_boundaries(tmp_path, schema, nlp):
    (problem,) = _check(tmp_path, schema, nlp, [span(0, 4)])
    assert problem.endswith("[0:4] ACTOR 'Hama': edges are not on spaCy token boundaries (expand gives 'Hamas')")


def test_duplicate_article_ids(tmp_path, schema, nlp):
    other = {"id": "doc1", "text": "x", "text_sha256": text_sha256("x"), "spans": []}
    (problem,) = _check(tmp_path, schema, nlp, [], extra_docs=[other])
    assert "gold.jsonl:2: doc1: article id also used at" in problem


# Spans with one kind of problem each, and the level that first finds it.
LEVEL_OF = {
    "label not in the schema": GoldCheck.OFFSETS,
    "leading or trailing whitespace": GoldCheck.SPANS,
    "edges are not on spaCy token boundaries": GoldCheck.TOKENS,
}


def test_each_check_level_adds_its_checks_to_the_ones_before(tmp_path, schema, nlp):
    off_tokens = {"id": "doc2", "text": TEXT, "text_sha256": text_sha256(TEXT), "spans": [span(0, 4)]}
    _check(tmp_path, schema, nlp, [span(0, 5, "PERSON"), span(0, 6)], extra_docs=[off_tokens])
    for level in GoldCheck:
        found = inspect_gold(tmp_path / "gold.jsonl", schema, nlp, check=level)
        expected = [reason for reason, first in LEVEL_OF.items() if level >= first]
        assert [reason for reason in LEVEL_OF if any(reason in str(p) for p in found.problems)] == expected, level
        assert [doc.id for doc in found.docs] == ["doc1", "doc2"]
    with pytest.raises(GoldError, match=r"^2 problem\(s\) in the gold .*gold\.jsonl$") as raised:
        validated_gold(tmp_path / "gold.jsonl", schema)
    assert len(raised.value.problems) == 2


def test_every_check_level_reads_the_gold_file_once(tmp_path, schema, nlp, monkeypatch):
    import annotate.corpus
    from annotate.experiment import checked_gold

    _check(tmp_path, schema, nlp, [span(0, 5)])
    reads = []
    read_bytes = annotate.corpus.read_bytes
    monkeypatch.setattr(
        annotate.corpus, "read_bytes", lambda path, *args: reads.append(path) or read_bytes(path, *args)
    )
    path = tmp_path / "gold.jsonl"
    readers = {
        **{level.name: lambda level=level: inspect_gold(path, schema, nlp, check=level) for level in GoldCheck},
        "validated_gold": lambda: validated_gold(path, schema),
        "predictions": lambda: validated_gold(path, schema, check=GoldCheck.OFFSETS, what="predictions"),
        "experiment.checked_gold": lambda: checked_gold(path, schema),
    }
    for name, read in readers.items():
        reads.clear()
        read()
        assert reads == [path], name


def test_an_article_with_no_spans_is_a_warning_not_a_problem(tmp_path, schema, nlp):
    empty = {"id": "doc2", "text": "x", "text_sha256": text_sha256("x"), "spans": []}
    _check(tmp_path, schema, nlp, [span(0, 5)], extra_docs=[empty])
    found = inspect_gold(tmp_path / "gold.jsonl", schema, nlp)
    assert found.problems == []
    assert [str(w) for w in found.warnings] == [
        f"{tmp_path / 'gold.jsonl'}:2: doc2: no spans (an empty Submit? annotators should Skip; "
        "`pull --allow-empty` accepts it)"
    ]


def test_gold_check_command_warns_about_empty_articles_and_still_passes(tmp_path, schema, nlp):
    from typer.testing import CliRunner

    from annotate.cli import app

    empty = {"id": "doc2", "text": "x", "text_sha256": text_sha256("x"), "spans": []}
    _check(tmp_path, schema, nlp, [span(0, 5)], extra_docs=[empty])
    path = tmp_path / "gold.jsonl"
    result = CliRunner().invoke(app, ["gold", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Warning: {path}:2: doc2: no spans (an empty Submit? annotators should Skip; " + (
        "`pull --allow-empty` accepts it)\n"
    )
    assert result.stdout == f"{path}: OK\n"


def test_project_gold_is_clean(project_root, schema, nlp):
    found = inspect_gold(project_root / "gold", schema, nlp)
    assert [str(p) for p in found.problems + found.warnings] == []


def test_project_gold_covers_every_seed_and_every_label(project_root, schema, nlp):
    from annotate.articles import read_articles
    from annotate.corpus import read_gold

    gold = {doc.id: doc for doc in read_gold(project_root / "gold")}
    seeds = read_articles([project_root / "seeds"])
    assert sorted(gold) == sorted(a.id for a in seeds)
    for article in seeds:
        assert gold[article.id].text == article.text
    stats = gold_stats(gold.values(), schema, nlp)
    assert all(stats.totals[label] > 0 for label in schema.names)
    assert sum(stats.totals.values()) >= 200
