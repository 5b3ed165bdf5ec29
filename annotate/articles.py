"""Articles to label, from ``.txt`` files, JSONL and parquet: the one reader ``push`` and ``apply`` share.

A source is read record by record (a line of JSONL, a batch of parquet rows, one ``.txt`` file), so
memory holds a record at a time, never the archive. Each record knows its place (``file:line``,
``file: row N`` or the ``.txt`` file) and, when it cannot be an article, why not. One set of rules
holds for every command:

- an id is a non-blank string (an integer is read as its digits); a ``.txt`` file's id is its stem;
- the text is a string with more than whitespace in it, no lone surrogate and at most
  :data:`annotate.records.MAX_TEXT_CHARS` characters (what every predictor takes); a leading
  byte-order mark is dropped and CRLF becomes LF, nothing else changes, so every command hashes the same text;
- a JSONL line is one JSON object (no key twice, no lone surrogate; :func:`annotate.corpus.json_object`),
  its ``meta``, if any, an object; a parquet file has ``id`` and ``text`` columns;
- an id seen before is refused (the second and later rows of one id), whatever its text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from annotate.corpus import decode_utf8, json_object
from annotate.errors import InputError
from annotate.records import Article, text_problem
from annotate.targets import os_reason, path_kind, read_bytes

SUFFIXES = (".txt", ".jsonl", ".parquet")
PARQUET_BATCH = 1024  # rows of a parquet file turned into Python objects at a time


@dataclass(frozen=True)
class Record:
    """One source record: its position (line or row, from 1), the byte offset of a JSONL line, where it is,
    and what is wrong with it (``problem``; then ``text`` is None)."""

    position: int
    offset: int
    where: str
    id: str | None
    text: str | None
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    problem: str = ""

    def article(self) -> Article:
        return Article(self.id, self.text, self.meta)


def source_files(sources: Sequence[str | Path]) -> list[Path]:
    """The files SOURCES name: ``.txt`` / ``.jsonl`` / ``.parquet`` files, or such files in folders (not below)."""
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        kind = path_kind(source)
        if kind == "folder":
            try:
                found = sorted(p for p in source.iterdir() if p.suffix in SUFFIXES and path_kind(p) == "file")
            except OSError as exc:
                raise InputError(f"{source}: cannot list this folder ({os_reason(exc)})") from None
            if not found:
                raise InputError(f"{source}: no .txt, .jsonl or .parquet files in this folder")
            files.extend(found)
        elif kind == "file":
            if source.suffix not in SUFFIXES:
                raise InputError(f"{source}: expected a .txt, .jsonl or .parquet file (or a folder of them)")
            files.append(source)
        elif kind == "other":
            raise InputError(f"{source}: not a regular file or folder")
        else:
            raise InputError(f"{source}: no such file or folder")
    return files


def read_records(path: Path, start: int = 1, offset: int = 0) -> Iterator[Record]:
    """Every record of one source file from ``start`` (a line or row number; ``offset`` in bytes for JSONL)."""
    if path.suffix == ".jsonl":
        return _read_jsonl(path, start, offset)
    if path.suffix == ".parquet":
        return _read_parquet(path, start)
    return _read_txt(path)


def duplicate_problem(article_id: str, first: str) -> str:
    """The problem of a second row with one id: every reader refuses it, naming where the first one is."""
    return f"duplicate id {article_id!r} (first at {first})"


def stream_articles(sources: Sequence[str | Path]) -> Iterator[Article]:
    """The articles of SOURCES in order, read lazily; the first bad record or repeated id is an InputError
    naming its file and line or row. The sources themselves are checked before this returns.

    Memory holds one record's text and every id seen with its place (to name both places of a
    repeated id); ``apply``'s plan finds repeats in 8 bytes an id instead.
    """
    files = source_files(sources)

    def articles() -> Iterator[Article]:
        first_at: dict[str, str] = {}
        for path in files:
            for record in read_records(path):
                if record.problem:
                    raise InputError(f"{record.where}: {record.problem}")
                if record.id in first_at:
                    raise InputError(f"{record.where}: {duplicate_problem(record.id, first_at[record.id])}")
                first_at[record.id] = record.where
                yield record.article()

    return articles()


def read_articles(sources: Sequence[str | Path]) -> list[Article]:
    """Every article of SOURCES (folders, ``.txt``, ``.jsonl`` or ``.parquet`` files), checked as
    :func:`stream_articles` checks them: for commands that need them all, such as ``push``."""
    return list(stream_articles(sources))


def _checked(position: int, offset: int, where: str, article_id: object, text: object, meta: object) -> Record:
    if isinstance(article_id, int) and not isinstance(article_id, bool):
        article_id = str(article_id)
    if not isinstance(article_id, str) or not article_id.strip():
        return Record(position, offset, where, None, None, problem="no 'id' (a non-empty string)")
    if not isinstance(text, str):
        return Record(position, offset, where, article_id, None, problem=f"article {article_id}: no 'text' string")
    if not text.strip():
        return Record(position, offset, where, article_id, None, problem=f"article {article_id} has empty text")
    if not isinstance(meta, dict):
        problem = f"article {article_id}: 'meta' must be an object"
        return Record(position, offset, where, article_id, None, problem=problem)
    problem = text_problem(text)
    if problem:
        return Record(position, offset, where, article_id, None, problem=f"article {article_id}: {problem}")
    return Record(position, offset, where, article_id, text, meta)


def _lf(text: object) -> object:
    """CRLF read as LF in a string of JSONL or parquet (a ``.txt`` file or parquet bytes: by :func:`decode_utf8`)."""
    return text.replace("\r\n", "\n") if isinstance(text, str) else text


def _read_txt(path: Path) -> Iterator[Record]:
    raw = read_bytes(path, "article file")
    try:
        text = decode_utf8(raw)
    except UnicodeDecodeError as exc:
        yield Record(1, 0, str(path), path.stem, None, problem=f"not valid UTF-8 (byte {exc.start})")
        return
    yield _checked(1, 0, str(path), path.stem, text, {"source_file": path.name})


def _read_jsonl(path: Path, start: int = 1, offset: int = 0) -> Iterator[Record]:
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the article file ({os_reason(exc)})") from None
    with stream:
        stream.seek(offset)
        position = start
        for raw in stream:
            where = f"{path}:{position}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = f"not valid UTF-8 (byte {exc.start} of the line)"
                yield Record(position, offset, where, None, None, problem=problem)
            else:
                if offset == 0:
                    line = line.removeprefix("\ufeff")  # a byte-order mark leads a file, never a later line
                if line.strip():
                    yield _jsonl_record(line, position, offset, where)
            offset += len(raw)
            position += 1


def _jsonl_record(line: str, position: int, offset: int, where: str) -> Record:
    value, problem = json_object(line)
    if problem:
        return Record(position, offset, where, None, None, problem=problem)
    return _checked(position, offset, where, value.get("id"), _lf(value.get("text")), value.get("meta") or {})


def _read_parquet(path: Path, start: int = 1) -> Iterator[Record]:
    try:
        handle = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None
    missing = {"id", "text"} - set(handle.schema_arrow.names)
    if missing:
        raise InputError(f"{path}: parquet needs 'id' and 'text' columns (missing {', '.join(sorted(missing))})")
    first_row = 1
    for group in range(handle.num_row_groups):
        rows = handle.metadata.row_group(group).num_rows
        if first_row + rows <= start:
            first_row += rows
            continue
        position = first_row
        for batch in _batches(handle, group, path):
            for article_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist(), strict=True):
                if position >= start:
                    yield _parquet_record(position, f"{path}: row {position}", article_id, text)
                position += 1
        first_row += rows


def _batches(handle: pq.ParquetFile, group: int, path: Path) -> Iterator[pa.RecordBatch]:
    try:
        yield from handle.iter_batches(batch_size=PARQUET_BATCH, row_groups=[group], columns=["id", "text"])
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None


def _parquet_record(position: int, where: str, article_id: object, text: object) -> Record:
    if not isinstance(text, bytes):
        return _checked(position, 0, where, article_id, _lf(text), {})
    try:
        return _checked(position, 0, where, article_id, decode_utf8(text), {})
    except UnicodeDecodeError as exc:
        return Record(position, 0, where, None, None, problem=f"not valid UTF-8 (byte {exc.start} of the text)")
