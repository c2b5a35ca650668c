"""Denoiser backbones F for EDM preconditioning: DDPM++ (:mod:`.songunet`) and ADM (:mod:`.adm`).

Both map (B, in_channels, H, W) and noise labels c_noise (B,) to (B, out_channels, H, W); the condition is
part of the input channels (concatenation, done by :class:`darkclusters.diffusion.edm.EDMPrecond`). Build one
by name with :func:`.registry.build_network`.
"""

from darkclusters.diffusion.networks.adm import DhariwalUNet
from darkclusters.diffusion.networks.registry import NETWORKS, build_network
from darkclusters.diffusion.networks.songunet import SongUNet

__all__ = ["NETWORKS", "DhariwalUNet", "SongUNet", "build_network"]
