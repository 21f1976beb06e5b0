"""The two-stream Inception backbone: expression-shared feature learning (Section 3.1).

One stream for the horizontal flow u and one for the vertical flow v, each
``Inception(6) -> 2x2 max-pool -> Inception(16) -> 2x2 max-pool -> flatten`` with its own
weights ("the number of filters in the first and second layers is set at 6 and 16",
after LeNet). The two flattened maps are concatenated (6272 values for 28x28 inputs).
Streams are computed as extra convolution groups: a group of G models with S streams
is one stack of grouped convolutions with G * S groups.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mefr.models.layers import InceptionBlock, pack, unpack_flat


class TwoStreamInception(nn.Module):
    """``num_streams`` single-channel streams of two Inception blocks each.

    Input ``(G, B, S, H, W)``; output ``(G, B, S * 4 * widths[1] * (H/4) * (W/4))``.
    """

    def __init__(
        self,
        num_models: int = 1,
        num_streams: int = 2,
        widths: tuple[int, int] = (6, 16),
        input_size: int = 28,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.num_models = num_models
        self.channels_last = channels_last
        self.num_streams = num_streams
        groups = num_models * num_streams
        self.block1 = InceptionBlock(groups, 1, widths[0])
        self.block2 = InceptionBlock(groups, self.block1.out_channels, widths[1])
        side = input_size // 4
        self.out_features = num_streams * self.block2.out_channels * side * side

    def init_model(self, g: int, generator: torch.Generator) -> None:
        for s in range(self.num_streams):
            group = g * self.num_streams + s
            self.block1.init_group(group, generator)
            self.block2.init_group(group, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, G*S, H, W): one channel per (model, stream)
        h = pack(x)
        if self.channels_last:  # 2-4x faster convolutions and pooling on CPUs
            h = h.contiguous(memory_format=torch.channels_last)
        h = F.max_pool2d(self.block1(h), 2)
        h = F.max_pool2d(self.block2(h), 2)
        return unpack_flat(h, self.num_models)
