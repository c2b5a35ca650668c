"""ADM backbone (Dhariwal & Nichol 2021, "Diffusion models beat GANs", as used by Karras et al. 2022 and the
DarkClusters paper's prior).

Same encoder–decoder layout as DDPM++ (:mod:`.songunet`), with the ADM choices: the noise embedding enters
every residual block as an adaptive GroupNorm scale and shift (norm(h)·(1 + s) + b, Dhariwal & Nichol 2021,
§3), unit skip scale, multi-head attention with 64-channel heads at ``attn_resolutions`` and at the
bottleneck. The DarkClusters prior is this network at 512² with model_channels 128, channel_mult [1, 1, 2, 2,
4, 4], two blocks per level, attention at 32² and 16², dropout 0.13, and 1 target + 3 photometry input
channels.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from darkclusters.diffusion.networks.songunet import (
    PositionalEmbedding,
    _check_sizes,
    _UNetBase,
    _zero,
    group_norm,
)

__all__ = ["DhariwalUNet"]


class DhariwalUNet(_UNetBase):
    """ADM UNet: (B, in_channels, H, W) and noise labels (B,) → (B, out_channels, H, W).

    Defaults are the ImageNet-64 configuration of Karras et al. (2022); the DarkClusters prior overrides them
    (see the module docstring and ``training.network`` in the config schema).
    """

    def __init__(
        self,
        *,
        img_resolution: int,  # image side [pixels] at which attn_resolutions are counted
        in_channels: int,  # network input channels: target + condition channels
        out_channels: int,  # network output channels: target channels
        model_channels: int = 192,  # width of the first level
        channel_mult: Sequence[int] = (1, 2, 3, 4),  # width multiplier per level; one level per entry
        channel_mult_emb: int = 4,  # noise-embedding width as a multiple of model_channels
        num_blocks: int = 3,  # residual blocks per level (encoder; the decoder has one more)
        attn_resolutions: Sequence[int] = (32, 16, 8),  # image sides [pixels] with self-attention
        dropout: float = 0.10,  # dropout probability in the residual blocks
        channels_per_head: int = 64,  # attention head width [channels]
    ) -> None:
        super().__init__()
        _check_sizes(img_resolution, channel_mult, num_blocks, model_channels, dropout)
        emb_channels = model_channels * channel_mult_emb
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_layer0 = nn.Linear(model_channels, emb_channels)
        self.map_layer1 = nn.Linear(emb_channels, emb_channels)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        block_kwargs = {
            "emb_channels": emb_channels,
            "dropout": dropout,
            "skip_scale": 1.0,
            "adaptive_scale": True,
            "channels_per_head": min(channels_per_head, model_channels),
        }
        cout = self._build(
            img_resolution=img_resolution,
            model_channels=model_channels,
            channel_mult=list(channel_mult),
            num_blocks=num_blocks,
            attn_resolutions=list(attn_resolutions),
            bottleneck_attention=True,
            block_kwargs=block_kwargs,
        )
        self.norm_out = group_norm(cout)
        self.conv_out = _zero(nn.Conv2d(cout, out_channels, 3, padding=1))
