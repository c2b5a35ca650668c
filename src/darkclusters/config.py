"""Configuration: load, validate against the JSON schema (filling defaults), and typed look-ups.

The schema lives in ``darkclusters/schemas/config.schema.yaml`` (``workflow/schemas/`` links to it). The
Snakefile and the command-line tools both call :func:`validate_config`, so a config error reads the same
everywhere: a :class:`ConfigError` naming the key path, e.g. ``simulations.tng.synthetic.n_clusters: -1 is
less than 1``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, MutableMapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = [
    "ConfigError",
    "load_config",
    "load_schema",
    "reference_snapshot",
    "simulation_base_path",
    "simulation_config",
    "validate_config",
]


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, out of range or unknown; the message names the
    key."""


@cache
def load_schema() -> dict[str, Any]:
    """The config JSON schema (Draft 2020-12) shipped with the package.

    Each stage's section lives in its own file beside the main schema (``projection.schema.yaml``, ...); a
    top-level property written as ``{$ref: projection.schema.yaml}`` is replaced by that file's content.
    """
    folder = files("darkclusters").joinpath("schemas")
    schema = yaml.safe_load(folder.joinpath("config.schema.yaml").read_text())
    for key, sub in schema["properties"].items():
        ref = sub.get("$ref", "")
        if ref.endswith(".schema.yaml"):
            schema["properties"][key] = yaml.safe_load(folder.joinpath(ref).read_text())
    return schema


def _extend_with_default(validator_class: type) -> type:
    """A validator class that fills ``default`` values of ``properties`` into the instance while validating.

    Unlike Snakemake's own ``validate(set_default=True)`` this also reaches objects under
    ``additionalProperties``
    and ``$ref`` (the per-simulation blocks), because it extends the keyword every subschema uses.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_default(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def validate_config(config: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Validate ``config`` in place against the schema, fill defaults, check cross-key rules; return it.

    Raises ConfigError naming the key path of the first problem (the deepest, most specific one).
    """
    validator = _DefaultFillingValidator(load_schema())
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        err = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        hint = ""
        if isinstance(err.instance, str) and err.validator == "type" and _looks_numeric(err.instance):
            hint = f" (YAML 1.1 reads {err.instance} as text: write the exponent with a sign, e.g. 1.0e+14)"
        raise ConfigError(f"config key '{_key_path(err)}': {err.message}{hint}{more}")
    _check_cross_keys(config)
    return config


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_cross_keys(config: Mapping[str, Any]) -> None:
    """Rules JSON schema cannot state: sums, orderings and references between keys."""
    if not config["simulations"]:
        raise ConfigError("config key 'simulations': at least one simulation is needed")
    fractions = config["selection"]["split_fractions"]
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(f"config key 'selection.split_fractions': fractions sum to {total:g}, not 1")
    _check_datasets(config)
    from darkclusters.projection.settings import check_projection_config

    check_projection_config(config["projection"])
    for name, sim in config["simulations"].items():
        key = f"simulations.{name}"
        own = (sim.get("selection") or {}).get("split_fractions")
        if own is not None and abs(sum(own.values()) - 1.0) > 1e-9:
            raise ConfigError(
                f"config key '{key}.selection.split_fractions': fractions sum to {sum(own.values()):g}, not 1"
            )
        ref = sim["reference_snapshot"]
        if ref is not None and ref not in sim["snapshots"]:
            raise ConfigError(f"config key '{key}.reference_snapshot': {ref} is not in {key}.snapshots")
        syn = sim["synthetic"]
        if syn is None:
            if sim["base_path"] is None:
                raise ConfigError(f"config key '{key}.base_path': required for real (non-synthetic) data")
            continue
        if sim["base_path"] is not None:
            raise ConfigError(
                f"config key '{key}.base_path': must be null for a synthetic simulation "
                f"(it is written to results/simulations/{name})"
            )
        if syn["m200c_min_msun"] >= syn["m200c_max_msun"]:
            raise ConfigError(f"config key '{key}.synthetic.m200c_min_msun': must be below m200c_max_msun")
        _check_synthetic_redshifts(key, sim)
        _check_halo_model(key, syn["halo_model"])


