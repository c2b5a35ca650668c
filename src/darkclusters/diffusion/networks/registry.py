"""Backbone registry: a name in the config → a network class, built with keyword-only plain-type arguments.

``build_network("adm", img_resolution=512, in_channels=4, out_channels=1, model_channels=128, ...)``. The name
and keyword arguments are what checkpoints store, so a model is rebuilt from a plain dict (no pickled code).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from darkclusters.diffusion.networks.adm import DhariwalUNet
from darkclusters.diffusion.networks.songunet import SongUNet

__all__ = ["NETWORKS", "build_network"]

NETWORKS: dict[str, type[nn.Module]] = {
    "ddpmpp": SongUNet,  # DDPM++ (Song et al. 2021; Karras et al. 2022)
    "adm": DhariwalUNet,  # ADM (Dhariwal & Nichol 2021); the DarkClusters prior
}


def build_network(name: str, **kwargs: Any) -> nn.Module:
    """The backbone registered as ``name``, constructed with ``kwargs`` (see the class for each key)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(NETWORKS)}")
    try:
        return NETWORKS[name](**kwargs)
    except TypeError as err:  # an unknown or missing keyword: say which network it was for
        raise ValueError(f"cannot build backbone {name!r} from {sorted(kwargs)}: {err}") from err
