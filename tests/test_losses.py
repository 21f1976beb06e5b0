"""Eqs. (4), (5), (7), (8) against hand computation and closed-form gradients."""

import math

import torch

from mefr.models.base import ModelOutput
from mefr.train.losses import classification_loss, detection_loss, fr_loss, proposal_loss


def test_detection_loss_by_hand():
    # one model, two samples, K = 2; logits of "sample is class k"
    det = torch.tensor([[[2.0, -1.0], [0.5, 0.0]]])
    y = torch.tensor([[0, 1]])
    w = torch.ones(1, 2)
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    # detector 0: targets (1, 0); detector 1: targets (0, 1)
    d0 = -(math.log(sig(2.0)) + math.log(1 - sig(0.5))) / 2
    d1 = -(math.log(1 - sig(-1.0)) + math.log(sig(0.0))) / 2
    got = detection_loss(det, y, w)
    torch.testing.assert_close(got, torch.tensor([[d0, d1]]))
    torch.testing.assert_close(proposal_loss(det, y, w), torch.tensor([(d0 + d1) / 2]))


def test_classification_loss_by_hand_and_padding_ignored():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [9.0, 9.0, 9.0]]])
    y = torch.tensor([[1, 2, 0]])
    w = torch.tensor([[1.0, 1.0, 0.0]])  # third sample is padding
    def ce(row, t):
        return -(row[t] - math.log(sum(math.exp(v) for v in row)))
    expect = (ce([1, 2, 0], 1) + ce([0, 0, 3], 2)) / 2
    torch.testing.assert_close(classification_loss(logits, y, w), torch.tensor([expect]))


def test_fr_loss_by_hand_with_lambda_and_class_weights():
    # one model, two samples of classes 0 and 1, K = 2
    logits = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    det = torch.tensor([[[2.0, -1.0], [0.5, 0.0]]])
    y = torch.tensor([[0, 1]])
    w = torch.ones(1, 2)
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    ce0 = math.log(1 + math.exp(-1.0))  # -log softmax([1, 0])[0]
    ce1 = math.log(1 + math.exp(-2.0))  # -log softmax([0, 2])[1]
    bce = [-math.log(sig(2.0)), -math.log(1 - sig(-1.0)),  # sample 0: targets (1, 0)
           -math.log(1 - sig(0.5)), -math.log(sig(0.0))]   # sample 1: targets (0, 1)
    l_prop = sum(bce) / 4  # Eq. 5: mean over K = 2 detectors of Eq. 4's means over 2 samples
    out = ModelOutput(logits, det, torch.zeros(1), None)
    torch.testing.assert_close(fr_loss(out, y, w, 0.85),
                               torch.tensor([0.85 * l_prop + (ce0 + ce1) / 2]))
    torch.testing.assert_close(fr_loss(out, y, w, 0.0), torch.tensor([(ce0 + ce1) / 2]))
    cw = torch.tensor([[3.0, 0.5]])  # Keras class_weight: weighted sum over N samples
    torch.testing.assert_close(fr_loss(out, y, w, 0.85, cw),
                               torch.tensor([0.85 * l_prop + (3.0 * ce0 + 0.5 * ce1) / 2]))
    no_det = ModelOutput(logits, None, torch.zeros(1), None)
    torch.testing.assert_close(fr_loss(no_det, y, w, 0.85), torch.tensor([(ce0 + ce1) / 2]))


def test_fr_loss_gradient_matches_the_closed_form():
    """d/dz of softmax CE is (softmax - onehot) / N; of the mean BCE, (sigmoid - t) / (N K)."""
    torch.manual_seed(1)
    logits = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    det = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (1, 5))
    w = torch.tensor([[1.0, 1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)  # sample 3: padding
    loss = fr_loss(ModelOutput(logits, det, torch.zeros(1), None), y, w, 0.85).sum()
    g_logits, g_det = torch.autograd.grad(loss, (logits, det))
    onehot = torch.nn.functional.one_hot(y, 3).double()
    n, mask = 4.0, w.unsqueeze(-1)
    want_logits = (torch.softmax(logits, -1) - onehot) / n * mask
    want_det = 0.85 * (torch.sigmoid(det) - onehot) / (n * 3) * mask
    torch.testing.assert_close(g_logits, want_logits.detach())
    torch.testing.assert_close(g_det, want_det.detach())


def test_models_of_a_group_do_not_interact():
    """The loss of model 0 does not depend on model 1's outputs."""
    logits = torch.randn(2, 3, 3, requires_grad=True)
    y = torch.randint(0, 3, (2, 3))
    loss = classification_loss(logits, y, torch.ones(2, 3))
    (grad,) = torch.autograd.grad(loss[0], logits)
    assert torch.count_nonzero(grad[1]) == 0
