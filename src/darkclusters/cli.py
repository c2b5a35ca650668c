"""Command-line entry point ``darkclusters``: use the package without the Snakemake DAG.

Subcommands:
  ``darkclusters check-config CONFIG``  validate a config (schema + cross-key rules), print it with defaults
  ``darkclusters inspect FILE``  summarise a darkclusters HDF5 or parquet file: datasets, units, provenance
  ``darkclusters synthesize CONFIG SIM OUT``  write one synthetic simulation of a config to OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import pandas as pd
import yaml

from darkclusters import __version__
from darkclusters.config import ConfigError, load_config, simulation_config
from darkclusters.io import read_parquet_metadata

__all__ = ["main"]


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(yaml.safe_dump(config, sort_keys=False))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        print(f"{path}: {len(table)} rows")
        print(table.to_string(max_rows=20))
        print(json.dumps(read_parquet_metadata(path), indent=1, sort_keys=True))
        return 0
    with h5py.File(path, "r") as f:
        print(f"{path}")
        for key, value in f.attrs.items():
            text = value if isinstance(value, str) else repr(value)
            print(f"  @{key} = {text[:200]}")

        def show(name: str, obj: h5py.HLObject) -> None:
            if isinstance(obj, h5py.Dataset):
                units = obj.attrs.get("units", "")
                print(f"  {name}: {obj.shape} {obj.dtype} {units}")

        f.visititems(show)
    return 0


def _synthesize(args: argparse.Namespace) -> int:
    from darkclusters.simulations.synthetic.universe import synthesize_simulation

    config = load_config(args.config)
    sim = simulation_config(config, args.sim)
    if sim["synthetic"] is None:
        raise ConfigError(f"config key 'simulations.{args.sim}.synthetic': this simulation is not synthetic")
    synthesize_simulation(args.sim, sim, seed=config["seed"], out_dir=args.out)
    print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="darkclusters", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"darkclusters {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-config", help="validate a config file and print it with defaults filled in")
    p.add_argument("config")
    p.set_defaults(func=_check_config)
    p = sub.add_parser("inspect", help="summarise a darkclusters HDF5 or parquet file")
    p.add_argument("file")
    p.set_defaults(func=_inspect)
    p = sub.add_parser("synthesize", help="write one synthetic simulation of a config")
    p.add_argument("config")
    p.add_argument("sim", help="simulation name in the config")
    p.add_argument("out", help="output folder (TNG: its output/ subfolder is the basePath)")
    p.set_defaults(func=_synthesize)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, KeyError, OSError) as exc:
        print(f"darkclusters: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
