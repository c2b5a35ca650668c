"""Photometry: filters, SED, redshift, SSP table, images, noise, ICL, file output (independent references).

References: sedpy's Kurucz solar spectrum and STIS Vega (through its own filter integration), Willmer (2018)
solar absolute magnitudes, Blanton & Roweis (2007) AB−Vega offsets, analytic power-law SEDs, the Sérsic
b_n values of Ciotti & Bertin (1999), and exact identities (flux conservation, 1/D_L², seeds).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from darkclusters.config import ConfigError, load_config
from darkclusters.photometry import (
    HST_BANDS,
    band_fluxes_jy,
    light_traces_mass_pcc,
    map_grids,
    observe_photometry_file,
    observe_view,
    passband,
    photometry_config,
    ssp_magnitudes,
    tng_magnitudes_to_ab,
)
from darkclusters.photometry.filters import REST_BANDS, jy_to_abmag, pivot_wavelength_aa
from darkclusters.photometry.image import bin_to_pixels, convolve_psf, noise_sigma_jy, psf_kernel
from darkclusters.photometry.sed import rest_frame_knots_aa
from darkclusters.projection.geometry import MapGeometry, sky_coordinates
from darkclusters.seeding import derive_rng
from darkclusters.simulations.particles import ParticleSet, Species, write_particles

ROOT = Path(__file__).resolve().parents[1]
TEN_PC_MPC = 1.0e-5
#: Solar absolute AB magnitudes in F125W, F606W, F814W (sedpy's Kurucz spectrum; /work/shared lensing.md).
SUN_HST_AB = np.array([4.562, 4.729, 4.524])
QUIET = {"icl": {"enabled": False}, "background": {"source": "none"}, "noise": {"enabled": False}}


def test_vega_to_ab_offsets() -> None:
    """Blanton & Roweis (2007) offsets, and the same offsets from sedpy's STIS Vega within 0.05 mag (the
    Buser/Palomar bands of TNG differ slightly from sedpy's Bessell U, B, V and 2MASS Ks)."""
    ab = tng_magnitudes_to_ab(np.zeros((1, 8)))[0]
    np.testing.assert_allclose(ab, [0.79, -0.09, 0.02, 1.85, 0, 0, 0, 0])
    from_vega = [passband(b).ab_minus_vega for b in ("U", "B", "V", "K")]
    np.testing.assert_allclose(ab[:4], from_vega, atol=0.05)
    with pytest.raises(ValueError, match="8 columns"):
        tng_magnitudes_to_ab(np.zeros((2, 7)))


def test_pivot_wavelengths() -> None:
    """Box filter: λ_p² = (λ2² − λ1²) / (2 ln(λ2/λ1)); HST pivots within 0.5 % of the STScI handbooks."""
    lam = np.linspace(4000.0, 6000.0, 2001)
    expected = np.sqrt((6000.0**2 - 4000.0**2) / (2 * np.log(1.5)))
    assert pivot_wavelength_aa(lam, np.ones_like(lam)) == pytest.approx(expected, rel=1e-5)
    for band, pivot in zip(HST_BANDS, (12486.0, 5921.0, 8057.0), strict=True):
        assert passband(band).pivot_aa == pytest.approx(pivot, rel=5e-3)


def test_sun_gives_solar_hst_magnitudes() -> None:
    """The Sun's 8 rest-frame magnitudes (sedpy's Kurucz spectrum through sedpy's filters) → SED → HST bands
    at 10 pc give its directly integrated HST magnitudes within 0.05 mag (the interpolation through 8 broad
    bands is good to ≤ 0.03 mag for the Sun; 0.05 leaves margin, a wrong (1+z) or Vega/AB slip breaks it)."""
    from sedpy.observate import load_filters
    from sedpy.reference_spectra import solar

    from darkclusters.photometry.filters import SEDPY_NAMES

    rest = load_filters([SEDPY_NAMES[b] for b in REST_BANDS])
    mags = np.array([[f.ab_mag(solar[:, 0], solar[:, 1]) for f in rest]])
    flux = band_fluxes_jy(mags, redshift=0.0, luminosity_distance_mpc=TEN_PC_MPC)
    np.testing.assert_allclose(jy_to_abmag(flux)[0], SUN_HST_AB, atol=0.05)


