"""The workflow's HTML report (``snakemake --report``), built by a rule of the workflow itself.

The rule ``report`` runs ``python -m snakemake --report`` in a subprocess on the finished tables and figures
(the report rule is not among the targets, so the inner DAG is complete): ``rule all`` then yields the report
like any other product, and ``snakemake report`` rebuilds only it. The inner run gets the outer run's final
config as one YAML file and ``--nolock`` (the outer run holds the lock; the inner one reads metadata only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["build_report"]


def build_report(
    out_html: str | os.PathLike,
    *,
    snakefile: str | os.PathLike,
    workdir: str | os.PathLike,
    config: Mapping[str, Any],
    targets: Sequence[str],
    log: str | os.PathLike | None = None,
) -> Path:
    """Write ``out_html`` (self-contained HTML) with the report of ``targets``; raises RuntimeError with
    Snakemake's message when the report command fails. config: the config in use (written to a YAML file
    beside the output, removed afterwards)."""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg_file = out.parent / f"{out.stem}.config.yaml"
    partial = out.parent / f"{out.stem}.partial.html"
    cfg_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        os.fspath(snakefile),
        "--directory",
        os.fspath(workdir),
        "--configfile",
        os.fspath(cfg_file.resolve()),
        "--nolock",
        "--report",
        os.fspath(partial.resolve()),
        *targets,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        cfg_file.unlink(missing_ok=True)
    if log is not None:
        Path(log).write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"snakemake --report failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    os.replace(partial, out)
    return out
