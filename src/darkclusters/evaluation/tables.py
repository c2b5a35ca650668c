"""The published tables, built from one long-format DataFrame of per-sample metrics and written as CSV,
Markdown and LaTeX (each atomically, through ``darkclusters.io.atomic_path``).

Input: a long DataFrame with one row per (test sample, metric) and the columns

    method, simulation, metric, value           (always)
    cluster_id, view, redshift                  (per test sample; redshift for the generalisation table)
    inputs                                      (ablation: "P", "SL", "WL", "P+SL", "P+WL", "P+SL+WL")
    mass_bin, map                               (b(k)/r(k) table, e.g. "high"/"low", "gas"/"DM")

Tables (layouts of ``reference/targets.md``):

* :func:`table_methods` — DarkClusters Table 2: methods × {TNG, SIMBA} × {PSNR, SSIM, PCC, held-out RMSE},
  medians over test samples (or over clusters, with ``per_cluster``).
* :func:`table_ablation` — inputs (P, SL, WL, P+SL, P+WL, P+SL+WL) × metrics, medians (seed 000, Fig. 4).
* :func:`table_redshifts` — methods × metrics × test redshift, medians (generalisation, seed 000, Fig. 5).
* :func:`table_light_traces_mass` — PCC(Σ, F814W) per simulation and redshift (seed 000, App. C).
* :func:`table_bias_correlation` — mass bin × map × small/large-scale b and r: mean with the 16th/84th
  percentile offsets (Hsu et al., seed 002, Table 1; split at k = 2 h/Mpc).
* :func:`table_calibration` — methods × calibration scores (fraction of |ε| < 1, ε mean and std, RMSE–σ
  correlation, TARP max|ECP − α|), medians.

Each builder returns a :class:`Table`; :func:`write_table` writes ``{stem}.csv`` (numbers, one flat header
row), ``{stem}.md`` and ``{stem}.tex`` (booktabs ``tabular``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from darkclusters.io import atomic_path

__all__ = [
    "ABLATION_INPUTS",
    "CALIBRATION_METRICS",
    "METHOD_METRICS",
    "Table",
    "table_ablation",
    "table_bias_correlation",
    "table_calibration",
    "table_light_traces_mass",
    "table_methods",
    "table_redshifts",
    "write_table",
]

METHOD_METRICS: dict[str, str] = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "pcc": "PCC",
    "heldout_rmse": "held-out RMSE",
}
ABLATION_INPUTS: tuple[str, ...] = ("P", "SL", "WL", "P+SL", "P+WL", "P+SL+WL")
CALIBRATION_METRICS: dict[str, str] = {
    "frac_within_1sigma": "frac |ε|<1",
    "z_mean": "ε mean",
    "z_std": "ε std",
    "rmse_sigma_pcc": "PCC(RMSE, σ)",
    "tarp_max_dev": "TARP max|ECP−α|",
}
BR_COLUMNS: dict[str, str] = {
    "b_small": "small-scale b",
    "b_large": "large-scale b",
    "r_small": "small-scale r",
    "r_large": "large-scale r",
}


@dataclass(frozen=True)
class Table:
    """A built table: numbers for CSV and display strings (same shape) for Markdown and LaTeX.

    values: numeric DataFrame (index = row labels, columns possibly a 2-level MultiIndex (group, sub));
    markdown, latex: DataFrames of cell strings with the same index and columns; caption: one sentence.
    """

    values: pd.DataFrame
    markdown: pd.DataFrame
    latex: pd.DataFrame
    caption: str


def _check(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"metrics DataFrame lacks columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError("metrics DataFrame is empty")


def _median(df: pd.DataFrame, keys: list[str], per_cluster: bool) -> pd.Series:
    """Median of ``value`` per ``keys`` group; with ``per_cluster`` first the mean over a cluster's rows."""
    if per_cluster:
        _check(df, ["cluster_id"])
        df = df.groupby([*keys, "cluster_id"], sort=False, dropna=False)["value"].mean().reset_index()
    return df.groupby(keys, sort=False, dropna=False)["value"].median()


_TEX_CHARS = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "ε": r"\ensuremath{\varepsilon}",
    "σ": r"\ensuremath{\sigma}",
    "α": r"\ensuremath{\alpha}",
    "Σ": r"\ensuremath{\Sigma}",
    "≥": r"\ensuremath{\geq}",
    "≈": r"\ensuremath{\approx}",
    "|": r"\ensuremath{|}",
    "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}",
    "−": "-",
    "–": "--",
}


