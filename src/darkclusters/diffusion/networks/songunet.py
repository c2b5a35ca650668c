"""DDPM++ backbone (Song et al. 2021, as configured by Karras et al. 2022) and the layers it shares with ADM.

A backbone is the raw network F of the EDM preconditioning (Karras et al. 2022, eq. 7): it maps an input image
(B, in_channels, H, W) — the scaled noisy target with the condition channels concatenated — and a noise label
c_noise (B,) to an output (B, out_channels, H, W). It knows nothing of σ itself;
:mod:`darkclusters.diffusion.edm` computes c_in, c_noise, c_skip and c_out.

Layers (written for darkclusters from the papers):

- :class:`PositionalEmbedding` — the transformer sinusoidal embedding of a continuous noise label
  (Vaswani et al. 2017, §3.5), used by DDPM++ and ADM.
- :class:`FourierEmbedding` — random Fourier features (Tancik et al. 2020; NCSN++ in Song et al. 2021).
- :class:`UNetBlock` — pre-activation residual block: GroupNorm → SiLU → (resample) → 3×3 conv, noise
  embedding added (DDPM++) or applied as an adaptive GroupNorm scale and shift (ADM, Dhariwal & Nichol 2021),
  GroupNorm → SiLU → dropout → 3×3 conv, a 1×1 skip projection when the width changes, optional multi-head
  self-attention. Down-sampling is a 2×2 average (the [1, 1] resampling filter of DDPM++), up-sampling
  nearest-neighbour. Layers that end a residual branch start at zero, so every block starts as the identity
  (``zero_module`` of Dhariwal & Nichol 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FourierEmbedding", "PositionalEmbedding", "SongUNet", "UNetBlock", "group_norm"]


def group_norm(channels: int, *, eps: float = 1e-5) -> nn.GroupNorm:
    """GroupNorm with min(32, channels // 4) groups (32 in the papers; fewer for the tiny test networks)."""
    if channels < 4:
        raise ValueError(f"a normalised layer needs at least 4 channels, got {channels}")
    groups = min(32, channels // 4)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=eps)


def _zero(module: nn.Module) -> nn.Module:
    """Set the weights and biases of ``module`` to zero (a residual branch that starts as the identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _resample(x: Tensor, resample: str | None) -> Tensor:
    """2× down-sampling by 2×2 averaging, 2× nearest-neighbour up-sampling, or nothing (``None``)."""
    if resample == "down":
        return F.avg_pool2d(x, 2)
    if resample == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return x


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of a continuous noise label: [cos(c·ω_k), sin(c·ω_k)], ω_k = max_positions^(−k/K).

    c_noise (B,) → (B, num_channels), K = num_channels / 2 frequencies (Vaswani et al. 2017, §3.5).
    """

    def __init__(self, num_channels: int, *, max_positions: int = 10000) -> None:
        super().__init__()
        if num_channels < 2 or num_channels % 2:
            raise ValueError(f"num_channels must be even and >= 2, got {num_channels}")
        half = num_channels // 2
        freqs = torch.exp(-math.log(max_positions) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c_noise: Tensor) -> Tensor:
        arg = c_noise.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features [cos(2π c f_k), sin(2π c f_k)], f_k ~ N(0, scale²) fixed at construction.

    c_noise (B,) → (B, num_channels). The frequencies are a saved buffer, drawn from the global torch RNG like
    every other initial weight (the trainer seeds it).
    """

    def __init__(self, num_channels: int, *, scale: float = 16.0) -> None:
        super().__init__()
        if num_channels < 2 or num_channels % 2:
            raise ValueError(f"num_channels must be even and >= 2, got {num_channels}")
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, c_noise: Tensor) -> Tensor:
        arg = (2 * math.pi) * c_noise.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


class UNetBlock(nn.Module):
    """Residual block with optional self-attention; (B, in_channels, H, W) → (B, out_channels, H', W').

    H' = H/2 with ``resample="down"``, 2H with ``"up"``. ``emb`` (B, emb_channels) is the noise embedding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        emb_channels: int,  # width of the noise embedding
        resample: str | None = None,  # "down", "up" or None
        attention: bool = False,  # self-attention after the residual branch
        channels_per_head: int | None = None,  # attention head width; None: one head
        dropout: float = 0.0,  # dropout probability before the second convolution
        skip_scale: float = 1.0,  # output scale: 1/√2 in DDPM++, 1 in ADM
        adaptive_scale: bool = False,  # ADM scale-shift norm instead of an added embedding
        takes_skip: bool = False,  # decoder block: the caller concatenates an encoder skip to its input
    ) -> None:
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be 'down', 'up' or None, got {resample!r}")
        self.resample = resample
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale
        self.takes_skip = takes_skip
        self.norm0 = group_norm(in_channels)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.affine = nn.Linear(emb_channels, out_channels * (2 if adaptive_scale else 1))
        self.norm1 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.num_heads = 0
        if attention:
            head = out_channels if channels_per_head is None else channels_per_head
            if out_channels % head:
                raise ValueError(f"{out_channels} channels do not split into heads of {head}")
            self.num_heads = out_channels // head
            self.norm2 = group_norm(out_channels)
            self.qkv = nn.Conv2d(out_channels, 3 * out_channels, 1)
            self.proj = _zero(nn.Conv2d(out_channels, out_channels, 1))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv0(_resample(F.silu(self.norm0(x)), self.resample))
        params = self.affine(emb)[:, :, None, None].to(h.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))  # ADM: norm(h)·(1 + s) + b
        else:
            h = F.silu(self.norm1(h + params))
        h = self.conv1(self.dropout(h))
        s = _resample(x, self.resample)
        if self.skip is not None:
            s = self.skip(s)
        x = (h + s) * self.skip_scale
        if self.num_heads:
            x = (x + self.proj(self._attend(self.norm2(x)))) * self.skip_scale
        return x

    def _attend(self, x: Tensor) -> Tensor:
        """Multi-head scaled dot-product self-attention over the H·W positions (Vaswani et al. 2017)."""
        b, c, height, width = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.num_heads, c // self.num_heads, height * width).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return out.transpose(-1, -2).reshape(b, c, height, width)


