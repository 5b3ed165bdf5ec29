"""`annotate apply --engine ray`: the same rows as the local engine, from one local Ray per module."""

from __future__ import annotations

import pytest

from annotate.apply import apply
from tests.test_apply import make_scored_model, rows, shard_bytes, write_awkward_corpus

ray = pytest.importorskip("ray", reason="the [scale] extra (ray[data]) is not installed")


def test_ray_and_local_engines_write_the_same_shards_scores_included(tmp_path, project_root):
    from annotate.labels import load_schema

    schema = load_schema(project_root / "guidelines" / "labels.toml")
    scored_model_dir = make_scored_model(tmp_path / "scored-model")
    write_awkward_corpus(tmp_path / "src")
    local = apply(scored_model_dir, [tmp_path / "src"], tmp_path / "local", schema=schema, workers=2, shard_size=3)
    assert not ray.is_initialized()
    remote = apply(
        scored_model_dir, [tmp_path / "src"], tmp_path / "ray", schema=schema, engine="ray", workers=2, shard_size=3
    )
    assert not ray.is_initialized(), "a Ray that apply started is shut down"
    assert remote.shards_written == local.shards_written == 5
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")
    assert remote.spans == local.spans > 50
    (run,) = remote.manifest["runs"]
    assert run["engine"] == "ray" and run["workers"] == 2 and run["shards"] == 5
