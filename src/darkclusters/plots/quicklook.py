"""Quick-look PNGs of one cluster: truth maps (Σ, tSZ, X-ray) and observations (HST composite, lensing).

Every panel is drawn in the map convention of :mod:`darkclusters.projection.geometry` (``origin="lower"``:
x right, y up) with axes in arcsec from the cluster centre. The PNG is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from darkclusters.io import atomic_path

__all__ = ["asinh_rgb", "quicklook_maps", "quicklook_observations"]

MAX_VIEWS = 4


def _extent(half_arcsec: float) -> list[float]:
    return [-half_arcsec, half_arcsec, -half_arcsec, half_arcsec]


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _log_image(ax: plt.Axes, image: np.ndarray, half: float, title: str, cmap: str = "magma") -> None:
    positive = image[image > 0]
    floor = np.percentile(positive, 1) if positive.size else 1.0
    ax.imshow(np.log10(np.maximum(image, floor)), origin="lower", extent=_extent(half), cmap=cmap)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)


def quicklook_maps(maps_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Σ_total of the first views of each field of view, plus tSZ y and X-ray of view 0 when present."""
    with h5py.File(maps_path, "r") as f:
        fovs = [k for k in f if isinstance(f[k], h5py.Group)]
        if not fovs:
            raise KeyError(f"{maps_path}: no field-of-view groups")
        rows = []
        for fov in fovs:
            g = f[fov]
            half = float(g.attrs["fov_arcsec"]) / 2
            sigma = g["sigma"]
            channels = [str(c) for c in sigma.attrs["channels"]]
            n = min(MAX_VIEWS, sigma.shape[0])
            panels = [
                (sigma[v, channels.index("total")], f"{fov} view {v}: log Σ [Msun/kpc²]") for v in range(n)
            ]
            for key, label in (("tsz_y", "log tSZ y"), ("xray_sb", "log X-ray SB")):
                if key in g:
                    panels.append((g[key][0], f"{fov} view 0: {label}"))
            rows.append((half, panels))
        title = f"{Path(maps_path).parent.parent.name}/{Path(maps_path).parent.name}/{Path(maps_path).stem}"
    ncol = max(len(p) for _, p in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.4 * ncol, 2.4 * len(rows)), squeeze=False)
    for r, (half, panels) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r, c]
            if c < len(panels):
                _log_image(ax, np.asarray(panels[c][0]), half, panels[c][1])
            else:
                ax.axis("off")
    fig.suptitle(f"{title}: truth maps (x right, y up, arcsec)", fontsize=9)
    _save(fig, png_path)


def asinh_rgb(images: np.ndarray, *, softening: float | None = None) -> np.ndarray:
    """An (H, W, 3) RGB composite from (3, H, W) images ordered red, green, blue, with an asinh stretch.

    The stretch follows Lupton et al. (2004): I = asinh(S/β)/asinh(max/β), with β the softening (default: the
    median absolute image value, so that faint light stays visible).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[0] != 3:
        raise ValueError(f"images must have shape (3, H, W), got {images.shape}")
    total = images.sum(axis=0)
    beta = softening if softening is not None else max(float(np.median(np.abs(total))), 1e-30)
    scale = np.arcsinh(np.maximum(total, 0) / beta) / np.maximum(total, 1e-300)
    rgb = np.clip(images * scale, 0, None)
    rgb /= max(float(np.percentile(rgb, 99.5)), 1e-30)
    return np.clip(np.moveaxis(rgb, 0, -1), 0, 1)


def quicklook_observations(
    obs_path: str | os.PathLike, maps_path: str | os.PathLike, png_path: str | os.PathLike, *, view: int = 0
) -> None:
    """HST composite (F125W, F814W, F606W as R, G, B), Σ contours, strong-lensing images, shear sticks."""
    with h5py.File(obs_path, "r") as obs, h5py.File(maps_path, "r") as maps:
        fovs = list(obs.get("photometry", {}))
        if not fovs:
            raise KeyError(f"{obs_path}: no photometry groups")
        fig, axes = plt.subplots(1, len(fovs), figsize=(4.2 * len(fovs), 4.2), squeeze=False)
        for ax, fov in zip(axes[0], fovs, strict=True):
            g = obs["photometry"][fov]
            bands = [str(b) for b in g["images"].attrs["bands"]]
            img = g["images"][view]
            order = [bands.index(b) for b in ("F125W", "F814W", "F606W")]
            half = float(maps[fov].attrs["fov_arcsec"]) / 2
            ax.imshow(asinh_rgb(img[order]), origin="lower", extent=_extent(half))
            sigma = maps[fov]["sigma"]
            total = sigma[view, [str(c) for c in sigma.attrs["channels"]].index("total")]
            levels = np.percentile(total[total > 0], [90, 97, 99.5]) if np.any(total > 0) else None
            if levels is not None:
                ax.contour(total, levels=np.unique(levels), extent=_extent(half), colors="w", linewidths=0.5)
            lens = obs.get(f"lensing/{fov}/view_{view:03d}")
            if lens is not None and "strong/images" in lens:
                im = lens["strong/images"]
                ax.scatter(im["x_arcsec"][()], im["y_arcsec"][()], s=10, facecolors="none", edgecolors="cyan")
            weak = sorted(k for k in lens if k.startswith("weak")) if lens is not None else []
            if weak:
                wl = lens[weak[0]]
                e1, e2 = wl["e1"][()], wl["e2"][()]
                phi = 0.5 * np.arctan2(e2, e1)
                mag = np.hypot(e1, e2) * half * 0.1
                ax.quiver(
                    wl["x_arcsec"][()], wl["y_arcsec"][()], mag * np.cos(phi), mag * np.sin(phi),
                    headwidth=0, headlength=0, headaxislength=0, pivot="middle", color="yellow",
                    angles="xy", scale_units="xy", scale=1, width=0.002,
                )  # fmt: skip
            ax.set_title(f"{fov} view {view}: HST F125W/F814W/F606W + lensing", fontsize=8)
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
        _save(fig, png_path)
