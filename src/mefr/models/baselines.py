"""Deep baselines of the paper's Table 2 whose designs are public and small.

Both are read from their papers' descriptions (layer sizes below); they are written
with the same group-aware layers as FR, so they train in the same engine.

* :class:`OffApexNet` (Gan et al., 2019): two streams (u, v), each
  ``Conv 5x5 (6) -> 2x2 max-pool -> Conv 5x5 (16) -> 2x2 max-pool``, concatenated,
  ``Dense 1024 -> Dense 1024 -> Dense K`` (ReLU between).
* :class:`STSTNet` (Liong et al., 2019): the three-channel input (u, v, optical
  strain) read by three parallel ``Conv 3x3`` layers of 3, 5 and 8 filters (ReLU,
  batch normalisation, 3x3 max-pool with stride 3, dropout), concatenated, 2x2
  average-pool (16 x 5 x 5 = 400 values for 28x28 inputs) and one ``Dense 400 -> K``.
  Where the paper is silent, the authors' public PyTorch code decides: convolution
  padding 2 (30x30 maps), dropout 0.5 on each stream after the max-pool, and
  PyTorch's default initialisation instead of Glorot's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mefr.models.base import GroupNet, ModelOutput
from mefr.models.catalog import register
from mefr.models.layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupLinear,
    group_dropout,
    pack,
    unpack_flat,
)


@register("off_apexnet", display="OFF-ApexNet", description="OFF-ApexNet (Gan et al. 2019)")
class OffApexNet(GroupNet):
    """OFF-ApexNet: a two-stream LeNet-like CNN on the apex optical flow."""

    def __init__(
        self,
        num_classes: int = 3,
        num_models: int = 1,
        in_channels: int = 2,
        input_size: int = 28,
        filters: tuple[int, int] = (6, 16),
        kernel_size: int = 5,
        hidden: int = 1024,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_models)
        groups = num_models * in_channels
        self.in_channels = in_channels
        self.dropout = dropout
        self.conv1 = GroupConv2d(groups, 1, filters[0], kernel_size)
        self.conv2 = GroupConv2d(groups, filters[0], filters[1], kernel_size)
        side = input_size // 4
        flat = in_channels * filters[1] * side * side
        self.fc1 = GroupLinear(num_models, flat, hidden)
        self.fc2 = GroupLinear(num_models, hidden, hidden)
        self.head = GroupLinear(num_models, hidden, num_classes)

    def init_model(self, g: int, generator: torch.Generator) -> None:
        for s in range(self.in_channels):
            self.conv1.init_group(g * self.in_channels + s, generator)
            self.conv2.init_group(g * self.in_channels + s, generator)
        for layer in (self.fc1, self.fc2, self.head):
            layer.init_model(g, generator)

    def forward_group(self, x: torch.Tensor, sample_weight: torch.Tensor | None) -> ModelOutput:
        h = F.max_pool2d(F.relu(self.conv1(pack(x))), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        shared = unpack_flat(h, self.num_models)
        h = F.relu(self.fc1(shared))
        h = F.relu(self.fc2(h))
        h = group_dropout(h, self.dropout, self._noise_seeds, self._noise_counter, self.training)
        return ModelOutput(self.head(h), None, shared, None)


@register("ststnet", display="STSTNet", channels=("u", "v", "strain"),
          description="STSTNet (Liong et al. 2019)")
class STSTNet(GroupNet):
    """STSTNet: shallow triple-stream CNN on (u, v, optical strain)."""

    def __init__(
        self,
        num_classes: int = 3,
        num_models: int = 1,
        in_channels: int = 3,
        input_size: int = 28,
        filters: tuple[int, int, int] = (3, 5, 8),
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_models)
        self.filters = tuple(filters)
        self.dropout = dropout
        self.convs = torch.nn.ModuleList(
            GroupConv2d(num_models, in_channels, f, 3, padding=2) for f in self.filters
        )
        self.norms = torch.nn.ModuleList(GroupBatchNorm2d(num_models, f) for f in self.filters)
        conv_side = input_size + 2  # 3x3 kernel, padding 2
        pooled = (conv_side + 2 - 3) // 3 + 1  # max-pool 3, stride 3, padding 1
        self.head = GroupLinear(num_models, sum(self.filters) * (pooled // 2) ** 2, num_classes)

    def init_model(self, g: int, generator: torch.Generator) -> None:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.init_group(g, generator, scheme="torch")
            norm.init_group(g, generator)
        self.head.init_model(g, generator, scheme="torch")

    def forward_group(self, x: torch.Tensor, sample_weight: torch.Tensor | None) -> ModelOutput:
        g = self.num_models
        packed = pack(x)
        b = packed.shape[0]
        streams = []
        for conv, norm, f in zip(self.convs, self.norms, self.filters, strict=True):
            h = norm(F.relu(conv(packed)), sample_weight)
            h = F.max_pool2d(h, 3, stride=3, padding=1)
            streams.append(h.view(b, g, f, *h.shape[-2:]))
        side = streams[0].shape[-1]
        h = torch.cat(streams, dim=2)  # (B, G, 16, side, side)
        # dropout on every stream's pooled map (one mask over the concatenation: the
        # same independent per-element draws as one dropout layer per stream)
        h = group_dropout(h.transpose(0, 1).reshape(g, b, -1), self.dropout,
                          self._noise_seeds, self._noise_counter, self.training)
        h = pack(h.view(g, b, sum(self.filters), side, side))
        shared = unpack_flat(F.avg_pool2d(h, 2), g)
        return ModelOutput(self.head(shared), None, shared, None)
