"""Bad input, everywhere: one ``Error:`` line, a non-zero exit, no traceback, nothing already saved changed.

Property tests feed random bytes, random JSON and random targets (folders, files, missing parents,
symbolic links) to every reader and every writing command. Each runs in a project of its own
under a temporary folder (its own pyproject.toml, schema, config): nothing outside it is touched,
and no device node or FIFO is ever made or named.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import write_gold, write_pulled
from annotate.records import AnnotatedDoc, PulledAnnotation, Span, text_sha256

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Hamas said 57,000 people died."
GOLD = AnnotatedDoc(
    "d",
    TEXT,
    (Span.from_offsets(TEXT, 0, 5, "ACTOR"), Span.from_offsets(TEXT, 11, 24, "FIGURE")),
    "someone",
    "test",
)
runner = CliRunner()
examples = settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the project every test runs in, and how a refusal is recognised --------------------------


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project of its own: settings, schema, config and guidelines copied in, valid gold and pulled files."""
    root = new_project(tmp_path / "project")
    monkeypatch.chdir(root)
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-key")
    return root


def new_project(root: Path) -> Path:
    """Settings, schema, config and guidelines copied into ``root``, with valid gold, seeds and pulled files."""
    (root / "guidelines").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "pyproject.toml").write_text('[tool.annotate]\nproject = "News spans"\n', encoding="utf-8")
    for name in ("labels.toml", "GUIDELINES.md", "patterns.jsonl"):
        shutil.copy(ROOT / "guidelines" / name, root / "guidelines" / name)
    shutil.copy(ROOT / "configs" / "spancat.cfg", root / "configs" / "spancat.cfg")
    write_gold(root / "gold" / "gold.jsonl", [GOLD])
    (root / "seeds").mkdir()
    (root / "seeds" / "d.txt").write_text(TEXT, encoding="utf-8")
    sha = text_sha256(TEXT)
    write_pulled(
        root / "pulled.jsonl",
        [
            PulledAnnotation(1, 10, "d", "alice", GOLD.spans, text_sha256=sha),
            PulledAnnotation(1, 11, "d", "bob", GOLD.spans[:1], text_sha256=sha),
        ],
    )
    return root


def snapshot(folder: Path) -> dict[str, object]:
    """Every file's bytes, every folder and every link's target under ``folder`` (links not followed)."""
    found: dict[str, object] = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = path.read_bytes()
    return found


def assert_refused(result) -> None:
    """Non-zero exit, exactly one ``Error:`` line (or gold check's problem summary), no traceback."""
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    summaries = [line for line in lines if line.split(" ", 1)[-1].startswith("problem(s) in ")]
    assert len(errors) + len(summaries) == 1, result.output