def test_sun_from_willmer_magnitudes() -> None:
    """Willmer (2018) solar absolute magnitudes in TNG's bands (U, B, V, K Vega; g, r, i, z AB) through the
    Vega→AB conversion and the SED give the solar HST AB magnitudes within 0.1 mag (tabulated magnitudes of
    different filter realisations and solar spectra differ by a few 0.01 mag)."""
    willmer = np.array([[5.61, 5.48, 4.83, 3.28, 5.11, 4.65, 4.53, 4.50]])
    flux = band_fluxes_jy(tng_magnitudes_to_ab(willmer), redshift=0.0, luminosity_distance_mpc=TEN_PC_MPC)
    np.testing.assert_allclose(jy_to_abmag(flux)[0], SUN_HST_AB, atol=0.1)


def test_flux_scales_with_distance_and_redshift() -> None:
    """A flat f_ν source: ⟨f_ν⟩ = (1+z) (10 pc / D_L)² · 3631 Jy 10^(−0.4 M), exactly, wherever the bands
    sample rest wavelengths below the z knot (8950 Å; beyond it the SED adds its near-infrared shape):
    F606W from z = 0, all bands from z = 0.7."""
    mags = np.full((1, 8), -20.0)
    for z, d_l, bands in [(0.0, TEN_PC_MPC, ("F606W",)), (0.7, 4300.0, HST_BANDS), (1.5, 11000.0, HST_BANDS)]:
        flux = band_fluxes_jy(mags, redshift=z, luminosity_distance_mpc=d_l, bands=bands)
        expected = (1 + z) * (TEN_PC_MPC / d_l) ** 2 * 3631.0 * 10 ** (0.4 * 20.0)
        np.testing.assert_allclose(flux[0], expected, rtol=1e-10)
    near = band_fluxes_jy(mags, redshift=0.5, luminosity_distance_mpc=1000.0)
    far = band_fluxes_jy(mags, redshift=0.5, luminosity_distance_mpc=2000.0)
    np.testing.assert_allclose(near / far, 4.0, rtol=1e-12)


def test_power_law_sed_redshift() -> None:
    """f_ν ∝ λ^α: the band flux equals the direct integral (1+z)(10pc/D)² ∫ f_ν(λ/(1+z)) T dλ/λ / ∫ T dλ/λ
    (z = 0.7 puts every band inside the power-law part of the SED; F606W blueward of U is extrapolated
    with the same slope)."""
    alpha, lam0, m0, z, d_l = 1.5, 5500.0, -21.0, 0.7, 4300.0
    knots = rest_frame_knots_aa()
    mags = (m0 - 2.5 * alpha * np.log10(knots / lam0))[None, :]
    flux = band_fluxes_jy(mags, redshift=z, luminosity_distance_mpc=d_l, n_wavelengths=256)[0]
    for b, band in enumerate(HST_BANDS):
        pb = passband(band)
        lam, t = pb.wavelength_aa, pb.transmission
        fnu = 3631.0 * 10 ** (-0.4 * m0) * (lam / (1 + z) / lam0) ** alpha
        direct = (
            (1 + z) * (TEN_PC_MPC / d_l) ** 2 * np.trapezoid(fnu * t / lam, lam) / np.trapezoid(t / lam, lam)
        )
        assert flux[b] == pytest.approx(direct, rel=2e-3)


def test_ssp_old_populations_are_redder() -> None:
    """BC03 table: observed F606W−F814W and F814W−F125W redden with age and metallicity (z = 0.3); a 10-Gyr
    solar population has B−V ≈ 0.95 (Vega), the colour of cluster ellipticals."""
    ages = np.array([0.1, 1.0, 10.0])
    mags = ssp_magnitudes(np.full(3, 1e10), ages, np.full(3, 0.02))
    flux = band_fluxes_jy(tng_magnitudes_to_ab(mags), redshift=0.3, luminosity_distance_mpc=1570.0)
    m = jy_to_abmag(flux)
    v_i, i_j = m[:, 1] - m[:, 2], m[:, 2] - m[:, 0]
    assert np.all(np.diff(v_i) > 0.1)
    assert np.all(np.diff(i_j) > 0.05)
    assert mags[2, 1] - mags[2, 2] == pytest.approx(0.95, abs=0.1)
    rich, poor = ssp_magnitudes(np.full(2, 1e10), np.full(2, 10.0), np.array([0.04, 0.004]))
    assert rich[1] - rich[2] > poor[1] - poor[2]
    assert np.all(ssp_magnitudes(np.array([2e10]), np.array([5.0]), np.array([0.02])) < mags[2] + 0.1)


