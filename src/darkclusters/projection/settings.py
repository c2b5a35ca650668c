"""The ``projection`` config section: defaults, cross-key checks, fields of view and viewing directions.

The schema (``darkclusters/schemas/projection.schema.yaml``) types and ranges every key; what it cannot say is
checked here with a :class:`~darkclusters.config.ConfigError` naming the key: each field of view gives exactly
one of ``fov_arcsec`` (angular, the DarkClusters-15k maps of seed 000) or ``fov_kpc`` (physical, the
12.8 Mpc / 128 px SZ and X-ray maps of seed 002), names are unique, and ``cardinal`` has at most 3 views.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy as np

from darkclusters.config import ConfigError, load_schema
from darkclusters.projection.geometry import MapGeometry, cardinal_directions, hemisphere_directions

__all__ = ["FieldOfView", "check_projection_config", "fields_of_view", "projection_config", "view_directions"]


@dataclass(frozen=True)
class FieldOfView:
    """A named square field of view: its pixel grid and whether it was given in arcsec or kpc."""

    name: str
    geometry: MapGeometry
    given_in: str  # "arcsec" or "kpc"


def _fill_defaults(schema: Mapping[str, Any], instance: Any) -> Any:
    """Fill ``default`` values of object properties (recursively, also in array items), like load_config."""
    if isinstance(instance, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                instance[key] = _fill_defaults(sub, instance[key])
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        return [_fill_defaults(schema["items"], item) for item in instance]
    return instance


def projection_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``projection`` section with every default filled in, validated and cross-checked.

    ``overrides`` are keys of the section (e.g. ``{"method": "sph"}``); for use outside the workflow, where
    :func:`darkclusters.config.load_config` is not called. Raises ConfigError naming ``projection.<key>``.
    """
    schema = load_schema()["properties"]["projection"]
    cfg = _fill_defaults(schema, copy.deepcopy(dict(overrides or {})))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: -len(e.path))
    if errors:
        path = ".".join(["projection", *(str(p) for p in errors[0].absolute_path)])
        raise ConfigError(f"config key '{path}': {errors[0].message}")
    check_projection_config(cfg)
    return cfg


def check_projection_config(cfg: Mapping[str, Any]) -> None:
    """Rules the schema cannot state (module docstring); ConfigError names the offending key."""
    names: set[str] = set()
    for i, fov in enumerate(cfg["fields_of_view"]):
        key = f"projection.fields_of_view[{i}]"
        given = [k for k in ("fov_arcsec", "fov_kpc") if fov.get(k) is not None]
        if len(given) != 1:
            what = "both" if given else "neither"
            raise ConfigError(
                f"config key '{key}' ({fov.get('name', '?')!r}): give exactly one of fov_arcsec or fov_kpc "
                f"(got {what})"
            )
        if fov["name"] in names:
            raise ConfigError(f"config key '{key}.name': {fov['name']!r} is used twice")
        names.add(fov["name"])
    if cfg["directions"] == "cardinal" and cfg["n_views"] > 3:
        raise ConfigError(
            f"config key 'projection.n_views': {cfg['n_views']} views, but 'cardinal' directions are the "
            "3 axes (set n_views <= 3)"
        )


def fields_of_view(cfg: Mapping[str, Any], kpc_per_arcsec: float) -> list[FieldOfView]:
    """The configured fields of view as pixel grids at a lens of ``kpc_per_arcsec`` [physical kpc/″]."""
    check_projection_config(cfg)
    out = []
    for fov in cfg["fields_of_view"]:
        if fov.get("fov_arcsec") is not None:
            arcsec, given = float(fov["fov_arcsec"]), "arcsec"
        else:
            arcsec, given = float(fov["fov_kpc"]) / kpc_per_arcsec, "kpc"
        out.append(FieldOfView(fov["name"], MapGeometry(arcsec, int(fov["npix"]), kpc_per_arcsec), given))
    return out


def view_directions(cfg: Mapping[str, Any]) -> np.ndarray:
    """Unit vectors (V, 3) from the cluster to the observer: the equal-area Fibonacci lattice on the z ≥ 0
    hemisphere (seed 000 App. A: 25 views uniform over a hemisphere) or the first n_views of +x, +y, +z."""
    check_projection_config(cfg)
    if cfg["directions"] == "hemisphere":
        return hemisphere_directions(int(cfg["n_views"]))
    return cardinal_directions()[: int(cfg["n_views"])]