def invoke(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def refused_and_unchanged(project: Path, *args) -> None:
    before = snapshot(project)
    result = invoke(*args)
    assert_refused(result)
    assert snapshot(project) == before


def handled(project: Path, *args, outputs: tuple[str, ...] = ()) -> None:
    """Random input may happen to be valid: then the command succeeds and changes only its own ``outputs``.

    Otherwise it is refused and changes nothing.
    """
    before = snapshot(project)
    result = invoke(*args)
    if result.exit_code == 0:
        assert "Traceback" not in result.output
        after = snapshot(project)
        kept = {key: value for key, value in before.items() if not key.startswith(outputs or ("\0",))}
        assert {key: after.get(key) for key in kept} == kept
        return
    assert_refused(result)
    assert snapshot(project) == before


# --- random input to every reader ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
gold_keys = st.sampled_from(["id", "text", "spans", "start", "end", "label", "annotator", "text_sha256"])
gold_like = st.dictionaries(gold_keys, json_values, max_size=6)
random_lines = st.lists(json_values | gold_like, min_size=0, max_size=4).map(
    lambda records: "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
)
nasty_lines = st.sampled_from(
    [
        b"",
        b"\n\n",
        b'{"id": "", "text": "x", "spans": []}\n',
        b'{"id": "d", "text": "", "spans": []}\n',
        b'{"id": "d", "text": "\\ud800", "spans": []}\n',
        b'{"id": "d", "text": "Hamas", "spans": [], "spans": []}\n',
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        b'{"id": "d", "text": "Hamas", "spans": [{"start": 0.0, "end": 5, "label": "ACTOR", "text": "Hamas"}]}\n',
        b'{"id": "d", "text": "Hamas", "spans": [{"start": 0, "end": 1e400, "label": "ACTOR", "text": "Hamas"}]}\n',
        b'{"id": "d", "text": "Hamas", "spans": [{"start": 0, "end": 99999999999999999999999, "label": "ACTOR", '
        b'"text": "Hamas"}]}\n',
        b"\xff\xfe not utf-8",
    ]
)
random_input = st.binary(max_size=200) | random_lines | nasty_lines


OUTPUTS = ("out.spacy", "reports-bad", "model-bad", "published-bad", "agreement.json", "c.jsonl")


def _gold_readers(path: Path) -> list[tuple]:
    return [
        ("gold", "check", path),
        ("gold", "stats", path),
        ("convert", "out.spacy", "--gold", path),
        ("evaluate", path, "--out", "reports-bad"),
        ("evaluate", "gold/gold.jsonl", "--gold", path, "--out", "reports-bad"),
        ("train", "--gold", path, "--out", "model-bad"),
        ("publish", "published-bad", "--gold", path),
    ]


@examples
@given(data=random_input)
def test_every_gold_reader_refuses_what_is_not_gold_and_changes_nothing(project, data):
    path = project / "bad.jsonl"
    path.write_bytes(data)
    for command in _gold_readers(path):
        handled(project, *command, outputs=OUTPUTS)


@examples
@given(data=nasty_lines | st.binary(max_size=200).map(lambda b: b"\xff" + b))
def test_input_that_is_never_gold_is_refused_by_every_gold_reader(project, data):
    path = project / "bad.jsonl"
    path.write_bytes(data)
    for command in _gold_readers(path):
        refused_and_unchanged(project, *command)


@examples
@given(data=random_input)
def test_every_pulled_file_reader_refuses_what_is_not_a_pulled_file(project, data):
    path = project / "bad-pulled.jsonl"
    path.write_bytes(data)
    refused_and_unchanged(project, "agreement", path, "--json-out", "agreement.json")
    refused_and_unchanged(project, "adjudicate", path, "--out", "gold/gold.jsonl", "--conflicts-out", "c.jsonl")


@examples
@given(data=random_input)
def test_every_article_reader_refuses_what_is_not_articles(project, data):
    path = project / "bad.jsonl"
    path.write_bytes(data)
    handled(project, "push", path)
    refused_and_unchanged(project, "agreement", "pulled.jsonl", "--articles", path)


@examples
@given(data=st.binary(max_size=200) | random_lines)
def test_settings_and_schema_of_any_shape_are_one_line(project, data):
    schema = project / "guidelines" / "labels.toml"
    schema.write_bytes(data)
    handled(project, "schema", "show")
    handled(project, "gold", "check")
    shutil.copy(ROOT / "guidelines" / "labels.toml", schema)
    (project / "pyproject.toml").write_bytes(b"[tool.annotate]\n" + data)
    handled(project, "gold", "check")


toml_values = st.sampled_from(["5", "true", "[1, 2]", "{ a = 1 }", '""', "1979-05-27", "3.5"])


@examples
@given(key=st.sampled_from(["schema", "gold", "models", "lang", "project", "seeds"]), value=toml_values)
def test_settings_of_the_wrong_type_are_one_line(project, key, value):
    (project / "pyproject.toml").write_text(f"[tool.annotate]\n{key} = {value}\n", encoding="utf-8")
    refused_and_unchanged(project, "gold", "check")


@examples
@given(key=st.sampled_from(["name", "definition", "colour", "hotkey"]), value=toml_values)
def test_schema_values_of_the_wrong_type_are_one_line(project, key, value):
    schema = project / "guidelines" / "labels.toml"
    text = schema.read_text(encoding="utf-8")
    schema.write_text(f'[[label]]\nname = "ACTOR"\n{key} = {value}\n' + text.split("[[label]]", 2)[-1], "utf-8")
    refused_and_unchanged(project, "schema", "show")


# --- random targets for every writer --------------------------------------------------------------

TARGET_KINDS = ["user file", "user folder", "link to file", "link to folder", "under a file", "dangling link"]


def make_target(project: Path, kind: str, name: str) -> Path:
    """A target of this kind inside the project, holding something of the user's."""
    target = project / "targets" / name
    target.parent.mkdir(exist_ok=True)
    (project / "notes.txt").write_text("the user's notes\n", encoding="utf-8")
    (project / "notes").mkdir(exist_ok=True)
    (project / "notes" / "todo.md").write_text("keep me\n", encoding="utf-8")
    if kind == "user file":
        target.write_text("the user's own file\n", encoding="utf-8")
    elif kind == "user folder":
        target.mkdir()
        (target / "mine.txt").write_text("mine\n", encoding="utf-8")
    elif kind == "link to file":
        target.symlink_to(project / "notes.txt")
    elif kind == "link to folder":
        target.symlink_to(project / "notes")
    elif kind == "dangling link":
        target.symlink_to(project / "nowhere")
    elif kind == "under a file":
        target.write_text("a file\n", encoding="utf-8")
        target = target / "below" / "out"
    return target


def _writers(target: Path) -> list[tuple]:
    return [
        ("convert", target),
        ("schema", "config", "--out", target),
        ("agreement", "pulled.jsonl", "--articles", "seeds", "--json-out", target),
        ("adjudicate", "pulled.jsonl", "--articles", "seeds", "--min-agree", "1", "--out", target),
        ("adjudicate", "pulled.jsonl", "--articles", "seeds", "--out", "gold2.jsonl", "--conflicts-out", target),
        ("train", "--out", target),
        ("publish", target),
    ]


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(TARGET_KINDS), name=st.sampled_from(["out", "out.spacy", "gold.jsonl", "x.json"]))
def test_a_writer_writes_only_into_what_is_absent_or_its_own(project, kind, name):
    for command in _writers(Path("targets") / name):
        shutil.rmtree(project / "targets", ignore_errors=True)
        make_target(project, kind, name)
        refused_and_unchanged(project, *command)