def _check_datasets(config: Mapping[str, Any]) -> None:
    """Datasets name known simulations and fields of view; reconstruction names a known dataset."""
    fovs = {f["name"] for f in config["projection"].get("fields_of_view", [])}
    for name, spec in config["datasets"].items():
        for sim in spec["simulations"]:
            if sim not in config["simulations"]:
                raise ConfigError(f"config key 'datasets.{name}.simulations': unknown simulation {sim!r}")
        if fovs and spec["fov"] not in fovs:
            raise ConfigError(f"config key 'datasets.{name}.fov': {spec['fov']!r} is not in {sorted(fovs)}")
    dataset = config["reconstruction"]["dataset"]
    if config["datasets"] and dataset not in config["datasets"]:
        raise ConfigError(
            f"config key 'reconstruction.dataset': {dataset!r} is not one of {sorted(config['datasets'])}"
        )
    lensed = config["lensing"].get("fields_of_view")
    if lensed is None:
        return
    for name in lensed:
        if fovs and name not in fovs:
            raise ConfigError(f"config key 'lensing.fields_of_view': {name!r} is not in {sorted(fovs)}")
    users = [m for m in config["reconstruction"]["methods"] if "SL" in m or "WL" in m]
    users += [b for b in (config.get("evaluation") or {}).get("baselines", []) if b in ("KS", "Wiener")]
    if config["datasets"] and users:
        fov = config["datasets"][dataset]["fov"]
        if fov not in lensed:
            raise ConfigError(
                f"config key 'lensing.fields_of_view': {lensed} lacks {fov!r}, the field of "
                f"reconstruction.dataset {dataset!r}, which {users} need"
            )


def _check_synthetic_redshifts(key: str, sim: Mapping[str, Any]) -> None:
    from darkclusters.simulations.tng import TNG_SNAPSHOT_REDSHIFTS

    given = sim["synthetic"]["redshifts"]
    for snap in sim["snapshots"]:
        if str(snap) in given:
            continue
        if sim["format"] == "tng" and snap in TNG_SNAPSHOT_REDSHIFTS:
            continue
        raise ConfigError(
            f"config key '{key}.synthetic.redshifts': no redshift for snapshot {snap} "
            f"(known TNG snapshots: {sorted(TNG_SNAPSHOT_REDSHIFTS)})"
        )


def _check_halo_model(key: str, overrides: Mapping[str, Any]) -> None:
    import dataclasses

    from darkclusters.simulations.synthetic.halo_model import HaloModelParams

    fields = {f.name: f for f in dataclasses.fields(HaloModelParams)}
    for name, value in overrides.items():
        if name not in fields:
            raise ConfigError(
                f"config key '{key}.synthetic.halo_model.{name}': unknown parameter (known: {sorted(fields)})"
            )
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"config key '{key}.synthetic.halo_model.{name}': {value!r} is not a number")


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file, merge ``overrides`` (nested dicts merge key by key), validate and return
    it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    if overrides:
        config = _merge(config, overrides)
    return dict(validate_config(config))


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def simulation_config(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The validated block of simulation ``name``; KeyError names the known simulations."""
    try:
        return config["simulations"][name]
    except KeyError:
        raise KeyError(f"no simulation {name!r} in config (known: {sorted(config['simulations'])})") from None


def simulation_base_path(config: Mapping[str, Any], name: str) -> str:
    """Where simulation ``name``'s files are: TNG basePath (``.../output``) or the SIMBA folder."""
    sim = simulation_config(config, name)
    if sim["base_path"] is not None:
        return str(sim["base_path"])
    root = f"results/simulations/{name}"
    return f"{root}/output" if sim["format"] == "tng" else root


def reference_snapshot(config: Mapping[str, Any], name: str) -> int:
    """The snapshot whose halo ids name clusters across snapshots."""
    sim = simulation_config(config, name)
    return int(sim["reference_snapshot"] if sim["reference_snapshot"] is not None else sim["snapshots"][0])