def test_ssp_colours_match_tng_like_stars() -> None:
    """For TNG-like stars (the synthetic generator's magnitudes; 2–12 Gyr, 0.5–2 Z_sun) the BC03 table's
    optical colours agree within 0.25 mag, V−K within 0.5 mag and magnitudes within 0.65 mag (the toy model
    is a power-law fit to old-elliptical colours, not an SPS; measured medians: colours ≤ 0.07, V−K 0.22)."""
    from darkclusters.simulations.synthetic.stellar_pop import Z_SUN, mass_loss_fraction, toy_magnitudes

    age, z = (a.ravel() for a in np.meshgrid([2.0, 3.0, 5.0, 8.0, 10.0, 12.0], Z_SUN * np.array([0.5, 1, 2])))
    initial = np.full(age.shape, 1e9)
    toy = toy_magnitudes(initial, age, z).astype(np.float64)
    ours = ssp_magnitudes(initial * (1 - mass_loss_fraction(age)), age, z)
    for i, j, tol in [(0, 1, 0.25), (1, 2, 0.25), (4, 5, 0.25), (5, 6, 0.25), (6, 7, 0.25), (2, 3, 0.5)]:
        diff = (ours[:, i] - ours[:, j]) - (toy[:, i] - toy[:, j])
        assert np.abs(diff).max() < tol, (REST_BANDS[i], REST_BANDS[j], diff)
    assert np.abs(ours - toy).max() < 0.65


def test_point_source_lands_in_expected_pixel() -> None:
    """View +z keeps (x, y): a star at x = +30″, y = −12″ lands in column ⌊30/p + W/2⌋ (right of centre) and
    row ⌊−12/p + H/2⌋ (below centre, rows grow with y)."""
    geometry = MapGeometry(fov_arcsec=100.0, npix=50, kpc_per_arcsec=4.0)  # 2″ pixels
    sky = sky_coordinates(np.array([[30.0 * 4.0, -12.0 * 4.0, 50.0]]), np.array([0.0, 0.0, 1.0]))
    image, variance = bin_to_pixels(sky[:, 0] / 4.0, sky[:, 1] / 4.0, np.array([[1.0, 2.0, 3.0]]), geometry)
    for b, f in enumerate((1.0, 2.0, 3.0)):
        assert image[b, 19, 40] == f
        assert image[b].sum() == f
        assert variance[b, 19, 40] == f * f
    cfg = photometry_config(QUIET)
    views, _ = observe_view(
        np.array([30.0]), np.array([-12.0]), np.ones((1, 3)), geometry=geometry, cfg=cfg, rng=derive_rng(0)
    )
    assert np.unravel_index(np.argmax(views[2]), views[2].shape) == (19, 40)


