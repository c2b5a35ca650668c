"""Atomic writes and provenance: a failed write leaves nothing; provenance is deterministic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from darkclusters.io import (
    atomic_dir,
    atomic_path,
    config_sha256,
    provenance,
    read_parquet_metadata,
    write_parquet,
)


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # noqa: PT012 - a write killed midway
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_until_the_new_one_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # noqa: PT012 - a write killed midway
        tmp.write_text("new but incomplete")
        raise RuntimeError
    assert target.read_text() == "old"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_dir(tmp_path: Path) -> None:
    target = tmp_path / "sim"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:  # noqa: PT012 - a write killed midway
        (tmp / "a").write_text("x")
        raise RuntimeError
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("x")
    assert (target / "a").read_text() == "x"


def test_provenance_is_deterministic_and_sensitive_to_config() -> None:
    a = provenance(cfg={"b": 1, "a": [1, 2]}, seed=3, inputs=["x.h5"])
    b = provenance(cfg={"a": [1, 2], "b": 1}, seed=3, inputs=["x.h5"])
    assert a == b
    assert a["config_sha256"] != config_sha256({"a": [1, 2], "b": 2})
    assert a["seed"] == "3"
    assert set(a) >= {"darkclusters_version", "git_commit", "config_sha256", "seed", "inputs"}


def test_parquet_metadata_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"m200c_msun": [1e14, 2e14]})
    write_parquet(df, tmp_path / "c.parquet", metadata={"units": {"m200c_msun": "Msun"}, "seed": "1"})
    assert read_parquet_metadata(tmp_path / "c.parquet")["units"] == {"m200c_msun": "Msun"}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "c.parquet"), df)
