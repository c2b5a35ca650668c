"""Bilinear sampling of maps at sky positions, in the map-geometry convention, differentiable in both.

A map ``(..., H, W)`` indexed ``[row = y, col = x]`` with pixel side p [arcsec] has pixel (i, j) centred at
x_j = (j + ½ − W/2)·p, y_i = (i + ½ − H/2)·p (``darkclusters.projection.geometry``). In the normalised
coordinates of ``torch.nn.functional.grid_sample`` with ``align_corners=False`` the outer pixel *edges* are
±1 and pixel centres sit at (2j + 1)/W − 1, so a position maps to u = x / (W p / 2), v = y / (H p / 2) —
no flip, because the row index already grows with y. Values at pixel centres are returned exactly.

Points between the outermost pixel centres and the map edge, or outside the map, follow ``padding_mode``:
``"border"`` (default) repeats the edge pixels (constant extrapolation, gradient in the position 0 outside),
``"zeros"`` blends towards 0 beyond the outermost centres and gives 0 outside. :func:`inside_field` flags the
points within the map's footprint |x| ≤ W p/2, |y| ≤ H p/2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from darkclusters.lensing.operators import as_tensor, check_map, check_pixel, to_output

__all__ = ["inside_field", "sample_field"]

_PADDING_MODES = ("border", "zeros")


def sample_field(
    field: Any, x_arcsec: Any, y_arcsec: Any, pixel_arcsec: float, *, padding_mode: str = "border"
) -> Any:
    """Bilinear interpolation of ``field`` (..., H, W) at sky positions (x_arcsec, y_arcsec) [arcsec].

    Shapes follow a generalised ufunc with signature (H, W), (N) → (N): x and y have shape (..., N) (equal
    shapes), their leading dimensions broadcast with the field's leading dimensions by the usual rules, and
    the result has the broadcast leading shape + (N,). A single map (2-D field) is sampled at positions of
    any shape and the result has the positions' shape; a 0-d position gives the field's batch shape. To
    sample a batch of maps at one shared set of points of shape S, pass ``x.reshape(-1)`` and reshape the
    (..., ΠS) result. Differentiable in the field and in the
    positions (tensors keep their graph, device and dtype follow the field; numpy positions are converted).
    Numpy in (field and positions) gives numpy out. padding_mode: "border" or "zeros" (module docstring).
    """
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode={padding_mode!r} must be one of {_PADDING_MODES}")
    values, numpy_field = as_tensor(field, "field")
    height, width = check_map(values, "field")
    pixel = check_pixel(pixel_arcsec)
    x, numpy_x = as_tensor(x_arcsec, "x_arcsec")
    y, numpy_y = as_tensor(y_arcsec, "y_arcsec")
    if x.shape != y.shape:
        raise ValueError(f"x_arcsec {tuple(x.shape)} and y_arcsec {tuple(y.shape)} must have the same shape")
    x = x.to(device=values.device, dtype=values.dtype)
    y = y.to(device=values.device, dtype=values.dtype)
    points_shape = tuple(x.shape)
    if values.ndim == 2 or x.ndim == 0:  # one map at positions of any shape, or one point
        x, y = x.reshape(1, -1), y.reshape(1, -1)
    field_batch = tuple(values.shape[:-2])
    try:
        batch = np.broadcast_shapes(field_batch, tuple(x.shape[:-1]))
    except ValueError as error:
        raise ValueError(
            f"positions {tuple(x.shape)} (..., N) do not broadcast with the field's batch shape "
            f"{field_batch}; for points shared by every map pass x.reshape(-1)"
        ) from error
    grid = torch.stack([x / (0.5 * width * pixel), y / (0.5 * height * pixel)], dim=-1)  # (..., N, 2)
    n_points = grid.shape[-2]
    if all(size == 1 for size in grid.shape[:-2]):  # shared points: the maps become channels of one image
        channels = values.reshape(1, -1, height, width)
        sampled = F.grid_sample(
            channels,
            grid.reshape(1, 1, n_points, 2),
            mode="bilinear",
            padding_mode=padding_mode,
            align_corners=False,
        )  # (1, C, 1, N)
        out = sampled.reshape(*field_batch, n_points).expand(*batch, n_points)
    else:
        maps = values.expand(*batch, height, width).reshape(-1, 1, height, width)
        points = grid.expand(*batch, n_points, 2).reshape(-1, 1, n_points, 2)
        sampled = F.grid_sample(maps, points, mode="bilinear", padding_mode=padding_mode, align_corners=False)
        out = sampled.reshape(*batch, n_points)
    if len(field_batch) == 0:
        out = out.reshape(points_shape)
    elif len(points_shape) == 0:
        out = out.squeeze(-1)
    return to_output(out, numpy_field and numpy_x and numpy_y)


def inside_field(x_arcsec: Any, y_arcsec: Any, shape: tuple[int, int], pixel_arcsec: float) -> Any:
    """Mask of positions inside the footprint of an (H, W) map: |x| ≤ W p/2 and |y| ≤ H p/2 [arcsec].

    x_arcsec, y_arcsec: equal shapes, numpy or torch (the mask has the same type and shape, dtype bool).
    """
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape={shape} must hold two positive sizes (H, W)")
    pixel = check_pixel(pixel_arcsec)
    if isinstance(x_arcsec, torch.Tensor) or isinstance(y_arcsec, torch.Tensor):
        x, y = torch.as_tensor(x_arcsec), torch.as_tensor(y_arcsec)
        return (x.abs() <= 0.5 * width * pixel) & (y.abs() <= 0.5 * height * pixel)
    x, y = np.asarray(x_arcsec), np.asarray(y_arcsec)
    return (np.abs(x) <= 0.5 * width * pixel) & (np.abs(y) <= 0.5 * height * pixel)