@pytest.mark.parametrize(
    "command",
    [
        ("convert", "targets/new/out.spacy"),
        ("schema", "config", "--out", "targets/new/config.xml"),
        ("agreement", "pulled.jsonl", "--articles", "seeds", "--json-out", "targets/new/agreement.json"),
        ("adjudicate", "pulled.jsonl", "--articles", "seeds", "--out", "targets/new/g.jsonl", "--conflicts-out", "c"),
    ],
)
def test_a_writer_makes_missing_parents_and_then_replaces_its_own_output(project, command):
    before = snapshot(project)
    first = invoke(*command)
    assert first.exit_code == 0, first.output
    again = invoke(*command)
    assert again.exit_code == 0, again.output
    after = snapshot(project)
    assert {key: value for key, value in after.items() if key in before} == before


def test_force_replaces_a_file_the_command_did_not_write(project):
    target = project / "notes.txt"
    target.write_text("mine\n", encoding="utf-8")
    refused_and_unchanged(project, "schema", "config", "--out", target)
    result = invoke("schema", "config", "--out", target, "--force")
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").startswith("<View>")


def test_force_never_writes_through_a_link(project):
    (project / "notes.txt").write_text("mine\n", encoding="utf-8")
    (project / "link.xml").symlink_to(project / "notes.txt")
    refused_and_unchanged(project, "schema", "config", "--out", "link.xml", "--force")


# --- the rules behind the properties, one test each -----------------------------------------------


def test_publish_never_deletes_files_the_user_added_to_an_earlier_publish(project):
    result = invoke("publish", "dataset")
    assert result.exit_code == 0, result.output
    (project / "dataset" / ".git").mkdir()
    (project / "dataset" / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    before = snapshot(project)
    result = invoke("publish", "dataset")
    assert_refused(result)
    assert "(.git)" in result.output
    assert snapshot(project) == before


def test_publish_replaces_its_own_earlier_output(project):
    assert invoke("publish", "dataset").exit_code == 0
    result = invoke("publish", "dataset")
    assert result.exit_code == 0, result.output


def test_train_refuses_a_folder_without_a_model_before_training(project):
    (project / "models").mkdir()
    (project / "models" / "notes.md").write_text("mine\n", encoding="utf-8")
    before = snapshot(project)
    result = invoke("train", "--out", "models")
    assert_refused(result)
    assert "holds no annotate_meta.json" in result.output and "--force" in result.output
    assert snapshot(project) == before


def test_adjudicate_writes_conflicts_and_gold_together_or_neither(project):
    (project / "c.jsonl").mkdir()
    refused_and_unchanged(project, "adjudicate", "pulled.jsonl", "--articles", "seeds", "--conflicts-out", "c.jsonl")


def test_write_files_replaces_nothing_when_the_second_write_fails(tmp_path, monkeypatch):
    """A full disk on the second file: the first, already staged, is not renamed into place either."""
    import annotate.targets as targets
    from annotate.errors import TargetError

    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("old first\n", encoding="utf-8")
    second.write_text("old second\n", encoding="utf-8")
    synced = []

    def fsync(descriptor: int) -> None:
        synced.append(descriptor)
        if len(synced) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(targets.os, "fsync", fsync)
    with pytest.raises(TargetError, match="second.jsonl: cannot write \\(No space left on device\\); nothing"):
        targets.write_files([(first, b"new first\n"), (second, b"new second\n")])
    assert first.read_text(encoding="utf-8") == "old first\n"
    assert second.read_text(encoding="utf-8") == "old second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.jsonl", "second.jsonl"]