class _UNetBase(nn.Module):
    """Forward pass shared by the UNets: noise mapping, encoder with skips, decoder, output layer."""

    map_noise: nn.Module
    map_layer0: nn.Linear
    map_layer1: nn.Linear
    conv_in: nn.Conv2d
    enc: nn.ModuleList
    dec: nn.ModuleList
    norm_out: nn.GroupNorm
    conv_out: nn.Conv2d
    levels: int

    def forward(self, x: Tensor, noise_labels: Tensor) -> Tensor:
        """x: (B, in_channels, H, W) with H and W divisible by 2^(levels−1); noise_labels: (B,) c_noise."""
        factor = 2 ** (self.levels - 1)
        if x.ndim != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"input must be (B, C, H, W) with H, W divisible by {factor}, got {tuple(x.shape)}"
            )
        emb = F.silu(self.map_layer0(self.map_noise(noise_labels.reshape(-1).expand(x.shape[0]))))
        emb = F.silu(self.map_layer1(emb))
        x = self.conv_in(x)
        skips = [x]
        for block in self.enc:
            x = block(x, emb)
            skips.append(x)
        for block in self.dec:
            if block.takes_skip:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.conv_out(F.silu(self.norm_out(x)))

    def _build(
        self,
        *,
        img_resolution: int,
        model_channels: int,
        channel_mult: Sequence[int],
        num_blocks: int,
        attn_resolutions: Sequence[int],
        bottleneck_attention: bool,
        block_kwargs: dict,
    ) -> int:
        """Build the encoder and decoder block lists; return the decoder's output width."""
        self.levels = len(channel_mult)
        self.enc, self.dec = nn.ModuleList(), nn.ModuleList()
        cout = model_channels
        skip_widths = [cout]
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level > 0:
                self.enc.append(UNetBlock(cout, cout, resample="down", **block_kwargs))
                skip_widths.append(cout)
            for _ in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc.append(UNetBlock(cin, cout, attention=res in attn_resolutions, **block_kwargs))
                skip_widths.append(cout)
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:  # bottleneck: one block with attention, one without
                self.dec.append(UNetBlock(cout, cout, attention=bottleneck_attention, **block_kwargs))
                self.dec.append(UNetBlock(cout, cout, **block_kwargs))
            else:
                self.dec.append(UNetBlock(cout, cout, resample="up", **block_kwargs))
            for _ in range(num_blocks + 1):
                cin, cout = cout + skip_widths.pop(), model_channels * mult
                block = UNetBlock(
                    cin, cout, attention=res in attn_resolutions, takes_skip=True, **block_kwargs
                )
                self.dec.append(block)
        return cout