def _tex_escape(text: object) -> str:
    """Escape LaTeX specials and turn the Greek letters and symbols of our labels into math (ASCII out)."""
    return "".join(_TEX_CHARS.get(c, c) for c in str(text))


def _fmt(x: float, number_format: str) -> str:
    return "–" if not np.isfinite(x) else format(float(x), number_format)


def _simple(values: pd.DataFrame, caption: str, number_format: str) -> Table:
    cells = values.map(lambda x: _fmt(x, number_format))
    return Table(values, cells, cells.map(_tex_escape), caption)


def _wide(med: pd.Series, cols: list[str], row_order: Sequence, col_orders: list[Sequence]) -> pd.DataFrame:
    """Pivot a median Series indexed by [rows, *cols] into rows × (cols...) in the given orders."""
    wide = med.unstack(cols)
    wanted = pd.MultiIndex.from_product(col_orders) if len(cols) > 1 else pd.Index(col_orders[0])
    return wide.reindex(index=list(row_order), columns=wanted)


def _present(df: pd.DataFrame, col: str, order: Sequence | None) -> list:
    return list(order) if order is not None else list(dict.fromkeys(df[col]))


def table_methods(
    df: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    simulations: Sequence[str] = ("TNG", "SIMBA"),
    metrics: Mapping[str, str] = METHOD_METRICS,
    per_cluster: bool = False,
    number_format: str = "#.3g",
) -> Table:
    """DarkClusters Table 2: rows = methods, columns = (metric label, simulation), medians of ``value``.

    ``simulations`` are values of the ``simulation`` column in column order; ``metrics`` maps metric names of
    the ``metric`` column to their labels. Missing combinations are NaN (shown "–").
    """
    _check(df, ["method", "simulation", "metric", "value"])
    sub = df[df["metric"].isin(list(metrics)) & df["simulation"].isin(list(simulations))]
    med = _median(sub, ["method", "metric", "simulation"], per_cluster)
    values = _wide(
        med, ["metric", "simulation"], _present(sub, "method", methods), [list(metrics), list(simulations)]
    )
    values = values.rename(columns=dict(metrics), level=0)
    values.index.name = "method"
    how = "clusters (per-cluster means)" if per_cluster else "test samples"
    return _simple(
        values, f"Median scores over {how}, each map compared with its ground truth Σ.", number_format
    )


def table_ablation(
    df: pd.DataFrame,
    *,
    inputs: Sequence[str] = ABLATION_INPUTS,
    metrics: Mapping[str, str] = METHOD_METRICS,
    simulation: str | None = None,
    per_cluster: bool = False,
    number_format: str = "#.3g",
) -> Table:
    """Ablation over inputs: rows = ``inputs`` (P, SL, WL, P+SL, P+WL, P+SL+WL), columns = metric labels.

    Uses rows with an ``inputs`` column value in ``inputs`` (only the given ``simulation`` when set).
    """
    _check(df, ["inputs", "metric", "value"])
    sub = df[df["metric"].isin(list(metrics)) & df["inputs"].isin(list(inputs))]
    if simulation is not None:
        _check(df, ["simulation"])
        sub = sub[sub["simulation"] == simulation]
    med = _median(sub, ["inputs", "metric"], per_cluster)
    values = _wide(med, ["metric"], inputs, [list(metrics)]).rename(columns=dict(metrics))
    values.index.name = "inputs"
    return _simple(
        values, "Median scores by inputs: photometry (P), strong (SL) and weak (WL) lensing.", number_format
    )


def table_redshifts(
    df: pd.DataFrame,
    *,
    simulation: str = "TNG",
    methods: Sequence[str] | None = None,
    metrics: Mapping[str, str] = METHOD_METRICS,
    per_cluster: bool = False,
    number_format: str = "#.3g",
) -> Table:
    """Generalisation across lens redshifts: rows = methods, columns = (metric label, "z = …"), medians.

    Uses the rows of ``simulation``; redshifts are the sorted distinct values of the ``redshift`` column.
    """
    _check(df, ["method", "simulation", "redshift", "metric", "value"])
    sub = df[(df["simulation"] == simulation) & df["metric"].isin(list(metrics))]
    if sub.empty:
        raise ValueError(f"no rows for simulation={simulation!r} and metrics {list(metrics)}")
    zs = sorted(sub["redshift"].unique())
    med = _median(sub, ["method", "metric", "redshift"], per_cluster)
    values = _wide(med, ["metric", "redshift"], _present(sub, "method", methods), [list(metrics), zs])
    values.columns = pd.MultiIndex.from_tuples([(metrics[m], f"z = {z:g}") for m, z in values.columns])
    values.index.name = "method"
    return _simple(values, f"Median scores on the {simulation} test sets by lens redshift.", number_format)


