"""The one articles reader push and apply share: each format, one set of rules, positions, reading lazily."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotate.articles import read_articles, read_records, stream_articles
from annotate.errors import InputError
from tests.conftest import AWKWARD_PIECES


def test_reads_a_folder_of_txt_with_file_stems_as_ids(project_root):
    articles = read_articles([project_root / "seeds"])
    assert [a.id for a in articles] == sorted(p.stem for p in (project_root / "seeds").glob("*.txt"))
    first = project_root / "seeds" / f"{articles[0].id}.txt"
    assert articles[0].text == first.read_text(encoding="utf-8")


def test_reads_jsonl_and_lists_of_files(tmp_path):
    (tmp_path / "a.txt").write_text("Hamas said.", encoding="utf-8")
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"id": "b", "text": "Israel said.", "meta": {"url": "x"}}) + "\n\n", encoding="utf-8"
    )
    articles = read_articles([tmp_path / "a.txt", tmp_path / "more.jsonl"])
    assert [(a.id, a.text) for a in articles] == [("a", "Hamas said."), ("b", "Israel said.")]
    assert articles[0].meta == {"source_file": "a.txt"} and articles[1].meta == {"url": "x"}


def test_reads_parquet_with_integer_ids_and_binary_text(tmp_path):
    table = pa.table({"id": [7, 8], "text": [b"Hamas\r\nsaid", b"Israel"], "other": ["x", "y"]})
    pq.write_table(table, tmp_path / "a.parquet")
    articles = read_articles([tmp_path])
    assert [(a.id, a.text, a.meta) for a in articles] == [("7", "Hamas\nsaid", {}), ("8", "Israel", {})]


def test_crlf_becomes_lf_and_nothing_else_changes(tmp_path):
    (tmp_path / "a.txt").write_bytes("\ufeff“Quote”\r\nnext\rline \r\r\n".encode())
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "b", "text": "x\r\r\n"}) + "\r\n", encoding="utf-8")
    pq.write_table(pa.table({"id": ["c"], "text": [b"\xef\xbb\xbfx\r\r\n"]}), tmp_path / "c.parquet")
    pq.write_table(pa.table({"id": ["d"], "text": ["\ufeffx\r\r\n"]}), tmp_path / "d.parquet")
    texts = [article.text for article in read_articles([tmp_path])]
    assert texts == ["“Quote”\nnext\rline \r\n", "x\r\n", "x\r\n", "\ufeffx\r\n"]


def test_a_byte_order_mark_leads_a_jsonl_file_and_nowhere_else(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes('\ufeff{"id": "a", "text": "x"}\r\n'.encode())
    assert [a.id for a in read_articles([path])] == ["a"]
    path.write_bytes('{"id": "a", "text": "x"}\n\ufeff{"id": "b", "text": "y"}\n'.encode())
    with pytest.raises(InputError, match=r"a\.jsonl:2: invalid JSON"):
        read_articles([path])


# Each bad record in each format, with the position its message names. These rules hold for push and apply alike.
BAD = [
    ("a.txt", b" \n", "a.txt: article a has empty text"),
    ("a.txt", b"Hamas \xff said", "a.txt: not valid UTF-8 (byte 6)"),
    ("a.jsonl", b'{"id": "a", "text": "x"}\n{oops\n', "a.jsonl:2: invalid JSON (Expecting property name"),
    ("a.jsonl", b'\n{"id": "a", "text": "x", "text": "y"}\n', "a.jsonl:2: key 'text' appears twice in one object"),
    ("a.jsonl", b'{"id": "a", "text": "\\ud800"}\n', "a.jsonl:1: holds a lone surrogate '\\ud800'"),
    ("a.jsonl", b"[1]\n", "a.jsonl:1: expected a JSON object per line"),
    ("a.jsonl", b'{"id": "a", "text": "x"}\n{"id": "b", "text": "caf\xe9"}\n', "a.jsonl:2: not valid UTF-8 (byte 24"),
    ("a.jsonl", b'{"id": " ", "text": "x"}\n', "a.jsonl:1: no 'id' (a non-empty string)"),
    ("a.jsonl", b'{"id": 1.5, "text": "x"}\n', "a.jsonl:1: no 'id' (a non-empty string)"),
    ("a.jsonl", b'{"id": "a", "txt": "x"}\n', "a.jsonl:1: article a: no 'text' string"),
    ("a.jsonl", b'{"id": "a", "text": "\\r\\n "}\n', "a.jsonl:1: article a has empty text"),
    ("a.jsonl", b'{"id": "a", "text": "x", "meta": [1]}\n', "a.jsonl:1: article a: 'meta' must be an object"),
    ("a.jsonl", b'{"id": "a", "text": "x"}\n{"id": "a", "text": "x"}\n', "a.jsonl:2: duplicate id 'a' (first at "),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD)
def test_a_bad_record_is_refused_naming_its_place(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError) as raised:
        read_articles([tmp_path])
    assert str(raised.value).startswith(f"{tmp_path}/{message}")


def test_bad_parquet_rows_name_their_row(tmp_path):
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["Hamas", None]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: row 2: article p2: no 'text' string"):
        read_articles([tmp_path])
    pq.write_table(pa.table({"id": ["p1", "p1"], "text": ["Hamas", "Hamas"]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: row 2: duplicate id 'p1' \(first at .*b\.parquet: row 1\)"):
        read_articles([tmp_path])
    pq.write_table(pa.table({"id": ["p1"], "body": ["Hamas"]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet: parquet needs 'id' and 'text' columns \(missing text\)"):
        read_articles([tmp_path])
    (tmp_path / "b.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"b\.parquet: not a readable parquet file"):
        read_articles([tmp_path])


def test_the_same_id_in_two_files_is_refused_whatever_its_text(tmp_path):
    (tmp_path / "a.txt").write_text("one", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "a", "text": "one"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"b\.jsonl:1: duplicate id 'a' \(first at {tmp_path}/a\.txt\)"):
        read_articles([tmp_path])


def test_sources_that_hold_no_articles_are_named(tmp_path):
    with pytest.raises(InputError, match="nowhere: no such file or folder"):
        read_articles([tmp_path / "nowhere"])
    (tmp_path / "a.csv").write_text("id,text\n")
    with pytest.raises(InputError, match=r"\.csv: expected a \.txt, \.jsonl or \.parquet file \(or a folder of them\)"):
        read_articles([tmp_path / "a.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no \.txt, \.jsonl or \.parquet files in this folder"):
        read_articles([tmp_path / "empty"])


def test_sources_are_checked_before_the_first_article_is_asked_for(tmp_path):
    with pytest.raises(InputError, match="nowhere: no such file or folder"):
        stream_articles([tmp_path / "nowhere"])


# --- reading lazily: memory holds a record, not the file -------------------------------------------------------

COUNT = 5_000


def _big_jsonl(path: Path, last_line: str, text_size: int = 10) -> None:
    lines = (json.dumps({"id": f"n{n:05d}", "text": f"{n} " + "x" * text_size}) + "\n" for n in range(COUNT))
    path.write_text("".join(lines) + last_line + "\n", encoding="utf-8")


def _big_source(folder: Path, form: str) -> tuple[Path, str]:
    """COUNT good articles, then a bad one; returns the file and the error the bad one gives."""
    if form == "jsonl":
        path = folder / "big.jsonl"
        _big_jsonl(path, "{oops")
        return path, f"{path}:{COUNT + 1}: invalid JSON (Expecting property name enclosed in double quotes at column 2)"
    path = folder / "big.parquet"
    ids = [f"n{n:05d}" for n in range(COUNT + 1)]
    pq.write_table(pa.table({"id": ids, "text": ["Hamas"] * COUNT + [None]}), path, row_group_size=500)
    return path, f"{path}: row {COUNT + 1}: article n{COUNT:05d}: no 'text' string"


@pytest.mark.parametrize("form", ["jsonl", "parquet"])
def test_the_first_article_comes_before_the_rest_of_the_file_is_read(tmp_path, form):
    """The last record is bad: a reader that read (and checked) the whole file first could not yield the first."""
    path, error = _big_source(tmp_path, form)
    articles = stream_articles([path])
    assert next(articles).id == "n00000"
    with pytest.raises(InputError) as raised:
        list(articles)
    assert str(raised.value) == error


def test_a_jsonl_file_is_read_as_it_is_consumed(tmp_path):
    """Lines written after the first article was yielded are the ones read: nothing was read ahead beyond a buffer."""
    path = tmp_path / "big.jsonl"
    _big_jsonl(path, json.dumps({"id": "last", "text": "as written first"}))
    articles = stream_articles([path])
    next(articles)
    with path.open("r+b") as stream:
        stream.seek(-len(b'first"}\n'), 2)
        stream.write(b'later"}\n')
    assert list(articles)[-1].text == "as written later"


def test_memory_stays_far_below_the_size_of_the_file(tmp_path):
    path = tmp_path / "big.jsonl"
    _big_jsonl(path, json.dumps({"id": "last", "text": "x"}), text_size=4_000)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in stream_articles([path]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == COUNT + 1 and size > 20_000_000
    assert peak < size / 10, f"peak {peak:,} bytes while reading {size:,}"


# --- properties ------------------------------------------------------------------------------------------------

texts = st.lists(st.sampled_from([*AWKWARD_PIECES, "\r\n", "\r", "\t"]), min_size=1, max_size=20).map("".join)
articles = st.dictionaries(
    st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=8), texts.filter(str.strip), max_size=6
)


def _write(folder: Path, form: str, found: dict[str, str]) -> None:
    if form == "txt":
        for article_id, text in found.items():
            (folder / f"{article_id}.txt").write_bytes(text.encode("utf-8"))
    elif form == "jsonl":
        lines = "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\r\n" for i, t in found.items())
        (folder / "a.jsonl").write_bytes(("\ufeff" + lines).encode("utf-8"))
    else:
        table = pa.table({"id": list(found), "text": list(found.values())})
        pq.write_table(table, folder / "a.parquet", row_group_size=2)


@given(found=articles.filter(bool), form=st.sampled_from(["txt", "jsonl", "parquet"]))
def test_every_format_reads_back_what_was_written_crlf_as_lf(found, form):
    with tempfile.TemporaryDirectory() as folder:
        _write(Path(folder), form, found)
        read = read_articles([folder])
    expected = {article_id: text.replace("\r\n", "\n") for article_id, text in found.items()}
    if form == "txt":
        expected = dict(sorted(expected.items()))
    assert [(a.id, a.text) for a in read] == list(expected.items())


@given(found=articles.filter(bool), bad=st.sampled_from(['{"id": 5', '{"text": "x"}', "[]", '{"id": "z", "text": ""}']))
def test_a_bad_line_anywhere_is_named_by_its_line_number(found, bad):
    lines = [json.dumps({"id": i, "text": t}) for i, t in found.items()]
    with tempfile.TemporaryDirectory() as folder:
        for index in range(len(lines) + 1):
            path = Path(folder) / "a.jsonl"
            path.write_text("\n".join([*lines[:index], bad, *lines[index:]]) + "\n", encoding="utf-8")
            with pytest.raises(InputError) as raised:
                read_articles([path])
            assert str(raised.value).startswith(f"{path}:{index + 1}: ")


@given(found=articles.filter(bool), form=st.sampled_from(["jsonl", "parquet"]), data=st.data())
def test_reading_from_a_records_position_gives_the_rest_of_the_file(found, form, data):
    """What apply's shards do: resume at a line (and its byte offset) or a row, and read the same records."""
    with tempfile.TemporaryDirectory() as folder:
        _write(Path(folder), form, found)
        path = next(Path(folder).iterdir())
        records = list(read_records(path))
        index = data.draw(st.integers(0, len(records) - 1))
        resumed = list(read_records(path, records[index].position, records[index].offset))
    assert resumed == records[index:]