@pytest.mark.parametrize("profile", ["gaussian", "moffat"])
def test_psf_conserves_flux(profile: str) -> None:
    """Unit-sum kernel; a centred point source keeps its flux; the Gaussian's width is the configured FWHM."""
    kernel = psf_kernel(0.6, 0.1, profile=profile)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert kernel.shape[0] % 2 == 1
    image = np.zeros((3, 101, 101))
    image[:, 50, 50] = [1.0, 2.0, 5.0]
    out = convolve_psf(image, kernel)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), [1.0, 2.0, 5.0], rtol=1e-10)
    assert np.unravel_index(np.argmax(out[0]), out[0].shape) == (50, 50)
    if profile == "gaussian":
        r = (np.arange(kernel.shape[0]) - kernel.shape[0] // 2) * 0.1
        var_x = (kernel.sum(axis=0) * r**2).sum() - 0.1**2 / 12  # minus the pixel's own variance
        assert np.sqrt(var_x) * 2 * np.sqrt(2 * np.log(2)) == pytest.approx(0.6, rel=0.02)
    assert psf_kernel(0.1, 2.0).sum() == pytest.approx(1.0)  # a PSF far below a pixel still sums to one


def test_noise_has_configured_depth() -> None:
    """A blank image's std per band equals σ_pix = 3631 Jy 10^(−0.4 m)/5 · p/√(π 0.2²) (5σ in 0.4″)."""
    cfg = photometry_config({"icl": {"enabled": False}, "background": {"source": "none"}})
    geometry = MapGeometry(fov_arcsec=128.0, npix=128, kpc_per_arcsec=5.0)
    images, _ = observe_view(
        np.zeros(0), np.zeros(0), np.zeros((0, 3)), geometry=geometry, cfg=cfg, rng=derive_rng(3)
    )
    for b, band in enumerate(HST_BANDS):
        depth = cfg["noise"]["depth_abmag"][band]
        expected = 3631.0 * 10 ** (-0.4 * depth) / 5.0 * 1.0 / np.sqrt(np.pi * 0.2**2)
        assert noise_sigma_jy(depth, 1.0) == pytest.approx(expected, rel=1e-12)
        assert images[b].std() == pytest.approx(expected, rel=0.03)
        assert abs(images[b].mean()) < 4 * expected / 128


def _cluster(*, tng: bool, n_stars: int = 1500, seed: int = 0) -> ParticleSet:
    """A small toy cluster: Plummer-like stars around a central concentration, DM halo, TNG or SIMBA style."""
    rng = np.random.default_rng(seed)
    r = 60.0 / np.sqrt(rng.uniform(0.02, 1.0, n_stars) ** (-2.0 / 3.0) - 1.0)
    direction = rng.normal(size=(n_stars, 3))
    pos = direction / np.linalg.norm(direction, axis=1, keepdims=True) * r[:, None]
    mass = np.full(n_stars, 1e9)
    age = rng.uniform(1.0, 11.0, n_stars)
    z = rng.uniform(0.008, 0.03, n_stars)
    fields = {"age_gyr": age, "metallicity": z, "formation_scale_factor": np.full(n_stars, 0.3)}
    if tng:
        fields["photometrics_mag"] = ssp_magnitudes(mass, age, z).astype(np.float32)
        fields["initial_mass_msun"] = mass / 0.6
    dm = Species(rng.normal(0.0, 300.0, (4000, 3)), np.full(4000, 1e11))
    attrs = {"format": "tng" if tng else "simba", "redshift": 0.3, "hubble_h": 0.6774, "omega_m": 0.3089,
             "omega_b": 0.0486, "sim": "toy", "snapshot": 1, "halo_id": 0}  # fmt: skip
    return ParticleSet(Species.empty(), dm, Species(pos, mass, fields), Species.empty(), attrs)


@pytest.fixture
def particle_files(tmp_path):
    paths = {}
    for name, tng in (("tng", True), ("simba", False)):
        paths[name] = tmp_path / f"{name}.h5"
        write_particles(_cluster(tng=tng), paths[name], provenance={"test": "photometry"})
    return paths


def test_observe_file_layout_and_seeds(particle_files, tmp_path) -> None:
    """Output layout, units and attributes; the same seed gives identical images, another seed differs."""
    directions = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    fovs = {"narrow": {"fov_arcsec": 60.0, "npix": 32}, "wide": {"fov_arcsec": 120.0, "npix": 48}}
    outs = [tmp_path / f"out{i}.h5" for i in range(3)]
    for out, seed in zip(outs, (5, 5, 6), strict=True):
        observe_photometry_file(
            particle_files["tng"],
            out,
            directions=directions,
            fields_of_view=fovs,
            photometry_cfg={},
            seed=seed,
        )
    with h5py.File(outs[0]) as f0, h5py.File(outs[1]) as f1, h5py.File(outs[2]) as f2:
        assert f0.attrs["magnitude_source"] == "snapshot"
        assert f0.attrs["seed"] == "5"
        np.testing.assert_array_equal(f0["directions"][()], directions)
        for name, fov in fovs.items():
            ds = f0[f"photometry/{name}/images"]
            assert ds.shape == (2, 3, fov["npix"], fov["npix"])
            assert ds.dtype == np.float32
            assert [b.decode() if isinstance(b, bytes) else b for b in ds.attrs["bands"]] == list(HST_BANDS)
            assert ds.attrs["dims"] == "view,band,y,x"
            assert "Jy" in ds.attrs["units"]
            assert len(ds.attrs["pivot_wavelength_aa"]) == 3
            assert np.all(ds.attrs["noise_sigma_jy"] > 0)
            assert f0[f"photometry/{name}"].attrs["pixel_arcsec"] == pytest.approx(
                fov["fov_arcsec"] / fov["npix"]
            )
            np.testing.assert_array_equal(ds[()], f1[f"photometry/{name}/images"][()])
            assert not np.array_equal(ds[()], f2[f"photometry/{name}/images"][()])
            assert f0[f"photometry/{name}/icl_shapes"].shape == (2, 2, 6)
            assert np.all(np.isfinite(ds[()]))


def test_simba_stars_use_ssp_model(particle_files, tmp_path) -> None:
    """SIMBA particles (no photometry) go through the SSP table; the same stars as TNG give the same light."""
    out = {}
    for name in ("tng", "simba"):
        out[name] = tmp_path / f"img_{name}.h5"
        observe_photometry_file(
            particle_files[name],
            out[name],
            directions=np.array([[0.0, 0.0, 1.0]]),
            fields_of_view={"f": {"fov_arcsec": 60.0, "npix": 32}},
            photometry_cfg=QUIET,
            seed=1,
        )
    with h5py.File(out["tng"]) as ft, h5py.File(out["simba"]) as fs:
        assert fs.attrs["magnitude_source"] == "ssp_model"
        simba, tng = fs["photometry/f/images"][()], ft["photometry/f/images"][()]
        np.testing.assert_allclose(simba, tng, rtol=1e-5, atol=1e-9 * tng.max())  # FFT round-off near 0


def test_bad_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"photometry\.psf\.fwhm_arcsec\.F814W"):
        photometry_config({"psf": {"fwhm_arcsec": {"F814W": -1.0}}})
    with pytest.raises(ConfigError, match=r"photometry\.noise"):
        photometry_config({"noise": {"depth_mag": 27.0}})
    with pytest.raises(ConfigError, match=r"photometry\.background\.synthetic\.mag_min_f814w"):
        photometry_config({"background": {"synthetic": {"mag_min_f814w": 29.0}}})
    with pytest.raises(ConfigError, match=r"photometry\.background\.fits_paths\.F125W"):
        photometry_config({"background": {"source": "fits"}})
    with pytest.raises(ConfigError, match=r"photometry\.dust\.tau_v_ism"):
        load_config(
            ROOT / "config" / "config.yaml", overrides={"photometry": {"dust": {"tau_v_ism": "a lot"}}}
        )
    assert photometry_config(None)["psf"]["fwhm_arcsec"]["F814W"] == pytest.approx(0.10)


