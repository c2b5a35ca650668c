"""darkclusters: galaxy-cluster mass maps from simulation snapshots to published tables.

The package is importable without Snakemake; the workflow in ``workflow/`` calls one function per rule.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("darkclusters")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
