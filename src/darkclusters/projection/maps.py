"""Truth maps of one cluster: Σ per species, stellar mass, tSZ Compton-y and X-ray, for every view and FOV.

For each viewing direction the particles are rotated once (the frame of :mod:`.geometry`) and projected
along the whole extraction (no depth cut); every field of view reuses that projection (and, for ``knn``, its
2-D index). Per particle the deposited weights are its mass (in its species' channel), its tSZ weight
σ_T N_e k_B T/(m_e c²) and its bolometric X-ray luminosity (hot, non-star-forming gas; :mod:`.thermal`), so
the tSZ and X-ray maps share the gas Σ's estimator:

* ``knn`` (:mod:`.knn`): the total is the box kernel over the k nearest particles of all matter, as in
  DarkClusters-15k; each species channel uses the k nearest particles *of that species* (the paper does not
  say how its separated components were made; sharing the all-matter neighbours would leave a minor
  species with a handful of particles per disc, i.e. Poisson holes in gas, tSZ and X-ray at DM subhalos).
  The channels therefore add up to the total only on average (gather estimators do not conserve mass).
* ``sph`` (:mod:`.deposit`): per-particle kernels; mass-conserving, total = sum of the species exactly.

Outputs per field of view (float32, ``[row = y, col = x]``, map centre = cluster centre, :mod:`.geometry`):

* ``sigma`` (V, 5, H, W): channels total, dm, gas, stars, bh [Msun kpc⁻², physical].
  DarkClusters-15k quotes h Msun ckpc⁻² (TNG code units (10¹⁰ Msun/h)/(ckpc/h)² up to 10¹⁰):
  Σ[h Msun ckpc⁻²] = Σ[Msun kpc⁻²] · a²/h, stored as the attribute ``to_h_msun_per_ckpc2``.
* ``stellar_mass`` (V, H, W) [Msun per pixel]: the stellar-mass map that seed 003 conditions on (stellar mass
  per pixel), by default binned to the nearest pixel like the photometry (seed 000 App. A), so light and
  stellar mass share pixels; ``stellar_mass_map: smoothed`` gives the ``stars`` channel × pixel area.
* ``tsz_y`` (V, H, W): pixel-averaged Compton-y = σ_T/(m_e c²) ∫ n_e k_B T dl (seed 002 eq. 4).
* ``xray_sb`` (V, H, W): observed bolometric surface brightness S_X = Σ_pixel L / (4π D_L²) / Ω_pixel
  [erg s⁻¹ cm⁻² arcsec⁻²] (cosmological dimming included). Seed 002's ∫ ε dl [erg s⁻¹ cm⁻²] (eq. 7) is
  S_X · 4π (1 + z)⁴ · (206264.8″)², stored as the attribute ``to_emissivity_integral_erg_s_cm2``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import h5py
import numpy as np

from darkclusters.cosmology import flat_lcdm
from darkclusters.io import atomic_path, provenance, write_hdf5_attrs
from darkclusters.projection import splat_kernels, thermal
from darkclusters.projection.deposit import density_support_radius, neighbour_support_radius, sph_splat
from darkclusters.projection.geometry import ARCSEC_PER_RAD, kpc_per_arcsec, rotation_to_z
from darkclusters.projection.knn import Workspace, build_tree, knn_surface_density
from darkclusters.projection.neighbours import morton_order
from darkclusters.projection.settings import (
    FieldOfView,
    check_projection_config,
    fields_of_view,
    view_directions,
)
from darkclusters.simulations.particles import ParticleSet, read_particles

__all__ = ["CHANNELS", "ClusterMaps", "project_cluster_file", "project_particles"]

CHANNELS = ("total", "dm", "gas", "stars", "bh")
_SPECIES_ROW = {"dm": 0, "gas": 1, "stars": 2, "bh": 3}  # rows 0-3: mass per species; 4 tSZ, 5 X-ray, 6 total
_TSZ, _XRAY, _TOTAL = 4, 5, 6
_THREADS = 2  # SPH splats run side by side (the workflow's rules get 2 cores)
_KNN_MARGIN = 0.25  # kNN index: cells fine over (1 + margin) × the largest half-FOV (all particles count)
_COPIED_ATTRS = ("sim", "format", "snapshot", "halo_id", "cluster_id", "split", "redshift", "scale_factor",
                 "hubble_h", "omega_m", "omega_b", "m200c_msun", "r200c_kpc", "radius_kpc")  # fmt: skip


@dataclass
class ClusterMaps:
    """All maps of one cluster: directions (V, 3) and, per field of view, its grid and arrays (module doc)."""

    directions: np.ndarray
    fovs: list[FieldOfView]
    maps: dict[str, dict[str, np.ndarray]]
    attrs: dict[str, Any]


@dataclass
class _Prepared:
    """All species concatenated: positions (N, 3) [kpc], species row (N,), weights of gas, supports."""

    pos: np.ndarray
    row: np.ndarray
    mass: np.ndarray
    gas_tsz: np.ndarray  # (N,) zero for non-gas
    gas_xray: np.ndarray  # (N,) [erg s⁻¹], zero for non-gas and cold/star-forming gas
    support_kpc: np.ndarray | None  # (N,) SPH support radius, method sph only
    _groups: list | None = None
    _knn_workspace: Workspace | None = None  # the kNN index's arrays, reused over the views (_knn_view)

    def species_groups(self) -> list[tuple[slice, list[int], np.ndarray]]:
        """Per species with particles (contiguous in ``pos``): (slice, weight rows, weights (rows, M))."""
        if self._groups is None:
            self._groups = []
            for row in range(4):
                index = np.flatnonzero(self.row == row)
                if len(index):
                    span = slice(int(index[0]), int(index[-1]) + 1)
                    rows = [row, _TSZ, _XRAY] if row == _SPECIES_ROW["gas"] else [row]
                    self._groups.append((span, rows, self.dense_weights(index)[rows]))
        return self._groups

    def dense_weights(self, index: np.ndarray) -> np.ndarray:
        """(6, M) weights of the particles ``index``: masses by species row, tSZ, X-ray."""
        w = np.zeros((6, len(index)))
        w[self.row[index], np.arange(len(index))] = self.mass[index]
        w[_TSZ], w[_XRAY] = self.gas_tsz[index], self.gas_xray[index]
        return w


def _supports(particles: ParticleSet, cfg: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """SPH support radius [kpc] per species (settings: ``sph_neighbours``, ``sph_gas_support``)."""
    n = int(cfg["sph_neighbours"])
    sp = particles.species()
    everything = np.concatenate([s.pos_kpc for s in sp.values()])
    out = {}
    for name, s in sp.items():
        if len(s) == 0:
            out[name] = np.zeros(0)
        elif name == "gas" and cfg["sph_gas_support"] == "density":
            if "density_msun_kpc3" not in s.fields:
                raise KeyError("gas has no density_msun_kpc3 field (needed by sph_gas_support: density)")
            out[name] = density_support_radius(s.mass_msun, s.fields["density_msun_kpc3"], n)
        elif name != "bh" and len(s) > n:
            out[name] = neighbour_support_radius(s.pos_kpc, n)
        else:  # black holes (and species too sparse to smooth among themselves): among the dark matter
            ref = sp["dm"].pos_kpc if len(sp["dm"]) >= n else everything
            out[name] = neighbour_support_radius(ref, n, query_kpc=s.pos_kpc)
    return out


def _prepare(particles: ParticleSet, cfg: Mapping[str, Any]) -> _Prepared:
    gas = particles.gas
    tsz = np.zeros(len(gas))
    xray = np.zeros(len(gas))
    if len(gas):
        for key in ("internal_energy_km2_s2", "electron_abundance", "density_msun_kpc3"):
            if key not in gas.fields:
                raise KeyError(f"gas has no {key} field (needed for the tSZ and X-ray maps)")
        u, x_e = gas.fields["internal_energy_km2_s2"], gas.fields["electron_abundance"]
        tsz = thermal.tsz_weight_kpc2(gas.mass_msun, u, x_e)
        xcfg = cfg["xray"]
        hot = thermal.hot_gas_mask(
            thermal.gas_temperature_k(u, x_e),
            gas.fields.get("star_formation_rate_msun_yr"),
            t_min_kev=xcfg["t_min_kev"],
            exclude_star_forming=xcfg["exclude_star_forming"],
        )
        lum = thermal.bremsstrahlung_luminosity_erg_s(
            gas.mass_msun, gas.fields["density_msun_kpc3"], u, x_e, gaunt_factor=xcfg["gaunt_factor"]
        )
        xray = np.where(hot, lum, 0.0)
    species = particles.species()
    zeros = {name: np.zeros(len(s)) for name, s in species.items()}
    supports = _supports(particles, cfg) if cfg["method"] == "sph" else None
    # sph: each species in 3-D Morton order, so that its particles are close on the sky in every view and
    # the splat's scattered additions hit nearby grid cells (≈ 20 % faster at 1e7 particles); sums over
    # particles then run in another order (rounding only). kNN keeps the file order (its index sorts anyway).
    order, start = [], 0
    for s in species.values():
        sort = supports is not None and len(s) > 1
        order.append(start + (morton_order(s.pos_kpc) if sort else np.arange(len(s))))
        start += len(s)
    order = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    return _Prepared(
        pos=np.concatenate([s.pos_kpc for s in species.values()])[order],
        row=np.concatenate([np.full(len(s), _SPECIES_ROW[name]) for name, s in species.items()])[order],
        mass=np.concatenate([s.mass_msun for s in species.values()])[order],
        gas_tsz=np.concatenate([tsz if name == "gas" else zeros[name] for name in species])[order],
        gas_xray=np.concatenate([xray if name == "gas" else zeros[name] for name in species])[order],
        support_kpc=None if supports is None else np.concatenate([supports[name] for name in species])[order],
    )


def _knn_view(prep: _Prepared, xy: np.ndarray, fovs: list[FieldOfView], cfg: Mapping[str, Any]) -> list:
    """Σ of the 7 rows (species, tSZ, X-ray, total) per field of view [weight kpc⁻²], kNN box kernel.

    The total uses the k nearest particles of all matter (DarkClusters-15k); each species channel the k
    nearest of that species, and tSZ and X-ray the gas channel's neighbours. One index of all particles per
    view (:func:`.knn.build_tree`, cells fine over the largest field of view plus a margin), and per species
    its subset (species are contiguous in ``xy``). Every particle is in the index (those beyond the margin in
    its open border cells), so the maps are exact without any redo. The index and subset arrays are reused
    from the previous view (``prep._knn_workspace``: no fresh pages to zero per view).
    """
    k = int(cfg["knn_k"])
    half_fov = max(f.geometry.fov_kpc for f in fovs) / 2.0
    if prep._knn_workspace is None:
        prep._knn_workspace = Workspace()
    workspace = prep._knn_workspace
    # the weights travel with the index in its cell order: mass for every group, tSZ and X-ray for gas
    payload = np.stack([prep.mass, prep.gas_tsz, prep.gas_xray])
    everything = build_tree(xy, half_kpc=(1.0 + _KNN_MARGIN) * half_fov, weights=payload, workspace=workspace)
    groups = [(slice(0, len(xy)), [_TOTAL]), *((span, rows) for span, rows, _ in prep.species_groups())]
    results = [np.zeros((7, f.geometry.npix, f.geometry.npix)) for f in fovs]
    for span, rows in groups:
        if span.start == 0 and span.stop == len(xy):  # the total (or the only species): the masses
            index = replace(everything, weights=everything.weights[: len(rows)])
        else:
            index = everything.subset(span.start, span.stop, n_weights=len(rows), workspace=workspace)
        for fov, out in zip(fovs, results, strict=True):
            g = fov.geometry
            out[rows], _ = knn_surface_density(
                index, None, npix=g.npix, pixel_kpc=g.pixel_kpc, k=k,
                interpolation_ratio=cfg["knn_interpolation_ratio"],
            )  # fmt: skip
    return results


def _sph_view(prep: _Prepared, xy: np.ndarray, fovs: list[FieldOfView], cfg: Mapping[str, Any]) -> list:
    """Σ of the 7 rows (species, tSZ, X-ray, total) per field of view [weight kpc⁻²], SPH splat per species.

    The (field of view, species) splats are independent; two threads run them (numpy and scipy.fft release
    the GIL), and the results are summed in a fixed order, so the maps do not depend on the scheduling.
    """

    def splat(task: tuple[FieldOfView, tuple[slice, list[int], np.ndarray]]) -> np.ndarray:
        fov, (span, _, weights) = task
        p = fov.geometry.pixel_kpc
        return sph_splat(
            xy[span, 0] / p, xy[span, 1] / p, prep.support_kpc[span] / p, weights,
            npix=fov.geometry.npix, kernel=cfg["sph_kernel"],
        )  # fmt: skip

    tasks = [(fov, group) for fov in fovs for group in prep.species_groups()]
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        parts = list(pool.map(splat, tasks))
    results = {fov.name: np.zeros((7, fov.geometry.npix, fov.geometry.npix)) for fov in fovs}
    for (fov, (_, rows, _)), part in zip(tasks, parts, strict=True):
        results[fov.name][rows] += part
    for out in results.values():
        out[_TOTAL] = out[:4].sum(axis=0)  # mass-conserving splats add up exactly
    return [results[fov.name] / fov.geometry.pixel_area_kpc2 for fov in fovs]


def _sky_xy(pos: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Sky (x, y) [kpc] of positions (N, 3) for a view: the first two rows of :func:`.geometry.rotation_to_z`
    (the same frame as :func:`.geometry.sky_coordinates`, without computing the depth)."""
    return splat_kernels.rotate_xy(np.ascontiguousarray(pos, dtype=np.float64), rotation_to_z(direction)[:2])