def test_light_traces_mass_pcc() -> None:
    rng = np.random.default_rng(2)
    sigma = np.exp(rng.normal(size=(32, 32)))
    assert light_traces_mass_pcc(sigma, 3.0 * sigma) == pytest.approx(1.0)
    assert light_traces_mass_pcc(sigma, -sigma, scale="linear") == pytest.approx(-1.0)
    log_a, log_b = np.log10(sigma), rng.normal(size=(32, 32))
    expected = np.corrcoef(log_a.ravel(), log_b.ravel())[0, 1]
    assert light_traces_mass_pcc(sigma, 10.0**log_b, dynamic_range=1e30) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one shape"):
        light_traces_mass_pcc(sigma, sigma[:-1])


def test_schema_documents_every_key() -> None:
    """Every key of the photometry schema has a type (or enum), a description and a default; every object
    rejects unknown keys; every number has a range."""
    import yaml

    schema = yaml.safe_load((ROOT / "src/darkclusters/schemas/photometry.schema.yaml").read_text())

    def walk(node: dict, path: str) -> None:
        assert node.get("additionalProperties") is False, path
        for key, sub in node["properties"].items():
            where = f"{path}.{key}"
            assert "description" in sub, where
            assert "default" in sub, where
            assert "type" in sub or "enum" in sub, where
            types = sub.get("type", [])
            if "number" in types or "integer" in types:
                assert {"minimum", "exclusiveMinimum"} & set(sub), where
                assert {"maximum", "exclusiveMaximum"} & set(sub), where
            if sub.get("type") == "object":
                assert sub["default"] == {}, where
                walk(sub, where)

    walk(schema, "photometry")


def test_no_stars_gives_sky_only(tmp_path) -> None:
    """A cluster without stars yields noise-only images and no ICL (NaN shapes), not an error."""
    cluster = _cluster(tng=True)
    empty = ParticleSet(cluster.gas, cluster.dm, Species.empty(), cluster.bh, cluster.attrs)
    write_particles(empty, tmp_path / "empty.h5", provenance={})
    observe_photometry_file(
        tmp_path / "empty.h5",
        tmp_path / "out.h5",
        directions=np.array([[0.0, 0.0, 1.0]]),
        fields_of_view={"f": {"fov_arcsec": 60.0, "npix": 16}},
        photometry_cfg={"background": {"source": "none"}},
        seed=0,
    )
    with h5py.File(tmp_path / "out.h5") as f:
        images = f["photometry/f/images"][()]
        assert np.all(np.isnan(f["photometry/f/icl_shapes"][()]))
        assert images.std() > 0
        assert abs(images.mean()) < 4 * images.std() / 16


def test_map_grids_reads_the_truth_maps_layout(tmp_path) -> None:
    """Directions and fields of view come from /directions and the groups with fov_arcsec and npix."""
    with h5py.File(tmp_path / "maps.h5", "w") as f:
        f["directions"] = np.eye(3)
        for name, fov, npix in (("a", 100.0, 64), ("b", 225.0, 128)):
            g = f.create_group(name)
            g.attrs["fov_arcsec"], g.attrs["npix"] = fov, npix
        f.create_group("other")
    directions, fovs = map_grids(tmp_path / "maps.h5")
    np.testing.assert_array_equal(directions, np.eye(3))
    assert fovs == {"a": {"fov_arcsec": 100.0, "npix": 64}, "b": {"fov_arcsec": 225.0, "npix": 128}}
