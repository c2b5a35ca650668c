"""``darkclusters reconstruct``: our own observation file written out as FITS + CSV gives the posterior of the
rule path, and malformed inputs fail with the file, column and row named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from astropy.io import fits

from darkclusters.cli import main
from darkclusters.io import read_nested
from darkclusters.user_inputs import (
    InputError,
    grid_wcs,
    read_band_images,
    read_strong_table,
    read_weak_table,
    reconstruct_user_cluster,
)

from .test_reconstruct import COSMO, FOV, NPIX, PIXEL, TINY_DAPS, Z_LENS, Z_REF, _run, files  # noqa: F401

RA0, DEC0 = 150.1, 2.2  # field centre [deg] of the exported view
BANDS = ("F125W", "F606W", "F814W")


def _pixel_to_sky(x_arcsec: np.ndarray, y_arcsec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of the grid convention: (x, y) [arcsec] from the centre → (RA, Dec) [deg]."""
    wcs = grid_wcs(RA0, DEC0, NPIX, PIXEL)
    px, py = np.asarray(x_arcsec) / PIXEL - 0.5 + NPIX / 2, np.asarray(y_arcsec) / PIXEL - 0.5 + NPIX / 2
    return wcs.all_pix2world(px, py, 0)


def _export(obs_path: Path, out: Path, view: int = 0) -> dict[str, Any]:
    """One view of an observation file as FITS images (one per band, WCS of the grid) and SL/WL CSV tables."""
    out.mkdir(parents=True, exist_ok=True)
    header = grid_wcs(RA0, DEC0, NPIX, PIXEL).to_header()
    header["BUNIT"] = "Jy"
    with h5py.File(obs_path, "r") as f:
        images = f[f"photometry/fov{FOV:.0f}/images"][view]
        strong = read_nested(f[f"lensing/fov{FOV:.0f}/view_{view:03d}/strong"])
        weak = read_nested(f[f"lensing/fov{FOV:.0f}/view_{view:03d}/weak_kinematic"])
    paths = {}
    for b, band in enumerate(BANDS):
        paths[band] = out / f"{band}.fits"
        fits.PrimaryHDU(images[b], header=header).writeto(paths[band])
    fam = np.asarray(strong["images"]["family_id"])
    counts = np.bincount(fam)
    keep = counts[fam] >= 2  # single-image families add nothing to L_geo; the table format rejects them
    ra, dec = _pixel_to_sky(strong["images"]["x_arcsec"][keep], strong["images"]["y_arcsec"][keep])
    z_of = dict(
        zip(strong["families"]["family_id"].tolist(), strong["families"]["z_source"].tolist(), strict=True)
    )
    rows = ["family,image,RA,Dec,z_s"]
    for k, (f_id, r, d) in enumerate(zip(fam[keep], ra, dec, strict=True)):
        rows.append(f"fam{f_id},{k},{float(r)!r},{float(d)!r},{float(z_of[int(f_id)])!r}")
    (out / "strong.csv").write_text("\n".join(rows) + "\n")
    ra, dec = _pixel_to_sky(weak["x_arcsec"], weak["y_arcsec"])
    rows = ["RA,Dec,e1,e2,sigma_e,z"]
    for values in zip(ra, dec, weak["e1"], weak["e2"], weak["sigma_e"], weak["z_s"], strict=True):
        rows.append(",".join(repr(float(v)) for v in values))
    (out / "weak.csv").write_text("\n".join(rows) + "\n")
    return {
        "images": paths,
        "strong": out / "strong.csv",
        "weak": out / "weak.csv",
        "n_keep": int(keep.sum()),
    }


