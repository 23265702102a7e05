"""LSRCNN family: conv encoder, a recurrent (or convolutional) body, sub-pixel decoder.

The network works on the Y channel scaled to [0, 1] and predicts the residual
over a MATLAB-bicubic upscale of its input (the global skip), so an untrained
decoder starts near the bicubic baseline. The residual is scaled (EDSR's residual
scaling, 0.1 by default): unscaled, a fresh decoder's output is as large as the
residual it must learn, and the default's 375-step trainings spent their steps
escaping that noise (lsrcnn, 6 seeds: +0.22 +- 0.15 dB over bicubic on the held-out
images, one seed +0.02; scaled by 0.1: +0.76 +- 0.01, in the same steps).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from pipeline.imaging.resize import resize_matrix


def bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-bicubic upscale of (B, C, H, W), as two matrix products on x's device."""
    h, w = x.shape[-2:]
    rows = resize_matrix(h, h * scale, scale, dtype=x.dtype, device=x.device)
    cols = resize_matrix(w, w * scale, scale, dtype=x.dtype, device=x.device)
    return rows @ x @ cols.T


class BiSweep(nn.Module):
    """A bidirectional LSTM run along every row (axis='rows') or column of a feature map."""

    def __init__(self, c_in: int, hidden: int, axis: str):
        super().__init__()
        self.lstm = nn.LSTM(c_in, hidden, batch_first=True, bidirectional=True)
        self.axis = axis

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        if self.axis == "rows":
            seq = f.permute(0, 2, 3, 1).reshape(b * h, w, c)
            out, _ = self.lstm(seq)
            return out.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        seq = f.permute(0, 3, 2, 1).reshape(b * w, h, c)
        out, _ = self.lstm(seq)
        return out.reshape(b, w, h, -1).permute(0, 3, 2, 1)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global pooling -> bottleneck -> per-channel gate."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, max(channels // reduction, 1), 1), nn.ReLU(),
            nn.Conv2d(max(channels // reduction, 1), channels, 1), nn.Sigmoid(),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * self.gate(f)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: channel mean and max -> 7x7 conv -> per-pixel gate."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([f.mean(dim=1, keepdim=True), f.amax(dim=1, keepdim=True)], dim=1)
        return f * torch.sigmoid(self.conv(pooled))


def _attention(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "channel":
        return ChannelAttention(channels)
    if kind == "spatial":
        return SpatialAttention()
    if kind == "mixed":
        return nn.Sequential(ChannelAttention(channels), SpatialAttention())
    raise ValueError(f"attention must be none, channel, spatial or mixed; got {kind!r}")


class SRNet(nn.Module):
    """Encoder (3 x Conv3x3 + LeakyReLU 0.05) -> body -> attention -> PixelShuffle decoder, + bicubic skip.

    ``body='lstm'`` is LSRCNN: two bidirectional LSTM layers sweeping rows then
    columns. ``body='conv'`` is the ablation: two 3x3 convolutions of the same
    widths in place of the LSTMs. ``ablate_body`` zeroes the body's output, so
    only the decoder's bias is left over the bicubic skip: what the body buys.
    ``residual_scale`` is a buffer, so it travels with the weights: an export from before it existed (trained
    unscaled) loads with 1.
    """

    def __init__(self, scale: int, channels: int = 1, body: str = "lstm", features: int = 64,
                 hidden: int = 64, attention: str = "none", ablate_body: bool = False, residual_scale: float = 0.1):
        super().__init__()
        act = nn.LeakyReLU(0.05)
        self.scale, self.ablate_body = scale, ablate_body
        self.register_buffer("residual_scale", torch.tensor(float(residual_scale)))
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, features, 3, padding=1), act,
            nn.Conv2d(features, features, 3, padding=1), act,
            nn.Conv2d(features, features, 3, padding=1), act,
        )
        width = 2 * hidden
        if body == "lstm":
            self.body = nn.Sequential(BiSweep(features, hidden, "rows"), BiSweep(width, hidden, "cols"))
        elif body == "conv":
            self.body = nn.Sequential(nn.Conv2d(features, width, 3, padding=1), act,
                                      nn.Conv2d(width, width, 3, padding=1), act)
        else:
            raise ValueError(f"body must be 'lstm' or 'conv', got {body!r}")
        self.attention = _attention(attention, width)
        self.decoder = nn.Sequential(nn.Conv2d(width, channels * scale * scale, 3, padding=1),
                                     nn.PixelShuffle(scale))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        f = self.body(self.encoder(lr))
        if self.ablate_body:
            f = torch.zeros_like(f)
        f = self.attention(f)
        return bicubic_upscale(lr, self.scale) + self.residual_scale * self.decoder(f)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "residual_scale", torch.tensor(1.0))  # exported before the scaling
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


NETWORKS = {"lsrcnn": functools.partial(SRNet, body="lstm"), "cnn_sr": functools.partial(SRNet, body="conv")}
