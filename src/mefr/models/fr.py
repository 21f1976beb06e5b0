"""Feature Refinement (FR) and its ablations (Section 3, Table 1).

* :class:`BasicInception` - the two-stream backbone with a dense classifier
  (``Dense 6272->1024 + ReLU, Dense 1024->K``). Dual-Inception is the same network fed
  with flow computed to the middle frame instead of the apex.
* :class:`FeatureRefinement` - the backbone, the expression-shared feature
  ``z = ReLU(Dense(.))``, an expression proposal module of K sub-branches (attention
  unit, Eqs. (2)-(3), and detector, Eq. (4)), fusion (Eq. (6)) and the classifier
  (``Dense 1024->256 + ReLU + Dropout(0.5), Dense 256->K``, Eq. (7)). Options give the
  ablations: ``attention="fc"`` (FR-fc), ``fusion="concat"`` (FR-concatenated).

Layer sizes follow shared/docs/architecture.md (pinned by the parameter counts of the
paper's Table 7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mefr.models.backbone import TwoStreamInception
from mefr.models.base import GroupNet, ModelOutput
from mefr.models.catalog import register
from mefr.models.layers import GroupLinear, group_dropout


@register("fr", display="FR", description="FR: softmax attention, sum fusion")
class FeatureRefinement(GroupNet):
    """FR: expression-shared -> expression-specific -> expression-refined features.

    Parameters
    ----------
    num_classes : K, the number of classes and of proposal sub-branches.
    attention : ``"softmax"`` (FR, Eqs. (2)-(3) read literally: ``a_k =
        softmax(Dense_k(z))`` over the d features, ``z_k* = a_k * z``), ``"branch_softmax"``
        (the other reading of Eq. (2)'s ``softmax_k``: for each feature, a softmax across
        the K branches, so ``sum_k a_k = 1`` and ``a_k * z`` starts near ``z / K`` rather
        than ``z / d``) or ``"fc"`` (FR-fc: ``z_k* = ReLU(Dense_k(z))``).
    fusion : ``"sum"`` (Eq. (6): ``z' = sum_k z_k*``) or ``"concat"`` (FR-concatenated).
    channels_last : lay convolution activations out channels-last in memory (faster on
        CPUs; the arithmetic is the same).
    detector_units : 1 (a sigmoid unit per detector, as the text describes) or 2 (a
        two-way softmax, which matches Table 7's per-class parameter step). Either way
        ``detector_logits[..., k]`` is the logit of "class k".
    """

    def __init__(
        self,
        num_classes: int = 3,
        num_models: int = 1,
        in_channels: int = 2,
        input_size: int = 28,
        widths: tuple[int, int] = (6, 16),
        shared_dim: int = 1024,
        detector_hidden: int = 128,
        detector_units: int = 1,
        classifier_hidden: int = 256,
        dropout: float = 0.5,
        attention: str = "softmax",
        fusion: str = "sum",
        channels_last: bool = True,
    ) -> None:
        if attention not in ("softmax", "branch_softmax", "fc"):
            raise ValueError(
                f"attention must be 'softmax', 'branch_softmax' or 'fc', got {attention!r}")
        if fusion not in ("sum", "concat"):
            raise ValueError(f"fusion must be 'sum' or 'concat', got {fusion!r}")
        if detector_units not in (1, 2):
            raise ValueError(f"detector_units must be 1 or 2, got {detector_units!r}")
        super().__init__(num_models)
        k, d = num_classes, shared_dim
        self.num_classes = k
        self.shared_dim = d
        self.attention = attention
        self.fusion = fusion
        self.dropout = dropout
        self.detector_units = detector_units
        self.backbone = TwoStreamInception(num_models, in_channels, tuple(widths), input_size,
                                           channels_last)
        self.shared = GroupLinear(num_models, self.backbone.out_features, d)
        # K attention units (or FR-fc layers), one batched product: (G, d, K*d).
        self.units = GroupLinear(num_models, d, k * d)
        # K detectors: Dense d->hidden + ReLU, Dense hidden->units; model-major (G*K).
        self.det_hidden = GroupLinear(num_models * k, d, detector_hidden)
        self.det_out = GroupLinear(num_models * k, detector_hidden, detector_units)
        fused = d if fusion == "sum" else k * d
        self.cls_hidden = GroupLinear(num_models, fused, classifier_hidden)
        self.cls_out = GroupLinear(num_models, classifier_hidden, k)

    def init_model(self, g: int, generator: torch.Generator) -> None:
        k, d = self.num_classes, self.shared_dim
        self.backbone.init_model(g, generator)
        self.shared.init_model(g, generator)
        lim = (6.0 / (d + d)) ** 0.5  # each unit is its own Dense d->d layer
        with torch.no_grad():
            w = self.units.weight[g]
            w.copy_(torch.rand(w.shape, generator=generator, device=w.device) * (2 * lim) - lim)
            self.units.bias[g].zero_()
        for j in range(k):
            self.det_hidden.init_model(g * k + j, generator)
            self.det_out.init_model(g * k + j, generator)
        self.cls_hidden.init_model(g, generator)
        self.cls_out.init_model(g, generator)

    def proposals(self, z: torch.Tensor) -> torch.Tensor:
        """Expression-specific features ``z_k*``, ``(G, B, K, d)`` (Eqs. (2)-(3))."""
        g, b, d = z.shape
        u = self.units(z).view(g, b, self.num_classes, d)
        if self.attention == "softmax":  # over the d features of each branch
            return torch.softmax(u, dim=-1) * z.unsqueeze(2)
        if self.attention == "branch_softmax":  # over the K branches of each feature
            return torch.softmax(u, dim=2) * z.unsqueeze(2)
        return F.relu(u)

    def detect(self, zk: torch.Tensor) -> torch.Tensor:
        """Detector logits ``(G, B, K)``: logit of p(y_k) in Eq. (4) for each class k."""
        g, b, k, d = zk.shape
        h = zk.permute(0, 2, 1, 3).reshape(g * k, b, d)
        out = self.det_out(F.relu(self.det_hidden(h)))  # (G*K, B, units)
        if self.detector_units == 2:  # log-odds of the "class k" unit of a 2-way softmax
            out = out[..., 1:2] - out[..., 0:1]
        return out.view(g, k, b).transpose(1, 2)

    def fuse(self, zk: torch.Tensor) -> torch.Tensor:
        """Expression-refined feature z' (Eq. (6)), or the concatenation for FR-concat."""
        if self.fusion == "sum":
            return zk.sum(dim=2)
        g, b, k, d = zk.shape
        return zk.reshape(g, b, k * d)

    def forward_group(self, x: torch.Tensor, sample_weight: torch.Tensor | None) -> ModelOutput:
        feats = self.backbone(x)
        z = F.relu(self.shared(feats))
        zk = self.proposals(z)
        det = self.detect(zk)
        refined = self.fuse(zk)
        h = F.relu(self.cls_hidden(refined))
        h = group_dropout(h, self.dropout, self._noise_seeds, self._noise_counter, self.training)
        return ModelOutput(self.cls_out(h), det, z, refined)

register("fr_branch_softmax", kwargs={"attention": "branch_softmax"},
         display="FR (branch softmax)",
         description="FR, Eq. (2)'s softmax taken across the K branches (a labelled variant)",
         )(FeatureRefinement)
register("fr_fc", kwargs={"attention": "fc"}, display="FR-fc",
         description="FR-fc: dense sub-branches instead of attention")(FeatureRefinement)
register("fr_concat", kwargs={"fusion": "concat"}, display="FR-concatenated",
         description="FR-concatenated: K features concatenated")(FeatureRefinement)


@register("basic_inception", display="Basic Inception", uses_dropout=False,
          description="two-stream Inception + dense classifier")
class BasicInception(GroupNet):
    """Two-stream Inception + ``Dense(hidden) + ReLU + Dense(K)`` (Table 1(a))."""

    def __init__(
        self,
        num_classes: int = 3,
        num_models: int = 1,
        in_channels: int = 2,
        input_size: int = 28,
        widths: tuple[int, int] = (6, 16),
        hidden: int = 1024,
        dropout: float = 0.0,
        channels_last: bool = True,
    ) -> None:
        super().__init__(num_models)
        self.num_classes = num_classes
        self.dropout = dropout
        self.backbone = TwoStreamInception(num_models, in_channels, tuple(widths), input_size,
                                           channels_last)
        self.fc = GroupLinear(num_models, self.backbone.out_features, hidden)
        self.head = GroupLinear(num_models, hidden, num_classes)

    def init_model(self, g: int, generator: torch.Generator) -> None:
        self.backbone.init_model(g, generator)
        self.fc.init_model(g, generator)
        self.head.init_model(g, generator)

    def forward_group(self, x: torch.Tensor, sample_weight: torch.Tensor | None) -> ModelOutput:
        shared = self.backbone(x)
        h = F.relu(self.fc(shared))
        h = group_dropout(h, self.dropout, self._noise_seeds, self._noise_counter, self.training)
        return ModelOutput(self.head(h), None, shared, None)

register("dual_inception", display="Dual-Inception", apex_policy="middle", uses_dropout=False,
         description="Basic Inception on onset->middle-frame flow")(BasicInception)