def _stellar_ngp(xy: np.ndarray, mass: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """Star masses binned to the pixel containing them [Msun per pixel], (H, W)."""
    g = fov.geometry
    row, col, inside = g.pixel_index(xy[:, 0] / g.kpc_per_arcsec, xy[:, 1] / g.kpc_per_arcsec)
    flat = np.bincount(row[inside] * g.npix + col[inside], weights=mass[inside], minlength=g.npix**2)
    return flat.reshape(g.npix, g.npix)


def project_particles(particles: ParticleSet, projection_cfg: Mapping[str, Any]) -> ClusterMaps:
    """Project one cluster along every configured view into every field of view (module docstring).

    particles: a :class:`ParticleSet` (physical kpc, Msun) with attrs redshift, hubble_h, omega_m (omega_b
    optional). projection_cfg: the validated ``projection`` section (:func:`.settings.projection_config`).
    Deterministic: no random numbers; the kNN search and bincount give the same result for the same input.
    """
    cfg = projection_cfg
    check_projection_config(cfg)
    z = float(particles.attrs["redshift"])
    h = float(particles.attrs["hubble_h"])
    # omega_b only enters the baryon density, not distances (0 when the file lacks it)
    cosmo = flat_lcdm(h, float(particles.attrs["omega_m"]), float(particles.attrs.get("omega_b", 0.0)))
    scale = kpc_per_arcsec(cosmo, z)
    d_l_cm = float(cosmo.luminosity_distance(z).to_value("cm"))
    a = float(particles.attrs.get("scale_factor", 1.0 / (1.0 + z)))
    fovs = fields_of_view(cfg, scale)
    directions = view_directions(cfg)
    prep = _prepare(particles, cfg)
    stars = particles.stars
    n_v = len(directions)
    maps = {
        f.name: {
            "sigma": np.zeros((n_v, len(CHANNELS), f.geometry.npix, f.geometry.npix), np.float32),
            "stellar_mass": np.zeros((n_v, f.geometry.npix, f.geometry.npix), np.float32),
            "tsz_y": np.zeros((n_v, f.geometry.npix, f.geometry.npix), np.float32),
            "xray_sb": np.zeros((n_v, f.geometry.npix, f.geometry.npix), np.float32),
        }
        for f in fovs
    }
    # erg s⁻¹ kpc⁻² of the sky plane → erg s⁻¹ cm⁻² arcsec⁻² at the observer: × (kpc/″)² / (4π D_L²)
    xray_factor = scale**2 / (4.0 * np.pi * d_l_cm**2)
    view = _knn_view if cfg["method"] == "knn" else _sph_view
    for v, direction in enumerate(directions):
        xy = _sky_xy(prep.pos, direction)
        star_xy = _sky_xy(stars.pos_kpc, direction)
        for fov, rows in zip(fovs, view(prep, xy, fovs, cfg), strict=True):
            m = maps[fov.name]
            m["sigma"][v, 1:] = rows[:4]
            m["sigma"][v, 0] = rows[_TOTAL]
            m["tsz_y"][v] = rows[_TSZ]
            m["xray_sb"][v] = rows[_XRAY] * xray_factor
            if cfg["stellar_mass_map"] == "nearest_pixel":
                m["stellar_mass"][v] = _stellar_ngp(star_xy, stars.mass_msun, fov)
            else:
                m["stellar_mass"][v] = rows[_SPECIES_ROW["stars"]] * fov.geometry.pixel_area_kpc2
    attrs = {k: particles.attrs[k] for k in _COPIED_ATTRS if k in particles.attrs}
    attrs.update(
        {
            "kpc_per_arcsec": scale,
            "angular_diameter_distance_mpc": float(cosmo.angular_diameter_distance(z).to_value("Mpc")),
            "luminosity_distance_mpc": d_l_cm / 3.0856775814913673e24,
            "to_h_msun_per_ckpc2": a**2 / h,
            "to_emissivity_integral_erg_s_cm2": 4.0 * np.pi * (1.0 + z) ** 4 * ARCSEC_PER_RAD**2,
        }
    )
    return ClusterMaps(directions, fovs, maps, attrs)


_DATASET_ATTRS = {
    "sigma": {
        "units": "Msun kpc^-2 (physical)",
        "dims": "view,channel,y,x",
        "description": "surface mass density: total (all matter) and per species (see the method attributes)",
    },
    "stellar_mass": {"units": "Msun per pixel", "dims": "view,y,x", "description": "stellar mass per pixel"},
    "tsz_y": {
        "units": "dimensionless",
        "dims": "view,y,x",
        "description": "pixel-averaged thermal SZ Compton-y = sigma_T/(m_e c^2) * integral of n_e k_B T dl",
    },
    "xray_sb": {
        "units": "erg s^-1 cm^-2 arcsec^-2",
        "dims": "view,y,x",
        "description": "observed bolometric free-free surface brightness of hot gas: L / (4 pi D_L^2) / area",
    },
}


def _write_maps(result: ClusterMaps, out_path: str | os.PathLike, cfg: Mapping[str, Any], prov: dict) -> None:
    method = {"method": cfg["method"]}
    if cfg["method"] == "knn":
        ratio = cfg["knn_interpolation_ratio"]
        method.update(knn_k=int(cfg["knn_k"]), knn_interpolation_ratio="none" if ratio is None else ratio)
    else:
        method.update(sph_neighbours=int(cfg["sph_neighbours"]), sph_kernel=cfg["sph_kernel"])
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        write_hdf5_attrs(f, {k: v for k, v in result.attrs.items() if not k.startswith("to_")})
        f.attrs["conventions"] = (
            "maps (..., H, W) indexed [row=y, col=x], x right, y up (origin='lower'); pixel (i, j) centre at "
            "((j + 1/2 - W/2) p, (i + 1/2 - H/2) p) from the cluster centre; views: unit vectors from the "
            "cluster to the observer, sky axes e_x, e_y with e_x x e_y = n (darkclusters.projection.geometry)"
        )
        write_hdf5_attrs(f, prov)
        d = f.create_dataset("directions", data=result.directions.astype(np.float64), track_times=False)
        d.attrs["units"] = "unit vector from the cluster towards the observer (simulation box axes)"
        d.attrs["dims"] = "view,xyz"
        for fov in result.fovs:
            g = fov.geometry
            grp = f.create_group(fov.name, track_order=True)
            write_hdf5_attrs(grp, {
                "fov_arcsec": g.fov_arcsec, "fov_kpc": g.fov_kpc, "npix": g.npix,
                "pixel_arcsec": g.pixel_arcsec, "pixel_kpc": g.pixel_kpc, "given_in": fov.given_in, **method,
            })  # fmt: skip
            for key, data in result.maps[fov.name].items():
                ds = grp.create_dataset(
                    key, data=data, chunks=(1, *data.shape[1:]), compression="gzip", compression_opts=1,
                    shuffle=True, track_times=False,
                )  # fmt: skip
                write_hdf5_attrs(ds, _DATASET_ATTRS[key])
            grp["sigma"].attrs["channels"] = np.array(CHANNELS, dtype=h5py.string_dtype())
            grp["sigma"].attrs["to_h_msun_per_ckpc2"] = result.attrs["to_h_msun_per_ckpc2"]
            grp["sigma"].attrs["to_h_msun_per_ckpc2_note"] = (
                "multiply by a^2/h for DarkClusters-15k units h Msun / ckpc^2 (TNG code units x 1e10)"
            )
            grp["xray_sb"].attrs["to_emissivity_integral_erg_s_cm2"] = result.attrs[
                "to_emissivity_integral_erg_s_cm2"
            ]
            write_hdf5_attrs(grp["xray_sb"], {f"xray_{k}": v for k, v in cfg["xray"].items()})
            grp["stellar_mass"].attrs["binning"] = cfg["stellar_mass_map"]


def project_cluster_file(
    particles_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    projection_cfg: Mapping[str, Any],
    seed: int | None = None,
) -> None:
    """Project a particle file (``results/particles/...``) and write ``results/maps/{sim}/{snap}/{halo}.h5``.

    Layout: root attrs (cluster ids and cosmology copied from the particle file, kpc_per_arcsec, distances,
    conventions, provenance); ``/directions`` (V, 3); per field of view a group ``/{name}`` (attrs fov_arcsec,
    fov_kpc, npix, pixel_arcsec, pixel_kpc, method) with ``sigma`` (V, 5, H, W), ``stellar_mass``, ``tsz_y``,
    ``xray_sb`` (V, H, W), float32, each with units and dims attributes. Written atomically; no timestamps,
    so the same inputs give a byte-identical file. ``seed`` is recorded (projection draws no random numbers).
    """
    check_projection_config(projection_cfg)
    particles = read_particles(particles_path)
    result = project_particles(particles, projection_cfg)
    prov = provenance(cfg=projection_cfg, seed=seed, inputs=[particles_path])
    _write_maps(result, out_path, projection_cfg, prov)
