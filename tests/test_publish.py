"""``annotate publish``: the gold as a Hugging Face dataset that loads with ``datasets`` alone.

Loading is checked in a subprocess that imports nothing of ours, offline, with its own HF_HOME.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import span

# No test may reach the network; set before anything imports datasets or huggingface_hub.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import yaml
from typer.testing import CliRunner

from annotate.cli import app
from annotate.convert import blank_pipeline
from annotate.corpus import gold_sha256, read_gold, write_gold
from annotate.labels import load_schema
from annotate.records import AnnotatedDoc, Span
from annotate.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "guidelines" / "labels.toml")
NLP = blank_pipeline("en")

AWKWARD = (
    "“We will not accept any deal without a full withdrawal,” said عبد الله الحسيني — a Beirut-based "
    "Hamas official 😀. Mr Trump’s 60-day plan; Cafe\u0301 talks.\n\n"
    "Sources said 57,000 Palestinians – and Hamas leaders – were waiting."
)


def small_docs() -> list[AnnotatedDoc]:
    """Three articles with every awkward thing the views must carry: overlaps across and within labels."""
    second = "Egypt and Qatar said on Sunday that “talks” will resume.\nIsrael insists on 50 hostages."
    third = "Mediators from Egypt, Qatar and the US met Hamas. Hamas said Hamas would not disarm."
    return [
        AnnotatedDoc(
            "a-awkward",
            AWKWARD,
            (
                span(AWKWARD, "any deal without a full withdrawal", "DEMAND"),
                span(AWKWARD, "a full withdrawal", "DEMAND"),
                span(AWKWARD, "said عبد الله الحسيني — a Beirut-based Hamas official", "ATTRIBUTION"),
                span(AWKWARD, "عبد الله الحسيني", "ACTOR"),
                span(AWKWARD, "a Beirut-based Hamas official", "ACTOR"),
                span(AWKWARD, "Hamas", "ACTOR"),
                span(AWKWARD, "Mr Trump", "ACTOR"),
                span(AWKWARD, "60-day", "FIGURE"),
                span(AWKWARD, "Cafe\u0301 talks.\n\nSources", "FIGURE"),
                span(AWKWARD, "Sources said", "ATTRIBUTION"),
                span(AWKWARD, "57,000 Palestinians", "FIGURE"),
                span(AWKWARD, "Hamas leaders", "ACTOR"),
            ),
            annotator="alice",
            source="https://example.org/news/a",
        ),
        AnnotatedDoc(
            "b-plain",
            second,
            (
                span(second, "Egypt", "ACTOR"),
                span(second, "Qatar", "ACTOR"),
                span(second, "Egypt and Qatar said", "ATTRIBUTION"),
                span(second, "Israel", "ACTOR"),
                span(second, "50 hostages", "FIGURE"),
            ),
            annotator="bob",
            source="https://example.org/news/b",
        ),
        AnnotatedDoc(
            "c-adjacent",
            third,
            (
                span(third, "Mediators from Egypt, Qatar and the US", "ACTOR"),
                span(third, "Egypt", "ACTOR"),
                span(third, "Qatar", "ACTOR"),
                span(third, "the US", "ACTOR"),
                span(third, "Hamas", "ACTOR"),
                span(third, "Hamas", "ACTOR", 1),
                span(third, "Hamas", "ACTOR", 2),
                span(third, "Hamas said", "ATTRIBUTION"),
            ),
            annotator="alice",
            source="",
        ),
    ]


def read_view(path: Path):
    """A published parquet file as a ``Dataset``, read in memory (no cache folder, no network)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable
    from pyarrow import parquet

    return Dataset(InMemoryTable(parquet.read_table(path)))


def publish_to(out_dir: Path, gold: Path, **options):
    from annotate.publish import publish

    return publish(out_dir, gold, SCHEMA, NLP, **options)


@pytest.fixture(scope="module")
def gold_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gold") / "gold.jsonl"
    write_gold(path, small_docs())
    return path


@pytest.fixture(scope="module")
def published(tmp_path_factory, gold_file) -> Path:
    out_dir = tmp_path_factory.mktemp("published") / "dataset"
    publish_to(out_dir, gold_file)
    return out_dir