def _check_sizes(
    img_resolution: int, channel_mult: Sequence[int], num_blocks: int, model_channels: int, dropout: float
) -> None:
    """ValueError for sizes no UNet can be built with."""
    if not channel_mult or any(int(m) < 1 for m in channel_mult):
        raise ValueError(f"channel_mult must be a non-empty list of positive integers, got {channel_mult}")
    if img_resolution % 2 ** (len(channel_mult) - 1):
        raise ValueError(f"img_resolution {img_resolution} is not divisible by 2^{len(channel_mult) - 1}")
    if num_blocks < 1 or model_channels < 4:
        raise ValueError(f"need num_blocks >= 1 and model_channels >= 4, got {num_blocks}, {model_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


class SongUNet(_UNetBase):
    """DDPM++ UNet (Song et al. 2021, "config DDPM++" of Karras et al. 2022, Table 7): (B, C_in, H, W), (B,) →
    (B, C_out, H, W).

    Residual blocks with the noise embedding added before the second GroupNorm, skip scale 1/√2, single-head
    attention at ``attn_resolutions`` and at the bottleneck, 2×2-average down- and nearest up-sampling.
    """

    def __init__(
        self,
        *,
        img_resolution: int,  # image side [pixels] at which attn_resolutions are counted
        in_channels: int,  # network input channels: target + condition channels
        out_channels: int,  # network output channels: target channels
        model_channels: int = 128,  # width of the first level
        channel_mult: Sequence[int] = (2, 2, 2),  # width multiplier per level; one level per entry
        channel_mult_emb: int = 4,  # noise-embedding width as a multiple of model_channels
        channel_mult_noise: int = 1,  # noise-label embedding width as a multiple of model_channels
        num_blocks: int = 4,  # residual blocks per level (encoder; the decoder has one more)
        attn_resolutions: Sequence[int] = (16,),  # image sides [pixels] with self-attention
        dropout: float = 0.10,  # dropout probability in the residual blocks
        embedding_type: str = "positional",  # "positional" (DDPM++) or "fourier" (NCSN++)
    ) -> None:
        super().__init__()
        _check_sizes(img_resolution, channel_mult, num_blocks, model_channels, dropout)
        if embedding_type not in ("positional", "fourier"):
            raise ValueError(f"embedding_type must be 'positional' or 'fourier', got {embedding_type!r}")
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        embed = PositionalEmbedding if embedding_type == "positional" else FourierEmbedding
        self.map_noise = embed(noise_channels)
        self.map_layer0 = nn.Linear(noise_channels, emb_channels)
        self.map_layer1 = nn.Linear(emb_channels, emb_channels)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        block_kwargs = {
            "emb_channels": emb_channels,
            "dropout": dropout,
            "skip_scale": math.sqrt(0.5),
            "adaptive_scale": False,
            "channels_per_head": None,
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
