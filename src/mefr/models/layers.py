"""Group-aware layers: one module holds G independent copies of a layer.

mefr trains many small, independent models at once (folds x seeds). Every layer here
stores the parameters of ``num_models`` copies stacked *model-major*, so that any
parameter or buffer ``p`` of a network built from these layers can be viewed as
``p.view(G, -1)``: row ``g`` is model ``g``. That one rule is what lets the engine
mask, copy, extract and save single models without knowing the architecture.

Two activation layouts are used:

* convolutional stage, "packed": ``(B, G * C, H, W)``; a grouped convolution with
  ``groups = G`` applies each model's kernels to its own channels only;
* dense stage: ``(G, B, F)``; a batched matrix product applies each model's weights.

With ``G = 1`` these are ordinary ``Conv2d`` / ``Linear`` layers. Parameters are
initialised as the Keras original was (Glorot-uniform weights, zero biases), one model
at a time from its own generator, so a model's initial weights do not depend on which
group it is trained in.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn


def glorot_limit(fan_in: int, fan_out: int) -> float:
    """Bound of the Glorot (Xavier) uniform distribution: sqrt(6 / (fan_in + fan_out))."""
    return math.sqrt(6.0 / (fan_in + fan_out))


def torch_default_limit(fan_in: int) -> float:
    """Bound of PyTorch's default ``Linear`` / ``Conv2d`` initialisation (Kaiming-uniform
    with a = sqrt(5) for weights, the same bound for biases): 1 / sqrt(fan_in)."""
    return 1.0 / math.sqrt(fan_in)


#: Initialisation schemes of the group layers: ``glorot`` (Keras: Glorot-uniform
#: weights, zero biases) and ``torch`` (PyTorch's defaults, for networks whose
#: reference code is PyTorch).
INIT_SCHEMES = ("glorot", "torch")


def _uniform_(t: torch.Tensor, limit: float, generator: torch.Generator) -> None:
    t.copy_(torch.rand(t.shape, generator=generator, device=t.device) * (2 * limit) - limit)


def _init_weight_bias(w: torch.Tensor, b: torch.Tensor, fan_in: int, fan_out: int,
                      scheme: str, generator: torch.Generator) -> None:
    with torch.no_grad():
        if scheme == "glorot":
            _uniform_(w, glorot_limit(fan_in, fan_out), generator)
            b.zero_()
        elif scheme == "torch":
            _uniform_(w, torch_default_limit(fan_in), generator)
            _uniform_(b, torch_default_limit(fan_in), generator)
        else:
            raise ValueError(f"unknown initialisation {scheme!r}; known: {INIT_SCHEMES}")


class GroupLinear(nn.Module):
    """``num_models`` independent dense layers ``in_features -> out_features``.

    ``weight`` is ``(G, in, out)`` and ``bias`` ``(G, 1, out)``; input ``(G, B, in)``.
    """

    def __init__(self, num_models: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.num_models = num_models
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_models, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(num_models, 1, out_features))

    def init_model(self, g: int, generator: torch.Generator, scheme: str = "glorot") -> None:
        """Initialise model ``g`` (``scheme``: see :data:`INIT_SCHEMES`)."""
        _init_weight_bias(self.weight[g], self.bias[g], self.in_features, self.out_features,
                          scheme, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


#: How :class:`GroupConv2d` computes: ``native`` (one grouped ``F.conv2d``, cuDNN on a
#: GPU) or ``matmul`` (:func:`grouped_conv2d_matmul`). Read from the environment variable
#: ``MEFR_GROUP_CONV`` when a layer is built, so that worker processes inherit it; an
#: experimental switch for the throughput benchmark (``--conv``), default ``native``.
GROUP_CONV_IMPLS = ("native", "matmul")


def group_conv_impl() -> str:
    """The implementation named by ``MEFR_GROUP_CONV`` (default ``native``)."""
    impl = os.environ.get("MEFR_GROUP_CONV", "native") or "native"
    if impl not in GROUP_CONV_IMPLS:
        raise ValueError(f"MEFR_GROUP_CONV={impl!r}: expected one of {GROUP_CONV_IMPLS}")
    return impl


def grouped_conv2d_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          groups: int, padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding, groups=groups)`` (stride 1) as one
    batched matrix product over the groups.

    Each group's input patches are unfolded to columns (a 1x1 kernel needs none) and
    multiplied by that group's ``(out, in * k * k)`` weight matrix; the batch of products
    runs as one kernel whatever the number of groups, where a grouped convolution with
    hundreds of groups of a few channels runs poorly on some back ends.

    >>> x, w = torch.randn(2, 6, 5, 5), torch.randn(9, 2, 3, 3)
    >>> y = grouped_conv2d_matmul(x, w, None, groups=3, padding=1)
    >>> torch.allclose(y, F.conv2d(x, w, padding=1, groups=3), atol=1e-5)
    True
    """
    b, _, h, w = x.shape
    out_total, cin, k, _ = weight.shape
    cout = out_total // groups
    h_out, w_out = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    if k == 1 and padding == 0:
        cols = x.reshape(b, groups, cin, h * w)
    else:
        cols = F.unfold(x, k, padding=padding).view(b, groups, cin * k * k, h_out * w_out)
    out = torch.einsum("gok,bgkl->bgol", weight.reshape(groups, cout, cin * k * k), cols)
    out = out.reshape(b, out_total, h_out, w_out)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class GroupConv2d(nn.Module):
    """``num_groups`` independent 2-D convolutions (stride 1, 'same' padding).

    Input and output are packed ``(B, num_groups * C, H, W)``. ``weight`` is
    ``(num_groups * out, in, k, k)``; each group is initialised as one Keras layer of
    its own (fan-in ``in * k * k``, fan-out ``out * k * k``). ``impl`` (default:
    :func:`group_conv_impl`) picks how it computes; both give the same result.
    """

    def __init__(
        self,
        num_groups: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int | None = None,
        impl: str | None = None,
    ) -> None:
        super().__init__()
        self.impl = group_conv_impl() if impl is None else impl
        if self.impl not in GROUP_CONV_IMPLS:
            raise ValueError(f"impl {self.impl!r}: expected one of {GROUP_CONV_IMPLS}")
        self.num_groups = num_groups
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2 if padding is None else padding
        k2 = kernel_size * kernel_size
        self.init_fan_out = out_channels * k2
        self.weight = nn.Parameter(
            torch.empty(num_groups * out_channels, in_channels, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(num_groups * out_channels))

    def init_group(self, group: int, generator: torch.Generator, scheme: str = "glorot"
                   ) -> None:
        """Initialise convolution group ``group`` (``scheme``: see :data:`INIT_SCHEMES`)."""
        k2 = self.kernel_size * self.kernel_size
        sl = slice(group * self.out_channels, (group + 1) * self.out_channels)
        _init_weight_bias(self.weight[sl], self.bias[sl], self.in_channels * k2,
                          self.init_fan_out, scheme, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "matmul":
            return grouped_conv2d_matmul(x, self.weight, self.bias, self.num_groups,
                                         self.padding)
        return F.conv2d(x, self.weight, self.bias, padding=self.padding, groups=self.num_groups)


class InceptionBlock(nn.Module):
    """Inception-v1 block (Szegedy et al.) with ``width`` filters per branch, ReLU.

    Branches: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool (stride 1) -> 1x1; 'same'
    padding, concatenated per group to ``4 * width`` channels. Packed layout
    ``(B, groups * C, H, W)`` in and out; the output is laid out channels-last in
    memory, which the CPU's convolution and pooling kernels run several times faster on.
    """

    def __init__(self, num_groups: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.width = width
        self.conv1 = GroupConv2d(num_groups, in_channels, width, 1)
        self.reduce3 = GroupConv2d(num_groups, in_channels, width, 1)
        self.conv3 = GroupConv2d(num_groups, width, width, 3)
        self.reduce5 = GroupConv2d(num_groups, in_channels, width, 1)
        self.conv5 = GroupConv2d(num_groups, width, width, 5)
        self.pool_proj = GroupConv2d(num_groups, in_channels, width, 1)

    @property
    def out_channels(self) -> int:
        return 4 * self.width

    def init_group(self, group: int, generator: torch.Generator) -> None:
        for conv in (self.conv1, self.reduce3, self.conv3, self.reduce5, self.conv5,
                     self.pool_proj):
            conv.init_group(group, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (
            F.relu(self.conv1(x)),
            F.relu(self.conv3(F.relu(self.reduce3(x)))),
            F.relu(self.conv5(F.relu(self.reduce5(x)))),
            F.relu(self.pool_proj(F.max_pool2d(x, 3, stride=1, padding=1))),
        )
        return concat_groups(branches, self.num_groups)


def concat_groups(parts: tuple[torch.Tensor, ...], num_groups: int) -> torch.Tensor:
    """Concatenate packed tensors ``(B, G * C_i, H, W)`` per group -> ``(B, G * sum C_i, H, W)``.

    Built in channels-last order (B, H, W, G, C), so no copy is needed to hand a
    channels-last tensor to the next convolution.
    """
    b, _, h, w = parts[0].shape
    nhwc = [p.permute(0, 2, 3, 1).reshape(b, h, w, num_groups, -1) for p in parts]
    out = torch.cat(nhwc, dim=-1).view(b, h, w, -1)
    return out.permute(0, 3, 1, 2)


class GroupBatchNorm2d(nn.Module):
    """Batch normalisation of packed ``(B, groups * C, H, W)`` activations.

    Statistics are per (group, channel), as separate BatchNorm2d layers would compute
    them. ``sample_weight`` ``(G, B)`` (0 for padding, 1 for real samples) keeps padded
    samples of a partial batch out of the statistics, so that a model trained in a
    group sees exactly the statistics it would see alone. Without ``sample_weight``
    (a batch with no padding) it is ``F.batch_norm``: biased variance to normalise,
    unbiased variance in the running estimate.
    """

    def __init__(self, num_models: int, channels_per_model: int, eps: float = 1e-5,
                 momentum: float = 0.1) -> None:
        super().__init__()
        self.num_models = num_models
        self.channels_per_model = channels_per_model
        self.eps = eps
        self.momentum = momentum
        c = num_models * channels_per_model
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def init_group(self, group: int, generator: torch.Generator) -> None:
        sl = slice(group * self.channels_per_model, (group + 1) * self.channels_per_model)
        with torch.no_grad():
            self.weight[sl].fill_(1.0)
            self.bias[sl].zero_()
            self.running_mean[sl].zero_()
            self.running_var[sl].fill_(1.0)

    def forward(self, x: torch.Tensor, sample_weight: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        if sample_weight is None:  # every sample real: the fused kernel, same statistics
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                True, self.momentum, self.eps)
        b, c, h, w = x.shape
        # (G, B) -> (B, G * C, 1, 1)
        wts = sample_weight.t().repeat_interleave(self.channels_per_model, dim=1)
        wts = wts.to(x.dtype).view(b, c, 1, 1)
        count = wts.sum(dim=0, keepdim=True) * (h * w)  # (1, C, 1, 1)
        mean = (x * wts).sum(dim=(0, 2, 3), keepdim=True) / count
        var = (((x - mean) ** 2) * wts).sum(dim=(0, 2, 3), keepdim=True) / count
        with torch.no_grad():
            n = count.view(-1)
            unbiased = var.view(-1) * n / (n - 1).clamp(min=1)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.view(-1))
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        xhat = (x - mean) / torch.sqrt(var + self.eps)
        return xhat * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)


def pack(x: torch.Tensor) -> torch.Tensor:
    """``(G, B, C, H, W)`` -> packed ``(B, G * C, H, W)``."""
    g, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, g * c, h, w)


def unpack_flat(x: torch.Tensor, num_models: int) -> torch.Tensor:
    """Packed ``(B, G * C, H, W)`` -> ``(G, B, C * H * W)`` (per-model flatten)."""
    b = x.shape[0]
    return x.reshape(b, num_models, -1).transpose(0, 1)


def _i64(c: int) -> int:
    """An unsigned 64-bit constant as the signed int64 with the same bits."""
    return c - (1 << 64) if c >= (1 << 63) else c


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def stateless_uniform(seeds: torch.Tensor, counter: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform [0, 1) numbers that depend only on (model seed, counter, position).

    ``seeds`` is int64 ``(G,)``; the result has shape ``(G, *shape)``. Used for dropout
    masks, so that the noise a model sees does not depend on which other models share
    its group (a SplitMix64-style integer hash, vectorised in torch).
    """
    n = math.prod(shape)
    pos = torch.arange(n, device=seeds.device, dtype=torch.int64)
    step = torch.tensor(counter, dtype=torch.int64, device=seeds.device)
    z = seeds.view(-1, 1) * _i64(0x632BE59BD9B4E019) + (step * _i64(0x9E3779B97F4A7C15) + pos)
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = (z ^ _shr(z, shift)) * _i64(mult)
    z = z ^ _shr(z, 31)
    u = _shr(z, 40).to(torch.float32) / float(1 << 24)
    return u.view(seeds.shape[0], *shape)


def group_dropout(x: torch.Tensor, p: float, seeds: torch.Tensor | None, counter: int,
                  training: bool) -> torch.Tensor:
    """Inverted dropout on ``(G, B, F)`` with per-model stateless masks.

    Without ``seeds`` (plain inference or ad-hoc use) it falls back to ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    if seeds is None:
        return F.dropout(x, p, training=True)
    keep = stateless_uniform(seeds, counter, tuple(x.shape[1:])) >= p
    return x * keep.to(x.dtype) / (1.0 - p)
