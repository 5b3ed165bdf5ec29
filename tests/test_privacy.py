"""Annotators' privacy: published files name pseudonyms, stable from one publish to the next."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
from typer.testing import CliRunner

from annotate import privacy
from annotate.cli import app
from annotate.corpus import write_gold
from annotate.errors import PublishError
from annotate.records import AnnotatedDoc, Span
from tests.test_publish import ROOT, publish_to, read_view

EMAILS = ("alice.smith@example.org", "bob.jones@example.org", "carol@example.org")


def _docs(annotators: tuple[str, ...]) -> list[AnnotatedDoc]:
    text = "Hamas said Israel must withdraw."
    return [
        AnnotatedDoc(f"doc-{number}", text, (Span.from_offsets(text, 0, 5, "ACTOR"),), annotator=who, source="seeds/x")
        for number, who in enumerate(annotators)
    ]


def _agreement(first: str, second: str) -> dict:
    """Agreement figures as `annotate agreement --json-out` writes them (publish checks their shape)."""
    counts = {"matched": 1, "first": 1, "second": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    return {
        "schema_version": 1,
        "labels": ["ACTOR"],
        "annotators": [first, second],
        "documents": 1,
        "documents_shared": 1,
        "tokens_shared": 6,
        "summary": {
            "strict_f1_mean": 1.0,
            "partial_f1_mean": 1.0,
            "cohen_kappa_mean": 1.0,
            "krippendorff_alpha_mean": 1.0,
        },
        "krippendorff_alpha": {"mean": 1.0, "per_label": {"ACTOR": 1.0}},
        "pairs": [
            {
                "annotators": [first, second],
                "documents": 1,
                "strict": {"overall": counts, "per_label": {"ACTOR": counts}},
                "partial": {"overall": counts, "per_label": {"ACTOR": counts}},
                "cohen_kappa": {"mean": 1.0, "per_label": {"ACTOR": 1.0}},
            }
        ],
    }


def _published_text(out_dir: Path) -> str:
    """Every published file as text: the card as written, the parquet files as the rows they hold."""
    parts = [(out_dir / "README.md").read_text(encoding="utf-8")]
    for parquet in sorted(out_dir.rglob("*.parquet")):
        parts.append(json.dumps(read_view(parquet).to_list(), ensure_ascii=False))
        parts.append(parquet.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_new_names_are_numbered_in_sorted_order_after_the_highest_kept():
    assert privacy.extend_mapping({}, ["b", "a", ""]) == {"a": "annotator-1", "b": "annotator-2"}
    kept = {"z": "annotator-4"}
    assert privacy.extend_mapping(kept, ["a", "z"]) == {"z": "annotator-4", "a": "annotator-5"}


def test_replace_names_reaches_keys_lists_and_sentences():
    mapping = {"a@x.org": "annotator-1", "b@x.org": "annotator-2"}
    figures = {"a@x.org": ["b@x.org", 3], "note": "a@x.org vs b@x.org", "n": 1.5}
    assert privacy.replace_names(figures, mapping) == {
        "annotator-1": ["annotator-2", 3],
        "note": "annotator-1 vs annotator-2",
        "n": 1.5,
    }


def test_a_broken_mapping_file_is_one_clear_error(tmp_path):
    path = tmp_path / "annotators.json"
    path.write_text('{"a": "annotator-1", "b": "annotator-1"}', encoding="utf-8")
    with pytest.raises(PublishError, match="two annotators share a pseudonym"):
        privacy.read_mapping(path)
    path.write_text("[1]", encoding="utf-8")
    with pytest.raises(PublishError, match="must be a JSON object"):
        privacy.read_mapping(path)


def test_published_files_hold_no_e_mail_and_the_pseudonyms_stay_stable(tmp_path):
    mapping = tmp_path / "private" / "annotators.json"
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, _docs(EMAILS[:2]))
    agreement = tmp_path / "agreement.json"
    agreement.write_text(json.dumps(_agreement(EMAILS[1], EMAILS[2])), encoding="utf-8")

    first = tmp_path / "first"
    publish_to(first, gold, agreement_path=agreement, pseudonyms_path=mapping, date="2025-01-01")
    published = _published_text(first)
    for email in EMAILS:
        assert email not in published
        assert email.split("@")[0] not in published
    rows = read_view(first / "spans" / "test-00000-of-00001.parquet").to_list()
    assert {row["id"]: row["annotator"] for row in rows} == {"doc-0": "annotator-1", "doc-1": "annotator-2"}
    card = (first / "README.md").read_text(encoding="utf-8")
    assert "annotator-2 vs annotator-3" in card and "stable pseudonyms" in card
    kept = json.loads(mapping.read_text(encoding="utf-8"))
    assert kept == {EMAILS[0]: "annotator-1", EMAILS[1]: "annotator-2", EMAILS[2]: "annotator-3"}
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600
    assert stat.S_IMODE(mapping.parent.stat().st_mode) == 0o700

    # A later gold with a newcomer who sorts first: everyone keeps their pseudonym.
    write_gold(gold, _docs(("aaron@example.org", EMAILS[1], EMAILS[0])))
    second = tmp_path / "second"
    publish_to(second, gold, pseudonyms_path=mapping, date="2025-01-01")
    rows = read_view(second / "spans" / "test-00000-of-00001.parquet").to_list()
    assert [row["annotator"] for row in sorted(rows, key=lambda r: r["id"])] == [
        "annotator-4",
        "annotator-2",
        "annotator-1",
    ]
    assert "aaron" not in _published_text(second)


def test_real_names_only_when_asked(tmp_path):
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, _docs(EMAILS[:1]))
    publish_to(tmp_path / "out", gold, real_names=True, date="2025-01-01")
    rows = read_view(tmp_path / "out" / "spans" / "test-00000-of-00001.parquet").to_list()
    assert rows[0]["annotator"] == EMAILS[0]
    assert "stable pseudonyms" not in (tmp_path / "out" / "README.md").read_text(encoding="utf-8")


def test_cli_publishes_pseudonyms_and_keeps_the_key_in_the_ignored_private_folder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.annotate]\nschema = "{ROOT / "guidelines" / "labels.toml"}"\n', encoding="utf-8"
    )
    write_gold(tmp_path / "gold" / "gold.jsonl", _docs(EMAILS[:2]))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["publish", "dist/ds", "--date", "2025-01-01"])
    assert result.exit_code == 0, result.output
    assert f"who is who stays in {tmp_path / '.private' / 'annotators.json'}" in result.output
    assert EMAILS[0] not in _published_text(tmp_path / "dist" / "ds")
    assert ".private/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    named = runner.invoke(app, ["publish", "dist/named", "--date", "2025-01-01", "--real-names"])
    assert named.exit_code == 0, named.output
    assert "Warning: annotators are published under their real names" in named.output
    assert EMAILS[0] in _published_text(tmp_path / "dist" / "named")
