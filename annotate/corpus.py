"""Articles and gold on disk: reading seeds, reading and writing gold JSONL, atomic writes.

No network and no NLP here. Everything that writes goes through :func:`atomic_write_bytes`,
so a crash or a bad input never leaves a saved file half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from annotate.errors import InputError
from annotate.records import AnnotatedDoc, Article, PulledAnnotation


def _default_mode(path: Path) -> int:
    """Keep an existing file's permissions; a new file gets the usual 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``mode`` sets the file's permissions (e.g. 0o600 for secrets); by default an existing file
    keeps its own and a new one follows the umask, as if written in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, _default_mode(path) if mode is None else mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def _decode(raw: bytes, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not valid UTF-8 (byte {exc.start})") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _article(article_id: str, text: str, meta: dict, where: str) -> Article:
    if not article_id:
        raise InputError(f"{where}: article has no id")
    if not text.strip():
        raise InputError(f"{where}: article {article_id} has empty text")
    return Article(article_id, text, meta)


def _read_txt(path: Path) -> list[Article]:
    text = _decode(path.read_bytes(), str(path))
    return [_article(path.stem, text, {"source_file": path.name}, str(path))]


def _read_jsonl(path: Path) -> list[Article]:
    articles = []
    for number, line in enumerate(_decode(path.read_bytes(), str(path)).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        record = _json_object(line, where)
        text = record.get("text")
        if not isinstance(text, str):
            raise InputError(f"{where}: 'text' must be a string")
        meta = record.get("meta") or {}
        if not isinstance(meta, dict):
            raise InputError(f"{where}: 'meta' must be an object")
        articles.append(_article(str(record.get("id") or ""), text.replace("\r\n", "\n"), meta, where))
    return articles


def _json_object(line: str, where: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object per line")
    return record


def _source_files(sources: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.suffix in {".txt", ".jsonl"} and p.is_file())
            if not found:
                raise InputError(f"{source}: no .txt or .jsonl files in this folder")
            files.extend(found)
        elif source.is_file():
            if source.suffix not in {".txt", ".jsonl"}:
                raise InputError(f"{source}: expected a .txt or .jsonl file")
            files.append(source)
        else:
            raise InputError(f"{source}: no such file or folder")
    return files


def read_articles(sources: Sequence[str | Path]) -> list[Article]:
    """Read articles from folders of ``.txt``, ``.jsonl`` files of ``{"id", "text", "meta"}``, or files.

    ``\\r\\n`` becomes ``\\n`` and nothing else changes. The same id twice with the same text is
    read once; with different text it is an error, never a silent overwrite.
    """
    seen: dict[str, tuple[Article, Path]] = {}
    for path in _source_files(sources):
        for article in _read_txt(path) if path.suffix == ".txt" else _read_jsonl(path):
            earlier = seen.get(article.id)
            if earlier is None:
                seen[article.id] = (article, path)
            elif earlier[0].text != article.text:
                raise InputError(f"{path}: article {article.id} has different text than in {earlier[1]}")
    return [article for article, _ in seen.values()]


def gold_files(path: str | Path) -> list[Path]:
    """The JSONL files a gold path names: the file itself, or every ``*.jsonl`` in a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise InputError(f"{path}: no .jsonl gold files in this folder")
        return files
    if not path.is_file():
        raise InputError(f"{path}: no such gold file")
    return [path]


def read_gold_located(path: str | Path) -> list[tuple[str, AnnotatedDoc]]:
    """Read gold JSONL with each document's ``file:line``, for problems that point at it."""
    located = []
    for file in gold_files(path):
        for number, line in enumerate(_decode(file.read_bytes(), str(file)).split("\n"), start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            record = _json_object(line, where)
            for key, kind in (("id", str), ("text", str), ("spans", list)):
                if not isinstance(record.get(key), kind):
                    raise InputError(f"{where}: '{key}' missing or not a {kind.__name__}")
            for index, span in enumerate(record["spans"]):
                if not isinstance(span, dict) or not all(k in span for k in ("start", "end", "label", "text")):
                    raise InputError(f"{where}: span #{index} needs start, end, label and text")
                if not all(isinstance(span[k], int) and not isinstance(span[k], bool) for k in ("start", "end")):
                    raise InputError(f"{where}: span #{index} start and end must be integers")
            located.append((where, AnnotatedDoc.from_dict(record)))
    return located


def read_gold(path: str | Path) -> list[AnnotatedDoc]:
    """Read gold JSONL (a file or a folder of them). Structure errors name file and line."""
    return [doc for _, doc in read_gold_located(path)]


def gold_jsonl(docs: Iterable[AnnotatedDoc]) -> str:
    """The canonical serialization: one article per line, sorted by id, spans sorted."""
    lines = [json.dumps(doc.to_dict(), ensure_ascii=False) for doc in sorted(docs, key=lambda d: d.id)]
    return "".join(line + "\n" for line in lines)


def write_gold(path: str | Path, docs: Iterable[AnnotatedDoc]) -> str:
    """Write gold atomically; returns the gold hash of what was written."""
    text = gold_jsonl(docs)
    atomic_write_text(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def gold_sha256(docs: Iterable[AnnotatedDoc]) -> str:
    """A hash of the gold's canonical form: what models and reports record as their data."""
    return hashlib.sha256(gold_jsonl(docs).encode("utf-8")).hexdigest()


def write_pulled(path: str | Path, annotations: Iterable[PulledAnnotation]) -> None:
    """Write every pulled annotation (all annotators, cancelled ones too) as JSONL, atomically."""
    ordered = sorted(annotations, key=lambda a: (a.doc_id, a.task_id, a.annotation_id))
    atomic_write_text(path, "".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n" for a in ordered))


def read_pulled(path: str | Path) -> list[PulledAnnotation]:
    """Read what :func:`write_pulled` wrote; structure errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file of pulled annotations")
    annotations = []
    for number, line in enumerate(_decode(path.read_bytes(), str(path)).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            annotations.append(PulledAnnotation.from_dict(_json_object(line, where)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: not a pulled annotation ({exc})") from None
    return annotations