def test_round_trip_matches_the_rule_path(files: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    """FITS + CSV of view 0 give view 0 of the rule's posterior. Tolerance: 1e-5 of the map's peak. The
    inputs agree to float rounding (images are the same float32 values on the same grid, sky positions
    round-trip through the TAN WCS to ~1e-9 arcsec, D_ls/D_s recomputed from z_s in the same cosmology), and
    the two runs differ in batch size (2 views vs 1), which changes float32 summation order in the network
    by ~1e-7 relative; 3 DAPS levels do not amplify that beyond 1e-5."""
    model_pt, obs_path = files
    exported = _export(obs_path, tmp_path / "user")
    assert exported["n_keep"] >= 2  # the test exercises the strong-lensing table
    recon = {"n_samples": 3, "daps": TINY_DAPS, "weights": {"strong_geometric": 1.0, "weak": 1.0}}
    with _run(files, tmp_path / "rule.h5", "P+SL+WL", recon) as rule:
        ref = {k: rule[k][0] for k in ("mean", "std", "quantiles")}
    out = reconstruct_user_cluster(
        model_pt=model_pt,
        images=exported["images"],
        ra_deg=RA0,
        dec_deg=DEC0,
        pixel_arcsec=PIXEL,
        z_lens=Z_LENS,
        z_ref=Z_REF,
        cosmology=COSMO,
        out_path=tmp_path / "cli.h5",
        recon_cfg=recon,
        seed=5,
        strong_csv=exported["strong"],
        weak_csv=exported["weak"],
        device="cpu",
    )
    with h5py.File(out, "r") as f:
        assert f.attrs["method"] == "P+SL+WL"
        assert f["mean"].shape == (1, NPIX, NPIX)
        assert f["quantiles"].shape == (1, 3, NPIX, NPIX)
        assert f["mean"].attrs["units"] == "Msun kpc^-2"
        for key, value in ref.items():
            np.testing.assert_allclose(f[key][0], value, rtol=0, atol=1e-5 * np.abs(ref["mean"]).max())
    # and a different lens redshift changes the answer (the comparison can fail)
    other = reconstruct_user_cluster(
        model_pt=model_pt,
        images=exported["images"],
        ra_deg=RA0,
        dec_deg=DEC0,
        pixel_arcsec=PIXEL,
        z_lens=0.4,
        z_ref=Z_REF,
        cosmology=COSMO,
        out_path=tmp_path / "other.h5",
        recon_cfg=recon,
        seed=5,
        weak_csv=exported["weak"],
        device="cpu",
    )
    with h5py.File(other, "r") as f:
        assert f.attrs["method"] == "P+WL"
        assert np.abs(f["mean"][0] - ref["mean"]).max() > 1e-3 * np.abs(ref["mean"]).max()


def test_cli_command_end_to_end(files: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    model_pt, obs_path = files
    exported = _export(obs_path, tmp_path / "user")
    config = tmp_path / "recon.yaml"
    config.write_text(yaml.safe_dump({"reconstruction": {"n_samples": 2, "daps": TINY_DAPS}}))
    args = [
        "reconstruct", str(model_pt), str(tmp_path / "out.h5"),
        *(f"--image={b}={p}" for b, p in exported["images"].items()),
        f"--ra={RA0}", f"--dec={DEC0}", f"--z-lens={Z_LENS}", f"--z-ref={Z_REF}", f"--pixel-arcsec={PIXEL}",
        "--weak", str(exported["weak"]), "--config", str(config), "--device=cpu",
    ]  # fmt: skip
    assert main(args) == 0
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert (f.attrs["method"], f.attrs["n_samples"], f.attrs["nfe_per_sample"]) == ("P+WL", 2, 2)
        assert np.all(np.isfinite(f["mean"][()]))
        assert np.all(f["std"][()] >= 0)
    bad = [a if not a.startswith("--image=F606W") else "--image=F606W" for a in args]
    assert main(bad) == 2  # BAND=PATH malformed: a clear error, not a traceback


def _wcs():
    return grid_wcs(RA0, DEC0, NPIX, PIXEL)


KW = {"z_lens": Z_LENS, "z_ref": Z_REF, "cosmology": COSMO}
GOOD_STRONG = "family,image,RA,Dec,z_s\na,1,150.1,2.2,2.0\na,2,150.101,2.201,2.0\n"
GOOD_WEAK = "RA,Dec,e1,e2,z\n150.1,2.2,0.1,0.0,1.5\n150.11,2.19,0.0,0.1,0.8\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("family,image,RA,z_s\na,1,150.1,2.0\n", r"missing column\(s\) \['dec'\]"),
        (GOOD_STRONG.replace("2.201", "abc"), r"column 'dec', row 3: 'abc' is not a finite number"),
        (GOOD_STRONG.replace("150.101", "nan"), r"column 'ra', row 3: 'nan' is not a finite number"),
        (GOOD_STRONG.replace("150.101", "361.0"), r"column 'ra', row 3: 361.0 \[deg\] out of range"),
        (GOOD_STRONG.replace("2.201", "-91"), r"column 'dec', row 3: -91.0 \[deg\] out of range"),
        (GOOD_STRONG + "b,1,150.1,2.21,3.0\n", r"column 'family', row 4: family 'b' has a single image"),
        (GOOD_STRONG.replace("2.201,2.0", "2.201,2.5"), r"column 'z_s', row 3: family 'a' has different z_s"),
        (GOOD_STRONG.replace(",2.0", ",0.1"), r"column 'z_s', row 2: family 'a' at z_s = 0.1 is not behind"),
    ],
)
def test_bad_strong_table(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sl.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*" + message):
        read_strong_table(path, _wcs(), **KW)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RA,Dec,e1,z\n150.1,2.2,0.1,1.5\n", r"missing column\(s\) \['e2'\]"),
        ("RA,Dec,e1,e2\n150.1,2.2,0.1,0.0\n", r"missing column 'z' or photometric-redshift columns"),
        (GOOD_WEAK.replace("0.8", "x"), r"column 'z', row 3: 'x' is not a finite number"),
        (GOOD_WEAK.replace("0.1,0.0", "NaN,0.0"), r"column 'e1', row 2: 'NaN' is not a finite number"),
        (GOOD_WEAK.replace("2.19", "95"), r"column 'dec', row 3: 95.0 \[deg\] out of range"),
        (GOOD_WEAK.replace("0.1,0.0", "0.9,0.9"), r"columns 'e1', 'e2', row 2: \|e\|"),
        ("RA,Dec,e1,e2,pz_0.5,pz_1.5\n150.1,2.2,0.1,0.0,0,0\n", r"row 2: p\(z\) sums to zero"),
    ],
)
def test_bad_weak_table(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "wl.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*" + message):
        read_weak_table(path, _wcs(), **KW)


