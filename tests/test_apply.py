"""`annotate apply` with the local engine: awkward text, resuming after a kill, bad rows, the output folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from annotate.apply import MANIFEST, REJECTS, apply, predictions_from
from annotate.cli import app
from annotate.errors import InputError
from annotate.model import load_predictor
from annotate.records import Article, text_sha256
from tests.conftest import awkward_text

ROOT = Path(__file__).resolve().parent.parent

# Each text with the spans the ruler model must find (Hamas, Israel → ACTOR), as (start, end).
AWKWARD = {
    "emoji": ("Talks 😀: Hamas and Israel.", [(9, 14), (19, 25)]),
    "astral": ("👩‍👩‍👧 🇵🇸 𝔘 Hamas", [(11, 16)]),
    "combining": ("Zoe\u0301 and n\u0303 met Hamas; e\u0301 Israel", [(16, 21), (26, 32)]),
    "rtl": ("خليل الحية said Hamas and غزة Israel", [(16, 21), (30, 36)]),
    "zero-width": ("\u200b", []),  # not whitespace to str.strip, so an article (an empty one is refused)
    "nothing": ("No actor here at all.", []),
    "crlf-json": ("Hamas\r\nIsrael", [(0, 5), (6, 12)]),
}
CRLF_TEXT = "Line one Hamas\r\nLine two Israel\r\n"
CRLF_SPANS = [(9, 14), (24, 30)]  # offsets into the text with CRLF read as LF, as push reads it


def make_scored_model(folder: Path) -> Path:
    """An untrained spancat (seeded weights): many spans with scores between 0.5 and 1, in milliseconds."""
    import spacy
    from spacy.util import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    suggester = {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2]}
    spancat = nlp.add_pipe("spancat", config={"spans_key": "sc", "threshold": 0.5, "suggester": suggester})
    for label in ("ACTOR", "DEMAND"):
        spancat.add_label(label)
    nlp.initialize()
    nlp.to_disk(folder)
    return folder


@pytest.fixture
def scored_model_dir(tmp_path) -> Path:
    return make_scored_model(tmp_path / "scored-model")


def write_awkward_corpus(folder: Path) -> dict[str, tuple[str, list]]:
    """A JSONL, a .txt with CRLF and a parquet file; returns id → (text as read, expected spans)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    with (folder / "a.jsonl").open("w", encoding="utf-8", newline="") as stream:
        for article_id, (text, spans) in AWKWARD.items():
            stream.write(json.dumps({"id": article_id, "text": text}, ensure_ascii=False) + "\r\n")
            expected[article_id] = (text.replace("\r\n", "\n"), spans)
    (folder / "crlf.txt").write_bytes(CRLF_TEXT.encode("utf-8"))
    expected["crlf"] = (CRLF_TEXT.replace("\r\n", "\n"), CRLF_SPANS)
    texts = [f"Hamas {'😀' * n} Israel {n}" for n in range(5)]
    pq.write_table(pa.table({"id": [f"pq{n}" for n in range(5)], "text": texts}), folder / "b.parquet")
    for n, text in enumerate(texts):
        expected[f"pq{n}"] = (text, [(0, 5), (7 + n, 13 + n)])
    return expected


def rows(out: Path) -> list[dict]:
    return pq.read_table(out).to_pylist()


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("part-*.parquet"))}


def test_awkward_text_gives_valid_code_point_spans(tmp_path, ruler_model_dir, schema):
    expected = write_awkward_corpus(tmp_path / "src")
    report = apply(ruler_model_dir, [tmp_path / "src"], tmp_path / "out", schema=schema, workers=1, shard_size=4)
    found = {row["id"]: row for row in rows(tmp_path / "out")}
    in_source_order = [*AWKWARD, "pq0", "pq1", "pq2", "pq3", "pq4", "crlf"]
    assert list(found) == in_source_order and set(expected) == set(found) and report.articles == 13
    for article_id, (text, spans) in expected.items():
        row = found[article_id]
        assert row["text_sha256"] == text_sha256(text)
        assert [(s["start"], s["end"]) for s in row["spans"]] == spans, article_id
        for span in row["spans"]:
            assert text[span["start"] : span["end"]] == span["text"] and span["label"] == "ACTOR"
            assert span["score"] == 1.0
        assert row["model_version"] == report.model_version and len(row["model_sha256"]) == 64
    assert report.shards == 4 and report.spans == sum(len(spans) for _, spans in expected.values())