def test_write_files_replaces_nothing_when_one_target_is_refused(tmp_path):
    from annotate.errors import TargetError
    from annotate.targets import write_files

    first = tmp_path / "first.jsonl"
    first.write_text("old\n", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    with pytest.raises(TargetError, match="is a folder"):
        write_files([(first, b"new\n"), (tmp_path / "folder", b"x")])
    assert first.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.jsonl", "folder"]


def test_pull_checks_every_target_before_it_writes_any(tmp_path):
    from annotate.corpus import check_pull_targets
    from annotate.errors import TargetError

    (tmp_path / "gold.jsonl").write_text("my notes\n", encoding="utf-8")
    with pytest.raises(TargetError, match="is not a gold file this command wrote; choose another path$"):
        check_pull_targets(tmp_path / "pulled.jsonl", tmp_path / "gold.jsonl", tmp_path / "snap" / "x.json.gz")
    (tmp_path / "gold.jsonl").unlink()
    (tmp_path / "pulled.jsonl").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TargetError, match="is a symbolic link"):
        check_pull_targets(tmp_path / "pulled.jsonl", tmp_path / "gold.jsonl", tmp_path / "snap" / "x.json.gz")


def test_gold_validation_is_shared_by_every_command_that_reads_gold(project):
    cases = {
        b"": "no articles",
        b'{"id": "", "text": "x", "spans": []}\n': "'id' is empty",
        b'{"id": "d", "text": "", "spans": []}\n': "'text' is empty",
        b'{"id": "d", "text": "\\udc00", "spans": []}\n': "lone surrogate",
        b'{"id": "d", "text": "Hamas", "spans": [{"start": 0, "end": 5, "label": "ACTOR", "text": "Hamas"}], '
        b'"spans": []}\n': "key 'spans' appears twice",
        b"[" * 50_000 + b"]" * 50_000 + b"\n": "nested too deeply",
    }
    for data, reason in cases.items():
        (project / "bad.jsonl").write_bytes(data)
        for command in _gold_readers(project / "bad.jsonl"):
            result = invoke(*command)
            assert_refused(result)
            assert reason in result.output, (command, result.output)


def test_predictions_are_checked_like_gold(project):
    bad = {"id": "d", "text": TEXT, "spans": [{"start": 0, "end": 4, "label": "ACTOR", "text": "Hamas"}]}
    (project / "pred.jsonl").write_text(json.dumps(bad) + "\n", encoding="utf-8")
    result = invoke("evaluate", "pred.jsonl", "--out", "r")
    assert_refused(result)
    assert "problem(s) in the predictions" in result.output and "text at these offsets is 'Hama'" in result.output


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("was_cancelled", "false", "'was_cancelled' missing or not a boolean"),
        ("ground_truth", 1, "'ground_truth' missing or not a boolean"),
        ("task_id", 1.0, "'task_id' missing or not a integer"),
        ("doc_id", 5, "'doc_id' missing or not a string"),
    ],
)
def test_the_pulled_reader_never_coerces(tmp_path, field, value, reason):
    from annotate.corpus import read_pulled
    from annotate.errors import InputError

    record = PulledAnnotation(1, 2, "d", "alice").to_dict() | {field: value}
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"p.jsonl:1: {reason}"):
        read_pulled(tmp_path / "p.jsonl")
    record = PulledAnnotation(1, 2, "d", "alice").to_dict()
    record["spans"] = [{"start": 0.0, "end": 1, "label": "ACTOR", "text": "H"}]
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="start and end must be integers"):
        read_pulled(tmp_path / "p.jsonl")


def test_os_errors_are_one_line_naming_the_file(project):
    long_name = "x" * 300
    for command in (("gold", "check", long_name), ("convert", long_name), ("schema", "config", "--out", long_name)):
        result = invoke(*command)
        assert_refused(result)
        assert "file name too long" in result.output