def table_light_traces_mass(
    df: pd.DataFrame, *, metric: str = "pcc_sigma_f814w", number_format: str = "#.3g"
) -> Table:
    """Light-traces-mass check (seed 000, App. C): PCC between Σ and the F814W image per (simulation,
    redshift); columns mean, median and the number of test samples n."""
    _check(df, ["simulation", "redshift", "metric", "value"])
    sub = df[df["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no rows with metric={metric!r}")
    g = sub.groupby(["simulation", "redshift"], sort=True)["value"]
    values = pd.DataFrame({"mean PCC": g.mean(), "median PCC": g.median(), "n": g.size().astype(float)})
    cells = values.map(lambda x: _fmt(x, number_format))
    cells["n"] = values["n"].map(lambda x: str(int(x)))
    return Table(values, cells, cells.map(_tex_escape), "Pearson correlation of Σ with the F814W image.")


def _pm(mean: float, lo: float, hi: float, number_format: str, tex: bool) -> str:
    if not np.isfinite(mean):
        return "--" if tex else "–"
    m = _fmt(mean, number_format)
    decimals = len(m.split(".")[1]) if "." in m else 0  # offsets to the mean's last digit
    plus, minus = f"{hi - mean:.{decimals}f}", f"{mean - lo:.{decimals}f}"
    return f"${m}^{{+{plus}}}_{{-{minus}}}$" if tex else f"{m} (+{plus}/−{minus})"


def table_bias_correlation(
    df: pd.DataFrame,
    *,
    mass_bins: Sequence[str] | None = None,
    maps: Sequence[str] | None = None,
    number_format: str = ".3f",
) -> Table:
    """Hsu et al. (seed 002) Table 1: rows = (mass bin, map), columns = small/large-scale b and r.

    Metrics ``b_small, b_large, r_small, r_large`` (from ``spectra.scale_split_means``, k split 2 h/Mpc),
    one row per test sample. Each cell: the mean over samples, with the 16th and 84th percentiles as
    offsets (mean^{+(p84 − mean)}_{−(mean − p16)}); the CSV holds mean, p16 and p84 per metric.
    """
    _check(df, ["mass_bin", "map", "metric", "value"])
    sub = df[df["metric"].isin(list(BR_COLUMNS))]
    if sub.empty:
        raise ValueError(f"no rows with metrics {list(BR_COLUMNS)}")
    g = sub.groupby(["mass_bin", "map", "metric"], sort=False)["value"]
    stats = pd.DataFrame({"mean": g.mean(), "p16": g.quantile(0.16), "p84": g.quantile(0.84)})
    rows = pd.MultiIndex.from_product(
        [_present(sub, "mass_bin", mass_bins), _present(sub, "map", maps)], names=["mass bin", "map"]
    )
    wide = stats.unstack("metric")
    wide.index.names = ["mass bin", "map"]
    cols = pd.MultiIndex.from_product([list(BR_COLUMNS), ["mean", "p16", "p84"]])
    wide = wide.swaplevel(0, 1, axis=1).reindex(index=rows, columns=cols)
    values = wide.rename(columns=BR_COLUMNS, level=0)
    md = pd.DataFrame(index=rows, columns=list(BR_COLUMNS.values()), dtype=object)
    tex = md.copy()
    for key, label in BR_COLUMNS.items():
        for r in rows:
            mean, lo, hi = (wide.loc[r, (key, s)] for s in ("mean", "p16", "p84"))
            md.loc[r, label] = _pm(mean, lo, hi, number_format, tex=False)
            tex.loc[r, label] = _pm(mean, lo, hi, number_format, tex=True)
    return Table(values, md, tex, "Mean bias b(k) and correlation r(k); small scales k ≥ 2 h/Mpc.")


def table_calibration(
    df: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    metrics: Mapping[str, str] = CALIBRATION_METRICS,
    number_format: str = "#.3g",
) -> Table:
    """Coverage/calibration summary: rows = (method, simulation), columns = calibration metrics, medians over
    test samples (a per-method score such as TARP has one row per method and simulation)."""
    _check(df, ["method", "simulation", "metric", "value"])
    sub = df[df["metric"].isin(list(metrics))]
    if sub.empty:
        raise ValueError(f"no rows with metrics {list(metrics)}")
    med = sub.groupby(["method", "simulation", "metric"], sort=False)["value"].median()
    values = med.unstack("metric").reindex(columns=list(metrics)).rename(columns=dict(metrics))
    if methods is not None:
        values = values.reindex(index=list(methods), level=0)
    values.index.names = ["method", "simulation"]
    return _simple(
        values, "Calibration of the posterior uncertainty (calibrated: frac ≈ 0.68, TARP ≈ 0).", number_format
    )


def _flat(col: object) -> str:
    return " ".join(str(c) for c in col) if isinstance(col, tuple) else str(col)


def _md(text: object) -> str:
    return str(text).replace("|", r"\|")  # a bare | would split the cell


def _markdown(table: Table) -> str:
    cells = table.markdown
    heads = [*map(_md, _names(cells.index)), *(_md(_flat(c)) for c in cells.columns)]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for idx, row in cells.iterrows():
        labels = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([*map(_md, labels), *map(_md, row)]) + " |")
    return "\n".join([f"**{_md(table.caption)}**", "", *lines, ""])