def test_two_processes_give_the_same_shards_as_one_scores_included(tmp_path, scored_model_dir, schema):
    expected = write_awkward_corpus(tmp_path / "src")
    apply(scored_model_dir, [tmp_path / "src"], tmp_path / "one", schema=schema, workers=1, shard_size=5)
    apply(scored_model_dir, [tmp_path / "src"], tmp_path / "two", schema=schema, workers=2, shard_size=5, batch_size=2)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two") and len(shard_bytes(tmp_path / "one")) == 3
    found = rows(tmp_path / "two")
    scores = [span["score"] for row in found for span in row["spans"]]
    assert len(scores) > 50 and all(0.5 <= score <= 1 for score in scores) and len(set(scores)) > 50
    for row in found:
        text = expected[row["id"]][0]
        assert all(text[span["start"] : span["end"]] == span["text"] for span in row["spans"])


def test_manifest_records_model_sources_counts_engine_and_time(tmp_path, ruler_model_dir, schema):
    write_awkward_corpus(tmp_path / "src")
    report = apply(ruler_model_dir, [tmp_path / "src"], tmp_path / "out", schema=schema, workers=1, shard_size=5)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["model"]["version"] == report.model_version and len(manifest["model"]["sha256"]) == 64
    assert [Path(s["path"]).name for s in manifest["sources"]] == ["a.jsonl", "b.parquet", "crlf.txt"]
    assert manifest["sources"][0]["records"] == 7 and len(manifest["sources"][0]["sha256"]) == 64
    assert manifest["counts"] == {"articles": 13, "rejected": 0, "spans": report.spans}
    assert [s["file"] for s in manifest["shards"]] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    (run,) = manifest["runs"]
    assert run["engine"] == "local" and run["workers"] == 1 and run["shards"] == 3 and run["seconds"] >= 0


def test_the_output_loads_with_datasets_and_pyarrow(tmp_path, ruler_model_dir, schema):
    import datasets

    write_awkward_corpus(tmp_path / "src")
    apply(ruler_model_dir, [tmp_path / "src"], tmp_path / "out", schema=schema, workers=1, shard_size=5)
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train"]
    assert loaded["train"].to_list() == rows(tmp_path / "out")
    assert loaded["train"][0]["spans"][0] == {"start": 9, "end": 14, "label": "ACTOR", "text": "Hamas", "score": 1.0}


def _big_corpus(folder: Path, count: int) -> None:
    folder.mkdir()
    lines = (json.dumps({"id": f"n{n:05d}", "text": f"Hamas 😀 {n} and Israel met."}) + "\n" for n in range(count))
    (folder / "big.jsonl").write_text("".join(lines), encoding="utf-8")