LOADER = textwrap.dedent(
    """
    import json, sys
    import datasets

    folder = sys.argv[1]
    found = {}
    for config in datasets.get_dataset_config_names(folder):
        loaded = datasets.load_dataset(folder, config)
        found[config] = {}
        for split, dataset in loaded.items():
            rows = []
            for row in dataset:
                for column, feature in dataset.features.items():
                    inner = getattr(feature, "feature", None)
                    if isinstance(inner, datasets.ClassLabel):
                        row[column] = [inner.int2str(value) for value in row[column]]
                    elif isinstance(inner, dict) and isinstance(inner.get("label"), datasets.ClassLabel):
                        for item in row[column]:
                            item["label"] = inner["label"].int2str(item["label"])
                rows.append(row)
            found[config][split] = rows
    json.dump(found, sys.stdout, ensure_ascii=False)
    """
)


def load_elsewhere(folder: Path, tmp_path: Path) -> dict:
    """``load_dataset`` on every config, in a fresh interpreter that cannot import ``annotate``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "PYTHONPATH"))}
    env |= {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    script = tmp_path / "load.py"
    script.write_text(LOADER, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), str(folder)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def decode_bio(row: dict, text: str) -> list[Span]:
    """A plain reading of the documented layout: a span is a B- tag and the I- tags after it."""
    found = []
    for column, tags in row.items():
        if not column.endswith("_tags") and "_tags_" not in column:
            continue
        start, label = None, ""
        for index, tag in enumerate([*tags, "O"]):
            if start is not None and not tag.startswith("I-"):
                found.append(Span.from_offsets(text, row["token_start"][start], row["token_end"][index - 1], label))
                start = None
            if tag.startswith("B-"):
                start, label = index, tag[2:]
    return sorted(found)


def test_load_dataset_alone_reads_both_views_and_they_give_back_the_gold(published, gold_file, tmp_path):
    loaded = load_elsewhere(published, tmp_path)
    gold = {doc.id: doc for doc in read_gold(gold_file)}

    assert sorted(loaded) == ["spans", "tokens"]
    for view in loaded.values():
        assert list(view) == ["test"]
        assert sorted(row["id"] for row in view["test"]) == sorted(gold)
    for row in loaded["spans"]["test"]:
        doc = gold[row["id"]]
        assert row["text"] == doc.text and row["text_sha256"] == doc.text_sha256
        assert sorted(Span.from_dict(item) for item in row["spans"]) == list(doc.spans)
    for row in loaded["tokens"]["test"]:
        doc = gold[row["id"]]
        assert decode_bio(row, doc.text) == list(doc.spans)
        assert [doc.text[s:e] for s, e in zip(row["token_start"], row["token_end"], strict=True)] == row["tokens"]


def test_a_label_overlapping_itself_gets_a_second_layer_column(published):
    from datasets import Features
    from pyarrow import parquet

    features = Features.from_arrow_schema(parquet.read_schema(published / "tokens" / "test-00000-of-00001.parquet"))
    tag_columns = [name for name in features if "_tags" in name]
    # "a full withdrawal" inside a DEMAND, "Egypt" inside "Mediators from Egypt, …": one extra layer each.
    assert tag_columns == [
        "actor_tags",
        "actor_tags_2",
        "demand_tags",
        "demand_tags_2",
        "figure_tags",
        "attribution_tags",
    ]


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(header)


def test_card_header_parses_and_names_every_data_file(published):
    header = card_header(published)

    assert header["license"] and header["language"] == ["en"] and header["pretty_name"] == "News spans"
    assert header["task_categories"] == ["token-classification"]
    assert header["size_categories"] == ["n<1K"]
    named = {item["path"] for config in header["configs"] for item in config["data_files"]}
    on_disk = {str(path.relative_to(published)) for path in published.rglob("*.parquet")}
    assert named == on_disk and len(on_disk) == 2
    assert {config["config_name"] for config in header["configs"]} == {"spans", "tokens"}
    assert [config["config_name"] for config in header["configs"] if config.get("default")] == ["spans"]
    infos = {info["config_name"]: info for info in header["dataset_info"]}
    assert infos["spans"]["splits"] == [
        {"name": "test", "num_bytes": infos["spans"]["splits"][0]["num_bytes"], "num_examples": 3}
    ]


def test_features_match_the_schema(published):
    from datasets import ClassLabel, Features
    from pyarrow import parquet

    header = {info["config_name"]: info for info in card_header(published)["dataset_info"]}
    spans = Features.from_arrow_schema(parquet.read_schema(published / "spans" / "test-00000-of-00001.parquet"))
    tokens = Features.from_arrow_schema(parquet.read_schema(published / "tokens" / "test-00000-of-00001.parquet"))

    assert spans["spans"].feature["label"] == ClassLabel(names=SCHEMA.names)
    for name in SCHEMA.names:
        assert tokens[f"{name.lower()}_tags"].feature == ClassLabel(names=["O", f"B-{name}", f"I-{name}"])
    assert Features._from_yaml_list(header["spans"]["features"]) == spans
    assert Features._from_yaml_list(header["tokens"]["features"]) == tokens


def test_card_says_what_a_reader_needs(published, gold_file):
    card = (published / "README.md").read_text(encoding="utf-8")
    docs = read_gold(gold_file)

    for label in SCHEMA.labels:
        assert f"| {label.name} | {label.definition} |" in card
    assert "| ACTOR | 15 | 15 |" in card  # spans per label and split: 5 + 3 + 7 in the small gold
    assert gold_sha256(docs) in card and SCHEMA.sha256 in card
    assert "remain the copyright of their publishers" in card
    assert "https://example.org/news/a" in card
    assert "| annotator-1 | 2 |" in card and "| annotator-2 | 1 |" in card  # pseudonyms by default
    assert "single `test` split" in card and "| 2 | " in card  # three leave-one-article-out folds


def test_publishing_twice_gives_byte_identical_files(published, gold_file, tmp_path):
    again = tmp_path / "again"
    publish_to(again, gold_file)
    publish_to(again, gold_file)  # over an earlier publish
    first = {str(p.relative_to(published)): p.read_bytes() for p in published.rglob("*") if p.is_file()}
    second = {str(p.relative_to(again)): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second


def test_publish_reads_the_gold_file_once(gold_file, tmp_path, monkeypatch):
    """Checked (token edges included) and published from the same reading."""
    import annotate.corpus

    reads = []
    read_bytes = annotate.corpus.read_bytes
    monkeypatch.setattr(
        annotate.corpus, "read_bytes", lambda path, *rest: reads.append(path) or read_bytes(path, *rest)
    )
    publish_to(tmp_path / "out", gold_file)
    assert reads.count(gold_file) == 1


def test_no_text_publishes_offsets_labels_and_hashes_only(gold_file, tmp_path):
    from annotate.publish import spans_from_spans_row, spans_from_tokens_row

    out_dir = tmp_path / "no-text"
    publish_to(out_dir, gold_file, include_text=False)
    gold = {doc.id: doc for doc in read_gold(gold_file)}
    spans = read_view(out_dir / "spans" / "test-00000-of-00001.parquet")
    tokens = read_view(out_dir / "tokens" / "test-00000-of-00001.parquet")

    assert spans.column_names == ["id", "text_sha256", "annotator", "source", "spans"]
    assert sorted(spans.features["spans"].feature) == ["end", "label", "start"]
    assert "tokens" not in tokens.column_names
    for row in spans:
        assert spans_from_spans_row(row, spans.features, gold[row["id"]].text) == list(gold[row["id"]].spans)
    for row in tokens:
        assert spans_from_tokens_row(row, tokens.features, gold[row["id"]].text) == list(gold[row["id"]].spans)
    assert "Beirut-based" not in (out_dir / "README.md").read_text(encoding="utf-8")


def test_a_gold_failing_gold_check_is_refused_and_nothing_is_written(tmp_path):
    docs = small_docs()
    bad = docs[0].with_spans([*docs[0].spans, Span(2, 5, "ACTOR", AWKWARD[2:5])])  # "e w": not on token edges
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, [bad, *docs[1:]])
    out_dir = tmp_path / "out"

    result = CliRunner().invoke(app, ["publish", str(out_dir), "--gold", str(gold)])

    assert result.exit_code == 1
    problem, error = result.output.strip().splitlines()
    assert problem.startswith(f"{gold}:1: a-awkward: [2:5] ACTOR 'e w': edges are not on spaCy token boundaries")
    assert error == f"Error: {gold}: 1 problem(s) in the gold; fix them before publishing; nothing was written"
    assert not out_dir.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["gold.jsonl"]


def test_a_refused_gold_leaves_an_earlier_publish_as_it_was(published, tmp_path):
    import shutil

    out_dir = tmp_path / "out"
    shutil.copytree(published, out_dir)
    before = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    docs = small_docs()
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, [docs[0].with_spans([Span(0, 3, "NOT_A_LABEL", AWKWARD[0:3])])])

    from annotate.errors import GoldError

    with pytest.raises(GoldError, match="1 problem\\(s\\) in the gold") as refused:
        publish_to(out_dir, gold)
    assert [problem.reason for problem in refused.value.problems] == [
        "label not in the schema (ACTOR, DEMAND, FIGURE, ATTRIBUTION)"
    ]
    assert {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()} == before


def test_a_folder_that_is_not_an_earlier_publish_is_not_replaced(gold_file, tmp_path):
    from annotate.errors import PublishError

    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(PublishError, match="not empty and was not written by `annotate publish`"):
        publish_to(out_dir, gold_file)
    assert (out_dir / "notes.txt").read_text(encoding="utf-8") == "keep me"


GUIDE = """# Guide: ACTOR, DEMAND