# --- studio down trusts nothing it cannot identify ------------------------------------------------

STATES = [
    b"",
    b"{}",
    b'{"pid": 0}',
    b'{"pid": "12"}',
    b'{"pid": true}',
    b'{"pid": -1}',
    b'{"pid": 1.5}',
    b"[1, 2]",
    b'{"pid": 99999999999999999999}',
    b"\xff",
]


@pytest.mark.parametrize("state", STATES)
def test_studio_down_never_signals_a_pid_it_cannot_identify(project, state):
    """Run in a session of its own: were its own process group signalled, only it would die (and fail here)."""
    import subprocess
    import sys

    (project / ".studio").mkdir()
    (project / ".studio" / "server.json").write_bytes(state)
    done = subprocess.run(
        [sys.executable, "-m", "annotate", "studio", "down"],
        cwd=project,
        capture_output=True,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done
    assert "Traceback" not in done.stderr
    if done.returncode == 1:
        assert done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1


def test_studio_down_leaves_a_live_process_that_is_not_its_server_alone(project):
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        (project / ".studio").mkdir()
        (project / ".studio" / "server.json").write_text(json.dumps({"pid": sleeper.pid, "port": 1}), "utf-8")
        result = invoke("studio", "down")
        assert result.exit_code == 0 and "No local Label Studio was running" in result.output
        assert sleeper.poll() is None
        own = {"pid": os.getpid(), "port": 1}
        (project / ".studio" / "server.json").write_text(json.dumps(own), "utf-8")
        assert_refused(invoke("studio", "down"))
    finally:
        sleeper.kill()
        sleeper.wait()


# --- Label Studio addresses, keys and titles ------------------------------------------------------


def _closed_port() -> int:
    from annotate.studio.local import free_port

    return free_port()


def test_user_info_in_the_url_is_never_printed(project, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://user:s3cret@127.0.0.1:{_closed_port()}")
    result = invoke("push")
    assert_refused(result)
    assert "s3cret" not in result.output and "user:" not in result.output
    assert "http://***@127.0.0.1:" in result.output


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("localhost:8080", "must start with http:// or https://"),
        ("http://", "names no host"),
        ("http://[::1", "is not a valid URL"),
    ],
)
def test_a_malformed_url_has_its_own_message(project, monkeypatch, url, reason):
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    result = invoke("push")
    assert_refused(result)
    assert reason in result.output


def test_a_key_with_a_trailing_newline_has_its_own_message(project, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "abc123\n")
    result = invoke("push")
    assert_refused(result)
    assert "holds a space or line break" in result.output and "abc123" not in result.output


def test_a_short_project_title_has_its_own_message(project):
    result = invoke("push", "--project", "ab")
    assert_refused(result)
    assert "project title 'ab' has 2 characters; Label Studio needs 3 to 50" in result.output


