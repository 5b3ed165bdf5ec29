"""Word-cluster vectors: what the model can know about a word it never saw in five articles.

The tok2vecs embed a word by its form (norm, prefix, suffix, shape). A name or verb absent from the
training articles is then just an unknown string. spaCy's own lookups package
(``spacy-lookups-data``, installed from the package index like any dependency, no hub download) carries Brown
clusters for English computed on a large corpus: words used alike (country names, speech verbs,
numbers) share a bit-path prefix (stored low bit first, under a top marker bit). This module turns
each of the most frequent words' cluster paths into a small static vector — the sum of a fixed
random vector per path prefix, so words with a longer shared prefix get closer vectors — and
installs the table before training through ``[initialize.before_init]``
(``annotate.cluster_vectors.v1``). The vectors are saved with the pipeline; prediction does not
need the lookups package.

Building the table takes seconds (every cluster path of the lookups package is read), and every
training process would pay it. So it is built once per ``spacy-lookups-data`` version and kept
in the user's cache folder (``$ANNOTATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/annotate``, else
``~/.cache/annotate``), written atomically; a damaged or unwritable cache only costs the rebuild.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import spacy
from spacy.language import Language
from spacy.vectors import Vectors

from annotate.corpus import atomic_write_bytes
from annotate.errors import AnnotateError, TrainingError

CALLBACK = "annotate.cluster_vectors.v1"
PREFIX_BITS = (2, 4, 6, 8, 10, 12, 14, 16, 18)
TABLE_FORMAT = 1  # raise when build_cluster_table changes what it computes: old cache files are then ignored


def cache_folder() -> Path:
    """Where built tables are kept between processes and runs."""
    if os.environ.get("ANNOTATE_CACHE_DIR"):
        return Path(os.environ["ANNOTATE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "annotate"


def cache_path(lang: str, words: int, width: int, seed: int) -> Path:
    """The table's file, named by everything it depends on (the lookups package's version included)."""
    try:
        lookups = version("spacy-lookups-data")
    except PackageNotFoundError:
        lookups = "missing"
    name = f"clusters-{lang}-{words}-{width}-{seed}-lookups{lookups}-format{TABLE_FORMAT}.npz"
    return cache_folder() / name


@lru_cache(maxsize=4)
def cluster_table(lang: str, words: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of the ``words`` most frequent clustered words: from the cache, else built and cached."""
    path = cache_path(lang, words, width, seed)
    try:
        with np.load(path, allow_pickle=False) as saved:
            return saved["keys"], saved["vectors"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent, or not a table this version wrote
        pass
    keys, vectors = build_cluster_table(lang, words, width, seed)
    buffer = io.BytesIO()
    np.savez(buffer, keys=keys, vectors=vectors)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except (OSError, AnnotateError):  # a read-only home: the next process builds it again
        pass
    return keys, vectors


def build_cluster_table(lang: str, words: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) for the ``words`` most frequent words that have a cluster; deterministic."""
    try:
        from spacy.lookups import load_lookups

        tables = load_lookups(lang, ["lexeme_cluster", "lexeme_prob"])
    except (ValueError, ImportError) as exc:
        raise TrainingError(
            f"word clusters for {lang!r} need the spacy-lookups-data package (pip install spacy-lookups-data): {exc}"
        ) from None
    clusters = tables.get_table("lexeme_cluster")
    probs = tables.get_table("lexeme_prob")
    found = [(probs.get(key, -30.0), key, path) for key, path in clusters.items() if path]
    found.sort(key=lambda item: (-item[0], item[1]))
    found = found[:words]
    keys = np.array([key for _, key, _ in found], dtype="uint64")
    vectors = np.zeros((len(found), width), dtype="float32")
    prefix_vectors: dict[tuple[int, int], np.ndarray] = {}
    for row, (_, _, path) in enumerate(found):
        length = int(path).bit_length() - 1  # the top bit only marks the path's length
        for bits in PREFIX_BITS:
            if bits > length:
                break
            prefix = (bits, int(path) & ((1 << bits) - 1))  # the path is stored first branch lowest
            vector = prefix_vectors.get(prefix)
            if vector is None:
                rng = np.random.default_rng(zlib.crc32(f"{seed}:{prefix[0]}:{prefix[1]}".encode()))
                vector = prefix_vectors[prefix] = rng.standard_normal(width).astype("float32")
            vectors[row] += vector
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms > 0, norms, 1.0)
    return keys, vectors


@spacy.registry.callbacks(CALLBACK)
def create_cluster_vectors(words: int = 30000, width: int = 64, seed: int = 0) -> Callable[[Language], Language]:
    """A ``before_init`` callback that gives the pipeline's vocab the cluster vectors."""

    def add_cluster_vectors(nlp: Language) -> Language:
        keys, vectors = cluster_table(nlp.lang, words, width, seed)
        table = Vectors(shape=vectors.shape)
        for row, key in enumerate(keys.tolist()):
            table.add(key, row=row)
        table.data[:] = vectors
        nlp.vocab.vectors = table
        return nlp

    return add_cluster_vectors