def _names(index: pd.Index) -> list[str]:
    return [n if n is not None else "" for n in index.names]


def _latex(table: Table, label: str) -> str:
    cells = table.latex
    n_idx = cells.index.nlevels
    cols = cells.columns
    spec = "l" * n_idx + "r" * len(cols)
    head = [_tex_escape(n) for n in _names(cells.index)]
    lines = [
        r"\begin{table}",
        r"\centering",
        rf"\caption{{{_tex_escape(table.caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
    ]
    if isinstance(cols, pd.MultiIndex):
        top, rules, start = [""] * n_idx, [], n_idx + 1
        for name, positions in _groups(cols.get_level_values(0)):
            n = len(positions)
            top.append(rf"\multicolumn{{{n}}}{{c}}{{{_tex_escape(name)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        lines += [" & ".join(top) + r" \\", " ".join(rules)]
        head += [_tex_escape(str(c)) for c in cols.get_level_values(-1)]
    else:
        head += [_tex_escape(str(c)) for c in cols]
    lines += [" & ".join(head) + r" \\", r"\midrule"]
    for idx, row in cells.iterrows():
        labels = idx if isinstance(idx, tuple) else (idx,)
        lines.append(" & ".join([*(_tex_escape(str(x)) for x in labels), *map(str, row)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _groups(values: pd.Index) -> list[tuple[object, list]]:
    """Runs of equal consecutive values: [(value, [positions...]), ...]."""
    out: list[tuple[object, list]] = []
    for i, v in enumerate(values):
        if out and out[-1][0] == v:
            out[-1][1].append(i)
        else:
            out.append((v, [i]))
    return out


def write_table(table: Table, stem: str | os.PathLike, *, label: str | None = None) -> list[Path]:
    """Write ``{stem}.csv``, ``{stem}.md`` and ``{stem}.tex`` atomically; returns the three paths.

    CSV: ``table.values`` with the index as leading columns and a flat header (MultiIndex columns joined by
    a space). LaTeX: a booktabs ``table`` with ``\\label{label}`` (default ``tab:{stem name}``); it needs
    ``\\usepackage{booktabs}``.
    """
    stem = Path(stem)
    csv, md, tex = (stem.with_name(stem.name + ext) for ext in (".csv", ".md", ".tex"))
    flat = table.values.copy()
    flat.columns = [_flat(c) for c in flat.columns]
    with atomic_path(csv) as tmp:
        flat.to_csv(tmp, index=True)
    with atomic_path(md) as tmp:
        tmp.write_text(_markdown(table), encoding="utf-8")
    with atomic_path(tex) as tmp:
        tmp.write_text(_latex(table, label or f"tab:{stem.name}"), encoding="utf-8")
    return [csv, md, tex]
