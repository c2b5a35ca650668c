"""The ``photometry`` config section: validation against its JSON schema, defaults, cross-key rules.

The schema is ``darkclusters/schemas/photometry.schema.yaml`` (the same file the workflow's config schema
includes), so the package functions validate exactly what Snakemake validates, and a call with a partial
section (or ``None``) gets every default filled in.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
import yaml

from darkclusters.config import ConfigError
from darkclusters.photometry.filters import HST_BANDS

__all__ = ["photometry_config"]


def photometry_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the ``photometry`` config section against its schema and fill its defaults (a new dict).

    Raises :class:`darkclusters.config.ConfigError` (a ValueError) naming the key, e.g.
    ``config key 'photometry.psf.fwhm_arcsec.F814W': -1 is less than or equal to the minimum of 0``.
    """
    section = copy.deepcopy(dict(cfg or {}))
    errors = sorted(_validator().iter_errors(section), key=lambda e: (-len(e.absolute_path), str(e.path)))
    if errors:
        err = errors[0]
        key = ".".join(["photometry", *(str(p) for p in err.absolute_path)])
        raise ConfigError(f"config key '{key}': {err.message}")
    syn = section["background"]["synthetic"]
    if syn["mag_min_f814w"] >= syn["mag_max_f814w"]:
        raise ConfigError(
            "config key 'photometry.background.synthetic.mag_min_f814w': must be below mag_max_f814w"
        )
    if section["background"]["source"] == "fits":
        missing = [b for b in HST_BANDS if section["background"]["fits_paths"][b] is None]
        if missing:
            raise ConfigError(
                f"config key 'photometry.background.fits_paths.{missing[0]}': required when source is fits"
            )
    return section


@cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(files("darkclusters").joinpath("schemas/photometry.schema.yaml").read_text())


def _validator() -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator of the photometry section that fills ``default`` values while validating."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "object"):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(_schema())