def _serve(reply: bytes | None):
    """A local TCP server that accepts and then sends ``reply`` and closes, or (None) never answers."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []

    def run() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            if reply is not None:
                connection.recv(4096)
                connection.sendall(reply)
                connection.close()

    threading.Thread(target=run, daemon=True).start()
    return listener, held


def test_a_server_that_never_answers_is_a_bounded_wait():
    import time

    from annotate.errors import StudioUnreachable
    from annotate.studio.client import Studio

    listener, held = _serve(None)
    try:
        began = time.monotonic()
        with pytest.raises(StudioUnreachable, match="did not answer within 1 s"):
            Studio(f"http://127.0.0.1:{listener.getsockname()[1]}", "key", answer_timeout=1.0)
        assert time.monotonic() - began < 10
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_a_server_that_is_not_http_is_named_so():
    from annotate.errors import StudioUnreachable
    from annotate.studio.client import Studio

    listener, held = _serve(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        with pytest.raises(StudioUnreachable, match="does not speak HTTP"):
            Studio(f"http://127.0.0.1:{listener.getsockname()[1]}", "key", answer_timeout=5.0)
    finally:
        listener.close()


# --- numbers and text on the command line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (("evaluate", "gold/gold.jsonl", "--bootstrap", "-5", "--out", "r"), "--bootstrap must be 0"),
        (("cv", "--bootstrap", "-1", "--out", "r"), "--bootstrap must be 0"),
        (("studio", "up", "--port", "99999"), "port 99999 is not a TCP port"),
        (("studio", "up", "--port", "0"), "port 0 is not a TCP port"),
        (("push", "--project", "ab\udcff"), "not valid Unicode"),
        (("studio", "refresh", "--workers", "0", "models/x"), "--workers must be at least 1, not 0"),
        (("studio", "refresh", "--engine", "spark", "models/x"), "--engine must be one of local, ray"),
        (("studio", "refresh", "--page", "0", "models/x"), "--page must be at least 1, not 0"),
        (("serve", "models/x", "--workers", "0"), "--workers must be at least 1, not 0"),
    ],
)
def test_option_values_out_of_range_are_refused_before_any_work(project, command, reason):
    before = snapshot(project)
    result = invoke(*command)
    assert_refused(result)
    assert reason in result.output
    assert snapshot(project) == before


def test_a_server_that_answers_something_else_than_the_api_is_one_line():
    """An HTTP server that is not Label Studio: pydantic and JSON errors in the SDK become our one line."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from annotate.errors import StudioError
    from annotate.studio.client import Studio

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            body = b"[1, 2, 3]" if "whoami" in self.path else b"<html>not an API</html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        connection = Studio(f"http://127.0.0.1:{httpd.server_address[1]}", "key")
        with pytest.raises(StudioError, match="with something that is not its API"):
            connection.whoami()
        not_the_api = "answered looking up project 'Some project' with something that is not its API"
        with pytest.raises(StudioError, match=not_the_api):
            connection.find_project("Some project")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_studio_status_names_a_url_without_a_scheme(project, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "user:pw@localhost:8080")
    result = invoke("studio", "status")
    assert_refused(result)
    assert "must start with http:// or https://" in result.output and "pw" not in result.output


@examples
@given(data=random_input)
def test_the_patterns_reader_refuses_what_is_not_patterns(tmp_path_factory, data):
    from annotate.errors import InputError
    from annotate.rules import load_patterns

    path = tmp_path_factory.mktemp("patterns") / "patterns.jsonl"
    path.write_bytes(data)
    try:
        load_patterns(path, ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"])
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


@pytest.mark.parametrize(
    "data",
    [b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", b"\xff\xfe", b"[[label]]\nname = 5\n"],
)
def test_toml_nested_too_deeply_or_not_text_is_one_line(project, data):
    (project / "guidelines" / "labels.toml").write_bytes(data)
    refused_and_unchanged(project, "schema", "show")
    shutil.copy(ROOT / "guidelines" / "labels.toml", project / "guidelines" / "labels.toml")
    (project / "pyproject.toml").write_bytes(b"[tool.annotate]\n" + data.replace(b"[[label]]", b""))
    refused_and_unchanged(project, "schema", "show")


def test_an_os_error_no_reader_translated_is_still_one_line(project):
    """The CLI's last-resort net (the readers and writers translate what they know first)."""
    from annotate.studio.local import free_port

    (project / ".studio").write_text("not a folder\n", encoding="utf-8")
    refused_and_unchanged(project, "studio", "up", "--port", str(free_port()))


SOURCE_KINDS = ["missing", "missing parent", "empty folder", "under a file", "dangling link", "link to a folder"]


def make_source(project: Path, kind: str) -> Path:
    """A path to read from that holds nothing readable as input."""
    source = project / "sources" / "input.jsonl"
    source.parent.mkdir(exist_ok=True)
    if kind == "missing parent":
        source = project / "sources" / "no" / "such" / "input.jsonl"
    elif kind == "empty folder":
        source.mkdir()
    elif kind == "under a file":
        source.write_text("a file\n", encoding="utf-8")
        source = source / "input.jsonl"
    elif kind == "dangling link":
        source.symlink_to(project / "nowhere")
    elif kind == "link to a folder":
        (project / "empty").mkdir(exist_ok=True)
        source.symlink_to(project / "empty")
    return source


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(SOURCE_KINDS))
def test_every_reader_refuses_a_path_that_holds_no_input(project, kind):
    shutil.rmtree(project / "sources", ignore_errors=True)
    source = make_source(project, kind)
    for command in [
        *_gold_readers(source),
        ("agreement", source),
        ("adjudicate", source, "--out", "g.jsonl"),
        ("agreement", "pulled.jsonl", "--articles", source),
        ("push", source),
        ("evaluate", source, "--out", "r"),
    ]:
        refused_and_unchanged(project, *command)
