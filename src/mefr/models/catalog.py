"""The tables of known models and the :func:`register` decorator that fills them.

Each network registers itself beside its class (``@register("fr", ...)`` in
:mod:`mefr.models.fr`); one class may be registered under several names with different
fixed constructor arguments (FR and its ablations). :mod:`mefr.models.registry` builds
models from these tables; this module imports nothing but :mod:`mefr.models.base`, so
the network modules can use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mefr.models.base import GroupNet

Net = TypeVar("Net", bound=type[GroupNet])


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: its class, fixed constructor arguments and input needs.

    ``channels`` are the feature channels the network reads, in order; ``apex_policy``
    is the apex choice its ablation stands for (Dual-Inception: the middle frame);
    ``descriptor`` what preprocessing makes of a clip for it (see
    :class:`mefr.preprocess.settings.PreprocessSettings`). A hand-crafted baseline has no
    class (``cls=None``); ``kwargs`` are its settings. ``display`` is the name tables
    and figures print; ``uses_dropout`` whether the training setting ``dropout``
    (:class:`mefr.train.config.TrainConfig`) reaches the constructor (Basic Inception's
    head has no dropout in the paper, Table 1(a)).
    """

    cls: type[GroupNet] | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = ("u", "v")
    apex_policy: str = "annotated"
    description: str = ""
    descriptor: str = "flow"
    display: str = ""
    uses_dropout: bool = True
    name: str = ""


#: The networks by registry name, in registration order.
MODELS: dict[str, ModelEntry] = {}

#: Baselines without a network, trained with scikit-learn by
#: :func:`mefr.train.handcrafted.train_handcrafted` (the engine hands them over).
HANDCRAFTED: dict[str, ModelEntry] = {}


def add_entry(entry: ModelEntry) -> ModelEntry:
    """Put ``entry`` in :data:`MODELS` (a network) or :data:`HANDCRAFTED` (``cls=None``).

    A name may be registered once; registering the same name again is an error.
    """
    if not entry.name:
        raise ValueError("a registered model needs a name")
    if entry.name in MODELS or entry.name in HANDCRAFTED:
        raise ValueError(f"model {entry.name!r} is already registered")
    (HANDCRAFTED if entry.cls is None else MODELS)[entry.name] = entry
    return entry


def register(
    name: str,
    *,
    display: str,
    description: str,
    kwargs: dict[str, Any] | None = None,
    channels: tuple[str, ...] = ("u", "v"),
    apex_policy: str = "annotated",
    descriptor: str = "flow",
    uses_dropout: bool = True,
) -> Callable[[Net], Net]:
    """Class decorator: register the network class under ``name``.

    ``kwargs`` are fixed constructor arguments of this name (``attention="fc"`` makes
    FR-fc); the other fields are those of :class:`ModelEntry`. Stack several decorators
    to register one class under several names.
    """

    def decorate(cls: Net) -> Net:
        add_entry(ModelEntry(cls, dict(kwargs or {}), tuple(channels), apex_policy,
                             description, descriptor, display, uses_dropout, name))
        return cls

    return decorate
