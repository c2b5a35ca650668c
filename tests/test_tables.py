"""Table builders: hand-computed medians/means, layouts, and well-formed CSV, Markdown and LaTeX."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from darkclusters.evaluation import tables as t


def _rows(method: str, sim: str, metric: str, values: list[float], **extra: object) -> list[dict]:
    return [
        {
            "method": method,
            "simulation": sim,
            "metric": metric,
            "value": v,
            "cluster_id": i // 2,
            "view": i % 2,
            **extra,
        }
        for i, v in enumerate(values)
    ]


@pytest.fixture
def long_df() -> pd.DataFrame:
    rows = []
    rows += _rows("LTM", "TNG", "psnr", [20.0, 26.0, 30.0])  # median 26
    rows += _rows("LTM", "SIMBA", "psnr", [21.0, 23.0])  # median 22 (even count: mean of the middle two)
    rows += _rows("Ours", "TNG", "psnr", [33.0, 34.0, 31.0, 40.0])  # median 33.5
    rows += _rows("Ours", "TNG", "ssim", [0.9, 0.95, 0.97])
    rows += _rows("Ours", "SIMBA", "heldout_rmse", [0.006, 0.007, 0.008])
    rows += _rows("Ours", "TNG", "unused_metric", [1.0])
    return pd.DataFrame(rows)


def test_table_methods_medians_and_layout(long_df):
    table = t.table_methods(long_df, methods=["LTM", "Ours", "UNet"])
    v = table.values
    assert list(v.index) == ["LTM", "Ours", "UNet"]
    assert list(v.columns.get_level_values(0)[::2]) == ["PSNR", "SSIM", "PCC", "held-out RMSE"]
    assert list(v.columns.get_level_values(1)[:2]) == ["TNG", "SIMBA"]
    assert v.loc["LTM", ("PSNR", "TNG")] == 26.0
    assert v.loc["LTM", ("PSNR", "SIMBA")] == 22.0
    assert v.loc["Ours", ("PSNR", "TNG")] == 33.5
    assert v.loc["Ours", ("SSIM", "TNG")] == pytest.approx(0.95)
    assert v.loc["Ours", ("held-out RMSE", "SIMBA")] == pytest.approx(0.007)
    assert np.isnan(v.loc["UNet", ("PSNR", "TNG")])
    assert table.markdown.loc["Ours", ("PSNR", "TNG")] == "33.5"
    assert table.markdown.loc["Ours", ("held-out RMSE", "SIMBA")] == "0.00700"
    assert table.markdown.loc["UNet", ("PSNR", "TNG")] == "–"


def test_per_cluster_median(long_df):
    # per cluster means of Ours/TNG/psnr: cluster 0 (33, 34) → 33.5, cluster 1 (31, 40) → 35.5; median 34.5
    table = t.table_methods(long_df, per_cluster=True)
    assert table.values.loc["Ours", ("PSNR", "TNG")] == pytest.approx(34.5)


def _check_markdown(text: str, n_cols: int) -> None:
    rows = [line.replace(r"\|", "") for line in text.splitlines() if line.startswith("|")]  # escaped pipes
    assert len(rows) >= 3
    assert all(line.endswith("|") and line.count("|") == n_cols + 1 for line in rows)
    assert set(rows[1]) <= {"|", "-"}


def _check_latex(text: str) -> None:
    assert text.isascii()
    depth = 0
    for ch in text.replace(r"\{", "").replace(r"\}", ""):  # braces balance, never closing an unopened one
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert text.count("$") % 2 == 0
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", text).group(1)
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    for line in body:
        assert line.endswith(r"\\")
        assert line.count("&") - line.count(r"\&") == len(spec) - 1
    for span in re.findall(r"\\multicolumn\{(\d+)\}", text):
        assert int(span) <= len(spec)
    assert text.index(r"\toprule") < text.index(r"\midrule") < text.index(r"\bottomrule")
    assert text.strip().endswith(r"\end{table}")


def test_write_table_writes_three_valid_files(long_df, tmp_path):
    table = t.table_methods(long_df, methods=["LTM", "Ours"])
    paths = t.write_table(table, tmp_path / "table2")
    assert [p.name for p in paths] == ["table2.csv", "table2.md", "table2.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table2.csv", "table2.md", "table2.tex"]  # no temp
    csv = pd.read_csv(paths[0], index_col=0)
    assert csv.loc["LTM", "PSNR TNG"] == 26.0
    assert csv.shape == (2, 8)
    _check_markdown(paths[1].read_text(), n_cols=1 + 8)
    tex = paths[2].read_text()
    _check_latex(tex)
    assert r"\multicolumn{2}{c}{held-out RMSE}" in tex
    assert r"\label{tab:table2}" in tex
    assert "LTM & 26.0 & 22.0 &" in tex


def test_ablation_and_redshift_tables():
    rows = []
    for inputs, value in [("P+SL+WL", 34.4), ("P", 25.4), ("SL", 27.0), ("WL", 20.0)]:
        rows += _rows("Ours", "TNG", "psnr", [value, value + 2.0], inputs=inputs)
    abl = t.table_ablation(pd.DataFrame(rows), metrics={"psnr": "PSNR"})
    assert list(abl.values.index) == list(t.ABLATION_INPUTS)
    assert abl.values.loc["P", "PSNR"] == pytest.approx(26.4)
    assert np.isnan(abl.values.loc["P+SL", "PSNR"])
    rows = []
    for z, value in [(0.5, 30.0), (0.25, 32.0), (0.75, 28.0)]:
        rows += _rows("Ours", "TNG", "psnr", [value], redshift=z)
    rows += _rows("Ours", "SIMBA", "psnr", [1.0], redshift=0.5)
    gen = t.table_redshifts(pd.DataFrame(rows), metrics={"psnr": "PSNR"})
    assert list(gen.values.columns) == [("PSNR", "z = 0.25"), ("PSNR", "z = 0.5"), ("PSNR", "z = 0.75")]
    np.testing.assert_allclose(gen.values.loc["Ours"].to_numpy(), [32.0, 30.0, 28.0])


def test_light_traces_mass_table(tmp_path):
    rows = _rows("truth", "TNG", "pcc_sigma_f814w", [0.5, 0.6, 0.7, 0.9], redshift=0.3)
    rows += _rows("truth", "TNG", "pcc_sigma_f814w", [0.61], redshift=0.5)
    table = t.table_light_traces_mass(pd.DataFrame(rows))
    assert table.values.loc[("TNG", 0.3), "mean PCC"] == pytest.approx(0.675)
    assert table.values.loc[("TNG", 0.3), "median PCC"] == pytest.approx(0.65)
    assert table.markdown.loc[("TNG", 0.3), "n"] == "4"
    paths = t.write_table(table, tmp_path / "ltm")
    _check_markdown(paths[1].read_text(), n_cols=2 + 3)
    _check_latex(paths[2].read_text())


def test_bias_correlation_table(tmp_path):
    rng = np.random.default_rng(0)
    rows, want = [], {}
    for mass_bin in ("high", "low"):
        for map_name in ("gas", "DM"):
            for metric in ("b_small", "b_large", "r_small", "r_large"):
                vals = 1.0 + 0.02 * rng.standard_normal(11)
                want[(mass_bin, map_name, metric)] = vals
                rows += [{"mass_bin": mass_bin, "map": map_name, "metric": metric, "value": v} for v in vals]
    table = t.table_bias_correlation(pd.DataFrame(rows))
    assert list(table.markdown.index) == [("high", "gas"), ("high", "DM"), ("low", "gas"), ("low", "DM")]
    assert list(table.markdown.columns) == [
        "small-scale b",
        "large-scale b",
        "small-scale r",
        "large-scale r",
    ]
    vals = want[("low", "DM", "r_small")]
    assert table.values.loc[("low", "DM"), ("small-scale r", "mean")] == pytest.approx(vals.mean())
    assert table.values.loc[("low", "DM"), ("small-scale r", "p16")] == pytest.approx(np.quantile(vals, 0.16))
    mean, p84 = vals.mean(), np.quantile(vals, 0.84)
    cell = table.latex.loc[("low", "DM"), "small-scale r"]
    assert re.fullmatch(r"\$\d\.\d{3}\^\{\+\d\.\d{3}\}_\{-\d\.\d{3}\}\$", cell)
    assert cell.startswith(f"${mean:.3f}^{{+{p84 - mean:.3f}}}")
    paths = t.write_table(table, tmp_path / "bk")
    _check_latex(paths[2].read_text())
    _check_markdown(paths[1].read_text(), n_cols=2 + 4)
    assert pd.read_csv(paths[0], index_col=[0, 1]).shape == (4, 12)


def test_calibration_table(tmp_path):
    rows = _rows("Ours", "TNG", "frac_within_1sigma", [0.6, 0.7, 0.8])
    rows += _rows("Ours", "TNG", "tarp_max_dev", [0.05])
    rows += _rows("Ours", "SIMBA", "frac_within_1sigma", [0.5])
    table = t.table_calibration(pd.DataFrame(rows))
    assert table.values.loc[("Ours", "TNG"), "frac |ε|<1"] == pytest.approx(0.7)
    assert table.values.loc[("Ours", "TNG"), "TARP max|ECP−α|"] == pytest.approx(0.05)
    assert np.isnan(table.values.loc[("Ours", "SIMBA"), "TARP max|ECP−α|"])
    paths = t.write_table(table, tmp_path / "calibration")
    _check_markdown(paths[1].read_text(), n_cols=2 + 5)
    tex = paths[2].read_text()
    _check_latex(tex)
    assert r"frac \ensuremath{|}\ensuremath{\varepsilon}\ensuremath{|}\ensuremath{<}1" in tex


def test_missing_columns_raise():
    with pytest.raises(ValueError, match="lacks columns"):
        t.table_methods(pd.DataFrame({"method": ["a"], "value": [1.0]}))
    with pytest.raises(ValueError, match="lacks columns"):
        t.table_bias_correlation(pd.DataFrame({"metric": ["b_small"], "value": [1.0]}))
