"""What every mefr network shares: a group of G models, seeded init, extraction, output."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn


class ModelOutput(NamedTuple):
    """Outputs of a network, each with a leading model axis G (dropped for 4-D input).

    logits : ``(G, B, K)`` class scores before the softmax of Eq. (7).
    detector_logits : ``(G, B, K)`` scores of the K one-vs-rest detectors of Eq. (4)
        (logit of "this sample is class k"), or None for networks without detectors.
    shared : the expression-shared feature (the backbone's concatenated streams for
        Basic Inception; z after the shared dense layer for FR).
    refined : the expression-refined feature z' of Eq. (6) (FR family), else None.
    """

    logits: torch.Tensor
    detector_logits: torch.Tensor | None
    shared: torch.Tensor
    refined: torch.Tensor | None


def _plain(value: Any) -> Any:
    """A recorded constructor argument in its canonical form: lists become tuples (a
    header read back from JSON gives lists), so a rebuilt model's config equals the
    original's."""
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _recording(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a network's ``__init__`` so that the outermost call records its bound
    arguments (defaults applied, ``self`` and ``num_models`` left out) in ``config``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: GroupNet, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self).__init__ is not wrapper:  # a subclass's __init__ records instead
            return
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        config: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                config.update({k: _plain(v) for k, v in value.items()})
            elif kind is not inspect.Parameter.VAR_POSITIONAL and name != "num_models":
                config[name] = _plain(value)
        self.config = config

    return wrapper


class GroupNet(nn.Module):
    """Base class: ``num_models`` independent networks with model-major parameters.

    Subclasses implement :meth:`init_model` (initialise model g from a generator) and
    :meth:`forward_group` (``(G, B, C, H, W)`` -> :class:`ModelOutput`) and call
    ``super().__init__(num_models)``. The arguments a subclass was constructed with are
    recorded in :attr:`config` (every parameter of its ``__init__`` except
    ``num_models``, defaults included), so that :meth:`extract` and the model file can
    rebuild the same network: ``type(net)(num_models=1, **net.config)``.
    """

    #: The constructor arguments of this network (set when its ``__init__`` returns).
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(self, num_models: int) -> None:
        super().__init__()
        self.num_models = num_models
        self.config = {}
        self._noise_seeds: torch.Tensor | None = None
        self._noise_counter = 0

    # -- initialisation ------------------------------------------------------------
    def init_model(self, g: int, generator: torch.Generator) -> None:
        raise NotImplementedError

    def init_models(self, seeds: list[int]) -> None:
        """Initialise model g from ``torch.Generator().manual_seed(seeds[g])``.

        The generator lives on the parameters' device, so a model's initial weights
        depend on its seed and device only, not on the group it belongs to.
        """
        if len(seeds) != self.num_models:
            raise ValueError(f"need {self.num_models} seeds, got {len(seeds)}")
        device = next(self.parameters()).device
        for g, s in enumerate(seeds):
            gen = torch.Generator(device=device)
            gen.manual_seed(int(s))
            self.init_model(g, gen)

    # -- stochasticity -------------------------------------------------------------
    def set_noise(self, seeds: torch.Tensor | None, counter: int = 0) -> None:
        """Per-model seeds (int64 ``(G,)``) and a step counter for dropout masks."""
        self._noise_seeds = seeds
        self._noise_counter = counter

    # -- forward -------------------------------------------------------------------
    def forward_group(self, x: torch.Tensor, sample_weight: torch.Tensor | None) -> ModelOutput:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sample_weight: torch.Tensor | None = None) -> ModelOutput:
        """``(G, B, C, H, W)`` -> outputs with a G axis; ``(B, C, H, W)`` when G = 1."""
        if x.dim() == 4:
            if self.num_models != 1:
                raise ValueError(f"a group of {self.num_models} models needs (G, B, C, H, W) input")
            out = self.forward_group(x.unsqueeze(0), sample_weight)
            return ModelOutput(*(None if t is None else t.squeeze(0) for t in out))
        if x.dim() != 5 or x.shape[0] != self.num_models:
            raise ValueError(
                f"expected input (G={self.num_models}, B, C, H, W), got {tuple(x.shape)}"
            )
        return self.forward_group(x, sample_weight)

    # -- single models -------------------------------------------------------------
    def extract(self, g: int) -> GroupNet:
        """A stand-alone copy (G = 1) of model ``g`` of this group."""
        single = type(self)(num_models=1, **self.config)
        single.to(next(self.parameters()).device)
        src = self.state_dict()
        dst = single.state_dict()
        with torch.no_grad():
            for name, t in dst.items():
                t.copy_(src[name].reshape(self.num_models, -1)[g].view_as(t))
        single.train(self.training)
        return single

    def clone(self) -> GroupNet:
        return copy.deepcopy(self)
