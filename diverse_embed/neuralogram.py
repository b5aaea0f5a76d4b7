"""MobileNet v1 over log-mel frames: the network behind the neuralogram branch.

The layer plan (one standard convolution, then 13 depthwise-separable blocks, 1024 channels at
the end, batch norm + ReLU after every convolution) follows YAMNet
(tensorflow/models research/audioset/yamnet, Apache-2.0); the code is written from its
description, not copied.

One change makes it give a sequence: YAMNet cuts the log-mel into 0.96-s patches and runs the
whole network on each, stride 32 in time and frequency. Here the network runs once over the
whole chunk, and the last down-samplings are in frequency only (`time_stride`). With the model's
25-ms log-mel frames and `time_stride` 16 (DiverseEmbedConfig's defaults) that yields one 1024-d
vector every 400 ms, 3 per 1-s chunk; each is the penultimate activation of the network, whose
receptive field (283 frames) spans the whole chunk. The same thing as sliding YAMNet-style windows
over the chunk, with the trunk shared between the overlapping windows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (output channels, stride) of the depthwise-separable blocks after the first convolution.
SEPARABLE_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
FIRST_CHANNELS = 32


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: tuple[int, int], groups: int = 1):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    """log-mel (batch, frames, n_mels) -> embeddings (batch, frames / time_stride, 1024), rounded up."""

    def __init__(self, time_stride: int, width: float = 1.0):
        super().__init__()
        time_downsamplings = int(math.log2(time_stride))
        if 2**time_downsamplings != time_stride or time_downsamplings > 5:
            raise ValueError(f"time_stride must be a power of two up to 32, got {time_stride}")
        channels = max(8, int(FIRST_CHANNELS * width))
        layers = [conv_bn_relu(1, channels, 3, stride=(2, 2))]
        time_downsamplings -= 1
        for out_channels, stride in SEPARABLE_BLOCKS:
            out_channels = max(8, int(out_channels * width))
            time = 1
            if stride == 2 and time_downsamplings > 0:
                time, time_downsamplings = 2, time_downsamplings - 1
            layers += [
                conv_bn_relu(channels, channels, 3, stride=(time, stride), groups=channels),  # depthwise
                conv_bn_relu(channels, out_channels, 1, stride=(1, 1)),  # pointwise
            ]
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_features = channels
        # Channels-last layout: oneDNN's depthwise and 1x1 convolutions run faster on CPU in it. Every
        # weight here is 1x1 or has one input channel, so checkpoints are the same bytes either way.
        self.to(memory_format=torch.channels_last)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        x = log_mel.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, frames, n_mels)
        for layer in self.layers:
            conv, batch_norm, _ = layer
            if batch_norm.training:  # batch statistics: the layer as it is
                x = layer(x)
            else:
                x = F.conv2d(
                    x, *folded_weights(conv, batch_norm), conv.stride, conv.padding, conv.dilation, conv.groups
                )
                x = x.relu_()
        return x.mean(dim=3).transpose(1, 2)  # (B, time, 1024)  (x was (B, 1024, time, freq))


def folded_weights(conv: nn.Conv2d, batch_norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one convolution that does conv then batch_norm with its running statistics.

    At inference batch norm is a per-channel affine map, so it folds into the convolution before
    it: one pass over the activations instead of two. Folded at every call rather than once: it is
    cheap, no copy of the weights can go stale, and gradients still reach the real weights
    (torch.nn.utils.fusion.fuse_conv_bn_weights returns new leaf Parameters, cut off from them).
    """
    scale = batch_norm.weight * torch.rsqrt(batch_norm.running_var + batch_norm.eps)  # (out_channels,)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = batch_norm.bias - batch_norm.running_mean * scale
    return weight, bias