def test_photometric_redshifts_average_the_lensing_efficiency(tmp_path: Path) -> None:
    """p(z) on two redshifts with weights 1:3 gives ⟨D_ls/D_s⟩ = (r(0.8) + 3 r(1.5))/4 relative to z_ref; a
    point z reproduces r(z) itself; a source in front of the lens gets 0."""
    point, pz = tmp_path / "point.csv", tmp_path / "pz.csv"
    point.write_text("RA,Dec,e1,e2,z\n150.1,2.2,0.1,0.0,0.8\n150.1,2.2,0.1,0.0,1.5\n150.1,2.2,0,0,0.1\n")
    pz.write_text("RA,Dec,e1,e2,pz_0.8,pz_1.5\n150.1,2.2,0.1,0.0,1,3\n")
    r = read_weak_table(point, _wcs(), **KW)["ratio_to_ref"]
    assert r[2] == 0.0
    assert 0 < r[0] < r[1]
    got = read_weak_table(pz, _wcs(), **KW)["ratio_to_ref"][0]
    np.testing.assert_allclose(got, (r[0] + 3 * r[1]) / 4, rtol=1e-12)


def test_band_images_resample_and_bad_wcs(tmp_path: Path) -> None:
    """A band on a 2× finer grid resamples to the flux per coarse pixel; a band pointing elsewhere, a header
    without WCS, unknown units and a missing band fail naming the file."""
    y, x = np.mgrid[0:NPIX, 0:NPIX]
    linear = 1e-6 * (1.0 + 0.01 * x + 0.02 * y)  # bilinear interpolation reproduces a linear image
    header = _wcs().to_header()
    header["BUNIT"] = "Jy"
    good = tmp_path / "good.fits"
    fits.PrimaryHDU(linear, header=header).writeto(good)
    fine_wcs = grid_wcs(RA0, DEC0, 2 * NPIX, PIXEL / 2)
    yf, xf = np.mgrid[0 : 2 * NPIX, 0 : 2 * NPIX]
    fine_header = fine_wcs.to_header()
    fine_header["PHOTFNU"] = 2.0  # Jy s / e-: the data are in e-/s
    fine = tmp_path / "fine.fits"
    coarse_x, coarse_y = (xf + 0.5) / 2 - 0.5, (yf + 0.5) / 2 - 0.5
    fits.PrimaryHDU(1e-6 * (1.0 + 0.01 * coarse_x + 0.02 * coarse_y) / 4 / 2.0, header=fine_header).writeto(
        fine
    )
    out = read_band_images({"A": good, "B": fine}, ["A", "B"], _wcs())
    np.testing.assert_allclose(out[0], linear, rtol=1e-9)
    np.testing.assert_allclose(out[1], linear, rtol=1e-6)
    shifted = header.copy()
    shifted["CRVAL1"] = RA0 + 0.5
    off = tmp_path / "off.fits"
    fits.PrimaryHDU(linear, header=shifted).writeto(off)
    with pytest.raises(
        InputError, match=re.escape(str(off)) + r": band B covers only 0.0 % of the requested"
    ):
        read_band_images({"A": good, "B": off}, ["A", "B"], _wcs())
    nowcs = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(linear).writeto(nowcs)
    with pytest.raises(InputError, match=re.escape(str(nowcs)) + ": the header has no celestial WCS"):
        read_band_images({"A": nowcs}, ["A"], _wcs())
    nounit = tmp_path / "nounit.fits"
    fits.PrimaryHDU(linear, header=_wcs().to_header()).writeto(nounit)
    with pytest.raises(InputError, match=re.escape(str(nounit)) + ": unknown image units"):
        read_band_images({"A": nounit}, ["A"], _wcs())
    with pytest.raises(InputError, match=r"no image for bands \['B'\]"):
        read_band_images({"A": good}, ["A", "B"], _wcs())
