"""From per-cluster score files to the published tables (one call per table rule).

:func:`load_scores` concatenates ``results/metrics/...parquet`` files; :func:`build_named_table` picks the
rows a table needs and calls its builder in :mod:`darkclusters.evaluation.tables`; :func:`tarp_rows` adds the
TARP score of a set of sample files (it needs every test sample at once, so it is not a per-cluster score).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
import pandas as pd

from darkclusters.evaluation.calibration import tarp_coverage, tarp_max_deviation
from darkclusters.evaluation.tables import (
    Table,
    table_ablation,
    table_bias_correlation,
    table_calibration,
    table_light_traces_mass,
    table_methods,
    table_redshifts,
)

__all__ = [
    "TABLES",
    "build_named_table",
    "load_scores",
    "posterior_tarp_curves",
    "posterior_tarp_rows",
    "tarp_from_files",
    "tarp_rows",
]

TABLES = ("methods", "ablation", "redshifts", "light_traces_mass", "bias_correlation", "calibration")


def load_scores(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One long DataFrame of the score files (``cluster.evaluate_*`` output); ValueError if none."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        raise ValueError("no score files given")
    return pd.concat(frames, ignore_index=True)


def _samples(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """((S, V, D) samples, (V, D) truths) of a conditional sample file; None without ``/samples``."""
    with h5py.File(path, "r") as f:
        if "samples" not in f or "truth" not in f:
            return None
        s = np.asarray(f["samples"], dtype=np.float64)  # (V, S, ...)
        t = np.asarray(f["truth"], dtype=np.float64)  # (V, ...)
    s = np.moveaxis(s.reshape(s.shape[0], s.shape[1], -1), 1, 0)
    return s, t.reshape(t.shape[0], -1)


def tarp_from_files(
    paths: Sequence[str | os.PathLike], *, seed: int, log_transform: bool = True
) -> tuple[np.ndarray, np.ndarray] | None:
    """TARP (ECP, α) of every view of every file pooled as one set of sims (``calibration.tarp_coverage``,
    references drawn from the prior: another sim's truth). Maps enter as log10(max(Σ, 1)) with
    ``log_transform`` (Σ spans decades; the distance is otherwise set by the few brightest pixels).
    None when fewer than 2 sims have samples."""
    s_all, t_all = [], []
    for p in paths:
        st = _samples(p)
        if st is not None:
            s_all.append(st[0])
            t_all.append(st[1])
    if not s_all or sum(t.shape[0] for t in t_all) < 2:
        return None
    n_s = min(s.shape[0] for s in s_all)
    samples = np.concatenate([s[:n_s] for s in s_all], axis=1)
    theta = np.concatenate(t_all, axis=0)
    if log_transform:
        samples, theta = np.log10(np.maximum(samples, 1.0)), np.log10(np.maximum(theta, 1.0))
    return tarp_coverage(samples, theta, references="prior", seed=seed, num_alpha_bins=10)


def _posterior_samples(
    posterior: str | os.PathLike, maps: str | os.PathLike, obs: str | os.PathLike, fov: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """((S, V, D) Σ samples, (V, D) truth Σ) of a posterior file saved with ``save_samples`` and its cluster's
    truth (Σ total of ``fov``); None without ``/samples``."""
    from darkclusters.datasets import read_channels

    with h5py.File(posterior, "r") as f:
        if "samples" not in f:
            return None
        s = np.asarray(f["samples"], dtype=np.float64)  # (V, S, H, W)
    t = read_channels(["sigma:total"], maps_path=maps, obs_path=obs, fov=fov)[0][:, 0].astype(np.float64)
    if t.shape[0] != s.shape[0] or t.shape[1:] != s.shape[2:]:
        raise ValueError(f"{posterior}: samples {s.shape} do not match the truth {t.shape} of {maps}")
    return np.moveaxis(s.reshape(s.shape[0], s.shape[1], -1), 1, 0), t.reshape(t.shape[0], -1)


def posterior_tarp_curves(
    groups: Sequence[tuple[str, str, Sequence[Sequence[str]]]], *, fov: str, seed: int
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """{(method, simulation): TARP (ECP, α)} of the posteriors: groups are (method, simulation, [(posterior,
    maps, observations), ...]); every view of every triple of a group is pooled, as in
    :func:`tarp_from_files` (log10 Σ, references from the prior). Groups whose files hold no samples
    (``reconstruction.save_samples`` off) or fewer than 2 views are left out."""
    curves = {}
    for method, simulation, triples in groups:
        found = [st for st in (_posterior_samples(*t, fov) for t in triples) if st is not None]
        if not found or sum(t.shape[0] for _, t in found) < 2:
            continue
        n_s = min(s.shape[0] for s, _ in found)
        samples = np.log10(np.maximum(np.concatenate([s[:n_s] for s, _ in found], axis=1), 1.0))
        theta = np.log10(np.maximum(np.concatenate([t for _, t in found], axis=0), 1.0))
        curves[method, simulation] = tarp_coverage(
            samples, theta, references="prior", seed=seed, num_alpha_bins=10
        )
    return curves


def posterior_tarp_rows(
    groups: Sequence[tuple[str, str, Sequence[Sequence[str]]]], *, fov: str, seed: int
) -> pd.DataFrame:
    """Rows (method, simulation, metric="tarp_max_dev", value) of :func:`posterior_tarp_curves`."""
    rows = [
        {"method": m, "simulation": sim, "metric": "tarp_max_dev", "value": tarp_max_deviation(ecp, alpha)}
        for (m, sim), (ecp, alpha) in posterior_tarp_curves(groups, fov=fov, seed=seed).items()
    ]
    return pd.DataFrame(rows, columns=["method", "simulation", "metric", "value"])


def tarp_rows(paths: Sequence[str | os.PathLike], *, method: str, simulation: str, seed: int) -> pd.DataFrame:
    """Rows (method, simulation, metric="tarp_max_dev", value) for :func:`table_calibration`."""
    res = tarp_from_files(paths, seed=seed)
    if res is None:
        return pd.DataFrame(columns=["method", "simulation", "metric", "value"])
    ecp, alpha = res
    return pd.DataFrame(
        [
            {
                "method": method,
                "simulation": simulation,
                "metric": "tarp_max_dev",
                "value": tarp_max_deviation(ecp, alpha),
            }
        ]
    )


def _display(methods: Sequence[str]) -> list[str]:
    return [m.replace("-", "+") if m.startswith("P") else m for m in methods]


def build_named_table(
    name: str,
    scores: pd.DataFrame,
    *,
    methods: Sequence[str],
    train_snapshots: Mapping[str, Sequence[int] | None] | None = None,
    extra_rows: pd.DataFrame | None = None,
) -> Table:
    """The table ``name`` (one of :data:`TABLES`) from the long ``scores``.

    methods: the row order (baselines first, then posterior inputs; '-' or '+' spelling). train_snapshots:
    {sim: snapshots} of the training dataset; the methods and ablation tables keep only these snapshots of
    those simulations (the paper's Table 2 is at the training redshift; other simulations enter whole).
    extra_rows: rows appended before building (e.g. :func:`tarp_rows`).
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}: use one of {TABLES}")
    df = (
        scores
        if extra_rows is None or extra_rows.empty
        else pd.concat([scores, extra_rows], ignore_index=True)
    )
    order = _display(methods)
    if name in ("methods", "ablation") and train_snapshots:
        keep = np.ones(len(df), bool)
        for sim, snaps in train_snapshots.items():
            if snaps is not None:
                keep &= ~((df["sim"] == sim) & ~df["snapshot"].isin(list(snaps)))
        df = df[keep]
    present = [m for m in order if m in set(df["method"])]
    if name == "methods":
        sims = [s for s in ("TNG", "SIMBA") if s in set(df["simulation"])] + sorted(
            set(df["simulation"]) - {"TNG", "SIMBA"}
        )
        return table_methods(df, methods=present, simulations=sims)
    if name == "ablation":
        sub = df[df["inputs"].fillna("") != ""]
        return table_ablation(sub, simulation="TNG" if "TNG" in set(sub["simulation"]) else None)
    if name == "redshifts":
        sim = "TNG" if "TNG" in set(df["simulation"]) else str(df["simulation"].iloc[0])
        return table_redshifts(df, simulation=sim, methods=present)
    if name == "light_traces_mass":
        return table_light_traces_mass(df)
    if name == "bias_correlation":
        sub = df.dropna(subset=["mass_bin"]) if "mass_bin" in df else df.iloc[0:0]
        return table_bias_correlation(sub, mass_bins=["high", "low"], maps=None)
    cal_methods = [m for m in order if m in set(df["method"])] + sorted(set(df["method"]) - set(order))
    return table_calibration(df, methods=cal_methods)


def table_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Methods (baselines, then posterior inputs with '-') and training snapshots from the validated
    config."""
    rc = cfg["reconstruction"]
    spec = cfg["datasets"].get(rc["dataset"], {})
    methods = list(cfg["evaluation"]["baselines"]) + [m.replace("+", "-") for m in rc["methods"]]
    return {
        "methods": methods,
        "train_snapshots": dict.fromkeys(spec.get("simulations", []), spec.get("snapshots")),
    }


def write_named_table(
    name: str,
    *,
    scores: Sequence[str | os.PathLike],
    samples: Sequence[str | os.PathLike],
    outputs: Any,
    tables: Mapping[str, Any],
    seed: int,
    posterior_groups: Sequence[tuple[str, str, Sequence[Sequence[str]]]] | None = None,
    fov: str | None = None,
) -> None:
    """Build the table ``name`` from score files and write ``outputs.csv`` (+ .md, .tex beside it).

    samples: conditional sample files, whose pooled TARP score joins the calibration table. posterior_groups:
    (method, simulation, [(posterior, maps, observations), ...]) whose pooled TARP scores (posteriors saved
    with samples, truth Σ of field of view ``fov``) join it too. tables: the :func:`table_config` dict.
    seed: the TARP reference seed.
    """
    from darkclusters.evaluation.tables import write_table

    df = load_scores(scores)
    extra = None
    if name == "calibration":
        parts = []
        if samples:
            cond = df[df["method"].str.endswith(" prior")]
            label = str(cond["method"].iloc[0]) if not cond.empty else "conditional prior"
            sim = str(cond["simulation"].iloc[0]) if not cond.empty else "TNG"
            parts.append(tarp_rows(samples, method=label, simulation=sim, seed=seed))
        if posterior_groups and fov is not None:
            parts.append(posterior_tarp_rows(posterior_groups, fov=fov, seed=seed))
        parts = [p for p in parts if not p.empty]
        extra = pd.concat(parts, ignore_index=True) if parts else None
    table = build_named_table(
        name, df, methods=tables["methods"], train_snapshots=tables.get("train_snapshots"), extra_rows=extra
    )
    stem = os.fspath(outputs.csv)[: -len(".csv")]
    write_table(table, stem, label=f"tab:{name}")