def test_killed_mid_run_then_run_again_gives_the_same_output_as_a_clean_run(tmp_path, ruler_model_dir, schema):
    _big_corpus(tmp_path / "src", 6000)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "annotate", "apply", str(ruler_model_dir), str(tmp_path / "src")]
    command += ["--out", str(out), "--workers", "1", "--shard-size", "20"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorded = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            try:
                recorded = len(json.loads((out / MANIFEST).read_text())["shards"])
            except (FileNotFoundError, json.JSONDecodeError):
                recorded = 0
            if recorded >= 2:
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert 2 <= recorded < 300, "the kill must land mid-run"
    resumed = apply(ruler_model_dir, [tmp_path / "src"], out, schema=schema, workers=1, shard_size=20)
    assert resumed.shards_done_before >= 2 and resumed.shards_done_before + resumed.shards_written == 300
    apply(ruler_model_dir, [tmp_path / "src"], tmp_path / "clean", schema=schema, workers=1, shard_size=20)
    assert shard_bytes(out) == shard_bytes(tmp_path / "clean") and len(shard_bytes(out)) == 300
    assert rows(out) == rows(tmp_path / "clean")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    again = apply(ruler_model_dir, [tmp_path / "src"], out, schema=schema, workers=1, shard_size=20)
    assert again.shards_written == 0 and again.shards_done_before == 300


BAD_ROWS = [
    ('{"text": "no id"}', "a.jsonl:2: no 'id' (a non-empty string)"),
    ('{"id": "x1", "txt": "typo"}', "a.jsonl:2: article x1: no 'text' string"),
    ('{"id": "ok", "text": "again"}', "a.jsonl:2: duplicate id 'ok' (first at {src}/a.jsonl:1)"),
    ("[1, 2]", "a.jsonl:2: expected a JSON object per line"),
    ('{"id": "e", "text": " \\n"}', "a.jsonl:2: article e has empty text"),
    ('{"id": "k", "text": "Hamas", "text": "Israel"}', "a.jsonl:2: key 'text' appears twice in one object"),
    ('{"id": "m", "text": "Hamas", "meta": "x"}', "a.jsonl:2: article m: 'meta' must be an object"),
]


@pytest.mark.parametrize(("line", "message"), BAD_ROWS)
def test_a_bad_row_stops_the_job_naming_file_and_line_before_anything_is_written(
    tmp_path, ruler_model_dir, schema, line, message
):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text('{"id": "ok", "text": "Hamas"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        apply(ruler_model_dir, [src], tmp_path / "out", schema=schema, workers=1)
    assert str(raised.value) == (
        f"{src}/{message.format(src=src)} (--skip-bad writes such rows to {REJECTS} and goes on)"
    )
    assert not (tmp_path / "out").exists()


def test_undecodable_bytes_and_a_null_parquet_text_name_their_place(tmp_path, ruler_model_dir, schema):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_bytes(b'{"id": "ok", "text": "Hamas"}\n\n{"id": "bad", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"a\.jsonl:3: not valid UTF-8 \(byte 26 of the line\)"):
        apply(ruler_model_dir, [src], tmp_path / "out", schema=schema, workers=1)
    (src / "a.jsonl").unlink()
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["Hamas", None]}), src / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: row 2: article p2: no 'text' string"):
        apply(ruler_model_dir, [src], tmp_path / "out", schema=schema, workers=1)
    pq.write_table(pa.table({"id": ["p1"], "body": ["Hamas"]}), src / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: parquet needs 'id' and 'text' columns \(missing text\)"):
        apply(ruler_model_dir, [src], tmp_path / "out", schema=schema, workers=1)
    assert not (tmp_path / "out").exists()


def test_skip_bad_writes_rejects_and_labels_the_rest(tmp_path, ruler_model_dir, schema):
    src = tmp_path / "src"
    src.mkdir()
    lines = [b'{"id": "a", "text": "Hamas"}', b'{"text": "x"}', b'{"id": "a", "text": "Israel"}', b"\xff", b"{"]
    lines.append(b'{"id": "b", "text": "Israel"}')
    (src / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    report = apply(ruler_model_dir, [src], tmp_path / "out", schema=schema, workers=1, shard_size=2, skip_bad=True)
    assert [(row["id"], row["spans"][0]["text"]) for row in rows(tmp_path / "out")] == [("a", "Hamas"), ("b", "Israel")]
    rejects = [json.loads(line) for line in (tmp_path / "out" / REJECTS).read_text().splitlines()]
    assert [(Path(r["where"]).name, r["id"]) for r in rejects] == [
        ("a.jsonl:2", None),
        ("a.jsonl:4", None),
        ("a.jsonl:5", None),
        ("a.jsonl:3", "a"),
    ]
    assert rejects[-1]["problem"] == f"duplicate id 'a' (first at {src}/a.jsonl:1)"
    assert report.rejected == 4 and report.articles == 2 and report.rejects_path == tmp_path / "out" / REJECTS
    datasets_rows = pq.read_table(tmp_path / "out").num_rows
    assert datasets_rows == 2


def test_changed_sources_or_model_are_refused_unless_force(tmp_path, ruler_model_dir, schema):
    write_awkward_corpus(tmp_path / "src")
    out = tmp_path / "out"
    apply(ruler_model_dir, [tmp_path / "src"], out, schema=schema, workers=1, shard_size=5)
    with (tmp_path / "src" / "a.jsonl").open("a", encoding="utf-8") as stream:
        stream.write(json.dumps({"id": "new", "text": "Hamas"}) + "\n")
    with pytest.raises(InputError, match=r"holds apply output for .*a\.jsonl as it was before \(it changed since\); "):
        apply(ruler_model_dir, [tmp_path / "src"], out, schema=schema, workers=1, shard_size=5)
    (tmp_path / "unrelated.txt").write_text("kept")
    report = apply(ruler_model_dir, [tmp_path / "src"], out, schema=schema, workers=1, shard_size=5, force=True)
    assert report.shards_done_before == 0 and report.articles == 14 and "new" in {r["id"] for r in rows(out)}
    other_model = shutil.copytree(ruler_model_dir, tmp_path / "other-model")
    (other_model / "meta.json").write_text(json.dumps({**json.loads((other_model / "meta.json").read_text()), "x": 1}))
    with pytest.raises(InputError, match=r"holds apply output for another model \(model-best-\w+, now other-model-"):
        apply(other_model, [tmp_path / "src"], out, schema=schema, workers=1, shard_size=5)


def test_a_folder_apply_did_not_write_is_refused(tmp_path, ruler_model_dir, schema):
    write_awkward_corpus(tmp_path / "src")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"out: not empty and not an apply output \(no \.apply-manifest\.json\)"):
        apply(ruler_model_dir, [tmp_path / "src"], tmp_path / "out", schema=schema, workers=1)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_predictions_from_match_ids_and_check_text_hashes(tmp_path, ruler_model_dir, schema):
    expected = write_awkward_corpus(tmp_path / "src")
    apply(ruler_model_dir, [tmp_path / "src"], tmp_path / "out", schema=schema, workers=1, shard_size=5)
    articles = [Article("emoji", expected["emoji"][0]), Article("crlf", expected["crlf"][0])]
    predictor = predictions_from(tmp_path / "out", articles, schema)
    emoji, crlf = predictor.predict([a.text for a in articles])
    assert [(span.start, span.end, span.text, score) for span, score in emoji] == [
        (9, 14, "Hamas", 1.0),
        (19, 25, "Israel", 1.0),
    ]
    assert [(span.start, span.end) for span, _ in crlf] == CRLF_SPANS
    with pytest.raises(InputError, match=r"article emoji was labeled with other text than it has now"):
        predictions_from(tmp_path / "out", [Article("emoji", "Talks: Hamas.")], schema)
    with pytest.raises(InputError, match=r"1 article\(s\) not in this apply output \(unknown\); run apply on them"):
        predictions_from(tmp_path / "out", [Article("unknown", "Hamas")], schema)


def test_cli_apply_prints_a_summary_and_errors_in_one_line(tmp_path, ruler_model_dir, monkeypatch):
    monkeypatch.chdir(ROOT)
    write_awkward_corpus(tmp_path / "src")
    runner = CliRunner()
    out = tmp_path / "out"
    command = ["apply", str(ruler_model_dir), str(tmp_path / "src"), "--out", str(out), "--workers", "1"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "13 article(s), 21 span(s) from model-best-" in result.output
    assert "1 shard(s) written by local with 1 worker(s)" in result.output
    again = runner.invoke(app, command)
    assert "1 of 1 shard(s) were already done" in again.output and "0 shard(s) written" in again.output
    (tmp_path / "src" / "bad.jsonl").write_text('{"id": "z"}\n')
    bad = runner.invoke(app, [*command, "--force"])
    assert bad.exit_code == 1
    assert bad.output.strip() == (
        f"Error: {tmp_path}/src/bad.jsonl:1: article z: no 'text' string "
        "(--skip-bad writes such rows to .rejects.jsonl and goes on)"
    )


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(awkward_text.filter(str.strip), min_size=1, max_size=6))
def test_property_apply_output_equals_the_predictor_on_awkward_text(texts, ruler_model_dir, schema):
    """Whatever the text, the shards hold exactly what the shared predictor says, offsets in code points."""
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "a.jsonl"
        src.write_text(
            "".join(json.dumps({"id": f"t{n}", "text": text}) + "\n" for n, text in enumerate(texts)), encoding="utf-8"
        )
        apply(ruler_model_dir, [src], Path(folder) / "out", schema=schema, workers=1, shard_size=4)
        found = rows(Path(folder) / "out")
        direct = load_predictor(ruler_model_dir, schema).predict(texts)
        assert [row["id"] for row in found] == [f"t{n}" for n in range(len(texts))]
        for row, text, spans in zip(found, texts, direct, strict=True):
            assert row["text_sha256"] == text_sha256(text)
            assert [(s["start"], s["end"], s["label"], s["text"], s["score"]) for s in row["spans"]] == [
                (span.start, span.end, span.label, span.text, score) for span, score in sorted(spans)
            ]
            assert all(text[s["start"] : s["end"]] == s["text"] for s in row["spans"])
        articles = [Article(f"t{n}", text) for n, text in enumerate(texts)]
        back = predictions_from(Path(folder) / "out", articles, schema).predict(texts)
        assert back == [sorted(spans) for spans in direct]


def test_unknown_engine_and_bad_counts_are_refused_before_reading(tmp_path, ruler_model_dir, schema):
    with pytest.raises(InputError, match="engine must be 'local' or 'ray', not 'spark'"):
        apply(ruler_model_dir, [tmp_path / "nothing"], tmp_path / "out", schema=schema, engine="spark")
    with pytest.raises(InputError, match=r"workers and batch size must be at least 1 \(got 2 and 0\)"):
        apply(ruler_model_dir, [tmp_path / "nothing"], tmp_path / "out", schema=schema, workers=2, batch_size=0)
    assert not (tmp_path / "out").exists()


def test_an_error_a_ray_worker_raised_comes_back_as_our_one_line_error():
    """Ray wraps a worker's exception (RayTaskError.cause, then __cause__); the CLI must still get ours."""
    from annotate.engine import our_error

    class TaskError(Exception):
        def __init__(self, cause):
            super().__init__("long traceback text")
            self.cause = cause

    ours = InputError("archive/a.jsonl:3: article x: no 'text' string (the source changed during the run)")
    try:
        raise RuntimeError("user code failed") from TaskError(ours)
    except RuntimeError as exc:
        assert our_error(exc) is ours
    assert our_error(RuntimeError("not ours")) is None
