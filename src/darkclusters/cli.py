"""Command-line entry point ``darkclusters``: use the package without the Snakemake DAG.

Subcommands:
  ``darkclusters check-config CONFIG``  validate a config (schema + cross-key rules), print it with defaults
  ``darkclusters inspect FILE``  summarise a darkclusters HDF5 or parquet file: datasets, units, provenance
  ``darkclusters synthesize CONFIG SIM OUT``  write one synthetic simulation of a config to OUT
  ``darkclusters reconstruct MODEL OUT --image BAND=FITS ... --ra --dec --z-lens --pixel-arcsec
  [--strong CSV] [--weak CSV]``  posterior Σ of one's own cluster (formats: darkclusters.user_inputs)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import jsonschema
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


def _reconstruct(args: argparse.Namespace) -> int:
    from darkclusters.config import _DefaultFillingValidator, load_schema
    from darkclusters.cosmology import flat_lcdm
    from darkclusters.user_inputs import reconstruct_user_cluster

    text = yaml.safe_load(Path(args.config).read_text()) if args.config is not None else {}
    if isinstance(text, dict) and set(text) <= {"reconstruction"}:
        # no config, or one with only a reconstruction section: that section, with the schema's defaults
        recon = dict(text.get("reconstruction") or {})
        try:
            _DefaultFillingValidator(load_schema()["properties"]["reconstruction"]).validate(recon)
        except jsonschema.ValidationError as err:
            path = ".".join(str(k) for k in err.absolute_path)
            raise ConfigError(f"{args.config}: config key 'reconstruction.{path}': {err.message}") from None
    else:
        recon = load_config(args.config)["reconstruction"]
    if args.n_samples is not None:
        recon["n_samples"] = args.n_samples
    images = {}
    for item in args.image:
        band, sep, path = item.partition("=")
        if not sep or not band or not path:
            raise ValueError(f"--image {item!r}: write BAND=PATH, e.g. F814W=cluster_f814w.fits")
        images[band] = path
    out = reconstruct_user_cluster(
        model_pt=args.model,
        images=images,
        ra_deg=args.ra,
        dec_deg=args.dec,
        pixel_arcsec=args.pixel_arcsec,
        z_lens=args.z_lens,
        out_path=args.out,
        recon_cfg=recon,
        seed=args.seed,
        strong_csv=args.strong,
        weak_csv=args.weak,
        z_ref=args.z_ref,
        cosmology=flat_lcdm(args.hubble_h, args.omega_m, args.omega_b),
        sigma_e=args.sigma_e,
        tuning_path=args.tuning,
        device=args.device,
    )
    print(f"wrote {out}")
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
    p = sub.add_parser("reconstruct", help="posterior mass map of one's own cluster from FITS + CSV files")
    p.add_argument("model", help="trained prior (results/models/{dataset}/prior/model.pt)")
    p.add_argument("out", help="output HDF5 (the layout of rule reconstruct: mean, std, quantiles)")
    p.add_argument("--image", action="append", required=True, metavar="BAND=FITS", help="one per band")
    p.add_argument("--ra", type=float, required=True, help="field centre RA [deg]")
    p.add_argument("--dec", type=float, required=True, help="field centre Dec [deg]")
    p.add_argument("--z-lens", type=float, required=True, help="cluster redshift")
    p.add_argument("--pixel-arcsec", type=float, required=True, help="the prior's pixel [arcsec] (fov/npix)")
    p.add_argument("--strong", help="strong-lensing CSV: family, image, RA, Dec, z_s")
    p.add_argument("--weak", help="weak-lensing CSV: RA, Dec, e1, e2, [sigma_e], z or pz_<z> columns")
    p.add_argument("--sigma-e", type=float, default=0.26, help="shape noise without a sigma_e column")
    p.add_argument("--z-ref", type=float, default=2.0, help="reference source redshift of κ")
    p.add_argument("--hubble-h", type=float, default=0.6774)
    p.add_argument("--omega-m", type=float, default=0.3089)
    p.add_argument("--omega-b", type=float, default=0.0486)
    p.add_argument("--config", help="a darkclusters config whose reconstruction section is used")
    p.add_argument("--tuning", help="a tune_sampler YAML whose chosen values override the config")
    p.add_argument("--n-samples", type=int, help="posterior samples (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_reconstruct)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, KeyError, OSError, ValueError) as exc:
        print(f"darkclusters: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