Read it whole.

## 4. ACTOR

**Definition.** Who acts.

**Examples** (000): `Hamas`,
`Mr Trump`.

### A1 Who is an actor
Anyone who acts.

### A2 Extent: titles are in
More.

## 5. DEMAND

No rules yet.
"""


def test_guideline_rules_and_examples_reach_the_card(gold_file, tmp_path):
    guidelines = tmp_path / "GUIDELINES.md"
    guidelines.write_text(GUIDE, encoding="utf-8")
    out_dir = tmp_path / "out"

    publish_to(out_dir, gold_file, guidelines_path=guidelines)
    card = (out_dir / "README.md").read_text(encoding="utf-8")

    assert (
        "- **ACTOR** — rules: A1 Who is an actor; A2 Extent: titles are in. Examples: `Hamas`, `Mr Trump`.\n\n" in card
    )
    assert "**DEMAND** —" not in card  # its section has neither rules nor examples
    assert (out_dir / "GUIDELINES.md").read_bytes() == guidelines.read_bytes()

    publish_to(tmp_path / "no-text", gold_file, guidelines_path=guidelines, include_text=False)
    card = (tmp_path / "no-text" / "README.md").read_text(encoding="utf-8")
    assert not (tmp_path / "no-text" / "GUIDELINES.md").exists()
    assert "does not include them" in card and "`Mr Trump`" not in card


def test_figures_of_annotate_agreement_reach_the_card(gold_file, tmp_path):
    from annotate.agreement import agreement
    from annotate.records import PulledAnnotation

    doc = small_docs()[1]
    alice = PulledAnnotation(1, 1, doc.id, "alice", doc.spans, text_sha256=doc.text_sha256)
    bob = PulledAnnotation(1, 2, doc.id, "bob", doc.spans[:-1], text_sha256=doc.text_sha256)
    report = agreement([alice, bob], {doc.id: doc.text}, SCHEMA.names, NLP)
    figures = tmp_path / "agreement.json"
    figures.write_text(json.dumps(report.to_dict(include_disagreements=False)), encoding="utf-8")

    publish_to(tmp_path / "out", gold_file, agreement_path=figures)
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")

    pair = report.pairs[0]
    assert "1 article(s) annotated independently by two or more of 2 annotators (annotator-1, annotator-2)" in card
    assert f"| span F1, strict (mean over pairs) | {pair.strict_overall.f1:.3f} |" in card
    assert f"| annotator-1 vs annotator-2 | 1 | {pair.strict_overall.f1:.3f} | {pair.partial_overall.f1:.3f} |" in card
    assert "| DEMAND | undefined |" in card  # nobody marked a DEMAND: alpha is undefined, not 0 or 1


def test_other_agreement_json_is_shown_as_it_is(gold_file, tmp_path):
    figures = tmp_path / "agreement.json"
    figures.write_text(json.dumps({"pairs": {"alice+bob": {"strict_f1": 0.81234}}}), encoding="utf-8")
    publish_to(tmp_path / "out", gold_file, agreement_path=figures, real_names=True)
    assert "| pairs.alice+bob.strict_f1 | 0.812 |" in (tmp_path / "out" / "README.md").read_text(encoding="utf-8")


def test_unreadable_agreement_figures_are_one_clear_line(gold_file, tmp_path):
    from annotate.errors import PublishError

    agreement = tmp_path / "agreement.json"
    agreement.write_text("{not json", encoding="utf-8")
    with pytest.raises(PublishError, match=r"agreement\.json: not agreement figures \(a JSON object\) \(invalid JSON"):
        publish_to(tmp_path / "out", gold_file, agreement_path=agreement)
    assert not (tmp_path / "out").exists()


def test_the_date_is_stable_and_says_where_it_came_from(gold_file, tmp_path, monkeypatch):
    from annotate.errors import PublishError
    from annotate.publish import publication_date

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert publication_date(gold_file, "2025-07-01") == ("2025-07-01", "given with --date")
    with pytest.raises(PublishError, match="--date 'July': expected a date like 2025-07-01"):
        publication_date(gold_file, "July")
    day, source = publication_date(gold_file)
    assert "modification time of gold.jsonl" in source and publication_date(gold_file) == (day, source)

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "gold.jsonl").write_bytes(gold_file.read_bytes())
    git_env = {"GIT_AUTHOR_DATE": "2025-03-04T05:06:07Z", "GIT_COMMITTER_DATE": "2025-03-04T05:06:07Z"}
    for command in (
        ["init", "-q"],
        ["add", "gold.jsonl"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "commit", "-qm", "g"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True, env=os.environ | git_env)
    assert publication_date(repo / "gold.jsonl") == ("2025-03-04", "last git commit of gold.jsonl")

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert publication_date(repo / "gold.jsonl") == ("2023-11-14", "SOURCE_DATE_EPOCH")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_hub_is_one_clear_line_without_the_token(published, gold_file, tmp_path):
    secret = "hf_publishTestSecret0123456789"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env |= {"HF_TOKEN": secret, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    env |= {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_OFFLINE": "1"}
    out_dir = tmp_path / "out"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "annotate",
            "publish",
            str(out_dir),
            "--gold",
            str(gold_file),
            "--push-to-hub",
            "me/spans",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: push to me/spans: cannot reach the Hugging Face Hub at {endpoint} "
        "(no network, or HF_HUB_OFFLINE is set); the local copy is complete"
    ]
    assert secret not in result.stdout + result.stderr
    assert (out_dir / "README.md").is_file()


def test_pushing_without_a_token_or_offline_says_so(published, monkeypatch):
    from annotate.errors import HubError
    from annotate.publish import push_to_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubError, match="^HF_TOKEN is not set"):
        push_to_hub(published, "me/spans")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set") as raised:
        push_to_hub(published, "me/spans", token="hf_secretvalue")
    assert "hf_secretvalue" not in str(raised.value)


def test_the_project_gold_publishes_and_round_trips(tmp_path):
    from annotate.gold import check_gold
    from annotate.publish import spans_from_spans_row, spans_from_tokens_row

    gold_path = load_settings(ROOT).gold
    if not gold_path.is_file():
        pytest.skip(f"{gold_path} is not there yet")
    if check_gold(gold_path, SCHEMA, NLP):
        pytest.fail(f"{gold_path} fails `annotate gold check`, so it cannot be published")
    out_dir = tmp_path / "project"
    result = publish_to(out_dir, gold_path)
    gold = {doc.id: doc for doc in read_gold(gold_path)}

    assert sorted(id for ids in result.split_plan.splits.values() for id in ids) == sorted(gold)
    for view, decode in (("spans", spans_from_spans_row), ("tokens", spans_from_tokens_row)):
        for split in result.split_plan.splits:
            dataset = read_view(out_dir / view / f"{split}-00000-of-00001.parquet")
            for row in dataset:
                assert decode(row, dataset.features, gold[row["id"]].text) == list(gold[row["id"]].spans)


def test_only_publish_imports_datasets_and_the_hub_client():
    import ast

    importers = set()
    for module in sorted((ROOT / "annotate").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in {"datasets", "huggingface_hub"} for name in names):
                importers.add(module.name)
    assert importers == {"publish.py"}
