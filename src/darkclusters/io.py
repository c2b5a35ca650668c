"""File I/O shared by every stage: atomic writes, provenance attributes, HDF5 and parquet helpers.

Every file the workflow writes goes through :func:`atomic_path` (a temporary name in the same directory, then
``os.replace``), so a killed job never leaves a file that looks complete, and carries the attributes returned
by :func:`provenance` (package version, git commit, config hash, seed, inputs). Provenance holds no timestamp
or host
name, so CPU reruns of the same config give byte-identical data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from darkclusters import __version__

__all__ = [
    "atomic_dir",
    "atomic_path",
    "config_sha256",
    "git_commit",
    "provenance",
    "read_nested",
    "read_parquet_metadata",
    "write_hdf5_attrs",
    "write_nested",
    "write_parquet",
]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path`` atomically.

    The caller writes the whole file to the yielded path. On any exception the temporary file is removed and
    ``path`` is left untouched (absent, or as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)  # atomic within one filesystem
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory: build it under a temporary name, then rename it into place.

    An existing directory at ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmpdir")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _canonical(obj: Any) -> Any:
    """Turn numpy scalars/arrays and paths into JSON-serialisable values, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def config_sha256(cfg: Mapping[str, Any] | None) -> str:
    """SHA-256 of the canonical JSON of a (sub-)config: the same settings give the same hash on every
    machine."""
    text = json.dumps(_canonical(cfg or {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def git_commit() -> str:
    """The git commit of the darkclusters source tree, with ``-dirty`` if it has local changes; else
    ``unknown``."""
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=src,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def provenance(
    *, cfg: Mapping[str, Any] | None, seed: int | None, inputs: Sequence[str | os.PathLike] = (), **extra: Any
) -> dict[str, str]:
    """Provenance attributes for an output file: all values are strings, so they fit HDF5 and parquet alike.

    cfg: the config (section) that determined the file; hashed, and stored as JSON.
    seed: the seed the file's random choices used (``None`` when none were made).
    inputs: the files it was made from (as given, relative paths stay relative so reruns compare equal).
    """
    attrs = {
        "darkclusters_version": __version__,
        "git_commit": git_commit(),
        "config_sha256": config_sha256(cfg),
        "config_json": json.dumps(_canonical(cfg or {}), sort_keys=True),
        "seed": "none" if seed is None else str(int(seed)),
        "inputs": json.dumps([os.fspath(p) for p in inputs]),
    }
    attrs.update({k: v if isinstance(v, str) else json.dumps(_canonical(v)) for k, v in extra.items()})
    return attrs


def write_hdf5_attrs(obj: h5py.Group | h5py.Dataset, attrs: Mapping[str, Any]) -> None:
    """Set attributes on an HDF5 object; strings stay strings, everything else goes through numpy."""
    for key, value in attrs.items():
        obj.attrs[key] = value if isinstance(value, str) else np.asarray(value)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, *, metadata: Mapping[str, Any]) -> None:
    """Write ``df`` to parquet atomically, with ``metadata`` (units, provenance) as JSON under key
    ``darkclusters``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"darkclusters"] = json.dumps(_canonical(metadata), sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``darkclusters`` metadata dict of a parquet file written by :func:`write_parquet`."""
    meta = pq.read_schema(path).metadata or {}
    if b"darkclusters" not in meta:
        raise KeyError(f"{path}: no 'darkclusters' metadata (not written by darkclusters)")
    return json.loads(meta[b"darkclusters"])


def write_nested(group: h5py.Group, data: Mapping[str, Any]) -> None:
    """Write a nested dict of numpy arrays into ``group``.

    Dicts become groups, 0-d arrays and scalars become attributes, everything else a dataset (strings UTF-8).
    """
    for key, value in data.items():
        if isinstance(value, Mapping):
            write_nested(group.require_group(key), value)
            continue
        arr = np.asarray(value)
        if arr.ndim == 0:
            group.attrs[key] = arr.item() if arr.dtype.kind != "U" else str(arr)
        elif arr.dtype.kind == "U":
            group.create_dataset(key, data=arr.astype(object), dtype=h5py.string_dtype())
        else:
            group.create_dataset(key, data=arr)


def read_nested(group: h5py.Group) -> dict[str, Any]:
    """Inverse of :func:`write_nested`: datasets as arrays, attributes as 0-d arrays, groups as dicts."""
    out: dict[str, Any] = {key: np.asarray(value) for key, value in group.attrs.items()}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = read_nested(item)
        elif h5py.check_string_dtype(item.dtype) is not None:
            out[key] = item.asstr()[()]
        else:
            out[key] = item[()]
    return out
