"""Networks: parameter counts pinned to architecture.md, group = stack of single models."""

import json

import pytest
import torch
import torch.nn.functional as F

from mefr.cli import main
from mefr.models.catalog import MODELS
from mefr.models.layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupLinear,
    concat_groups,
    stateless_uniform,
)
from mefr.models.registry import count_parameters, create_model

# Counts derived by hand in shared/docs/architecture.md (all within 1% of Table 7).
EXPECTED = {
    ("basic_inception", 3, None): 6_449_867,
    ("basic_inception", 4, None): 6_450_892,
    ("fr", 3, 1): 10_252_750,
    ("fr", 4, 1): 11_433_936,
    ("fr", 3, 2): 10_253_137,
    ("fr", 4, 2): 11_434_452,
}
TABLE7 = {("basic_inception", 3): 6.4803e6, ("basic_inception", 4): 6.4813e6,
          ("fr", 3): 10.2418e6, ("fr", 4): 11.4231e6}


@pytest.mark.parametrize(("name", "k", "units"), list(EXPECTED))
def test_parameter_counts_match_architecture(name, k, units):
    kw = {} if units is None else {"detector_units": units}
    with torch.device("meta"):
        model = create_model(name, k, **kw)
    n = count_parameters(model)
    assert n == EXPECTED[(name, k, units)]
    assert abs(n - TABLE7[(name, k)]) / TABLE7[(name, k)] < 0.01


def test_fr_parameter_formula_per_class():
    """backbone convs + 6,685,952 + 1,181,186 * K (architecture.md)."""
    with torch.device("meta"):
        for k in (3, 4, 5):
            fr = count_parameters(create_model("fr", k))
            basic = count_parameters(create_model("basic_inception", k))
            convs = basic - (6272 * 1024 + 1024) - (1024 * k + k)
            assert convs == 2 * (1284 + 10336)
            assert fr == convs + 6_685_952 + 1_181_186 * k


def test_models_json_lists_every_network(capsys):
    assert main(["models", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    names = {s["name"] for s in specs}
    assert names == set(MODELS)
    fr3 = [s for s in specs if s["name"] == "fr" and s["num_classes"] == 3]
    assert {s["detector_units"]: s["parameters"] for s in fr3} == {1: 10_252_750, 2: 10_253_137}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_group_equals_its_single_models(name):
    """Model g of a group computes what the extracted single model g computes."""
    torch.manual_seed(0)
    c = len(MODELS[name].channels)
    group = create_model(name, 3, num_models=3)
    group.init_models([11, 22, 33])
    group.eval()
    x = torch.randn(3, 5, c, 28, 28)
    out = group(x)
    assert out.logits.shape == (3, 5, 3)
    for g in range(3):
        single = group.extract(g).eval()
        ref = single(x[g])
        torch.testing.assert_close(out.logits[g], ref.logits, rtol=1e-5, atol=1e-5)
        if out.detector_logits is not None:
            torch.testing.assert_close(out.detector_logits[g], ref.detector_logits,
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel, padding", [(1, 0), (3, 1), (5, 2), (3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matmul_group_convolution_equals_one_convolution_per_group(kernel, padding,
                                                                    channels_last):
    """impl="matmul" gives, value and gradients, what an ordinary convolution of each
    group's channels with that group's kernels gives."""
    torch.manual_seed(0)
    groups, cin, cout = 3, 2, 4
    conv = GroupConv2d(groups, cin, cout, kernel, padding=padding, impl="matmul")
    with torch.no_grad():
        conv.weight.normal_()
        conv.bias.normal_()
    x = torch.randn(5, groups * cin, 7, 6, requires_grad=True)
    x_in = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    out = conv(x_in)
    grad_out = torch.randn_like(out)
    gx, gw, gb = torch.autograd.grad(out, (x, conv.weight, conv.bias), grad_out)

    w = conv.weight.detach().clone().requires_grad_(True)
    b = conv.bias.detach().clone().requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    ref = torch.cat([F.conv2d(xr[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout],
                              b[g * cout:(g + 1) * cout], padding=padding)
                     for g in range(groups)], dim=1)
    rx, rw, rb = torch.autograd.grad(ref, (xr, w, b), grad_out)
    assert out.shape == ref.shape
    for got, want in ((out, ref), (gx, rx), (gw, rw), (gb, rb)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["fr", "ststnet"])
def test_a_network_computes_the_same_with_either_group_convolution(name, monkeypatch):
    """MEFR_GROUP_CONV=matmul builds a network whose convolutions compute by matmul, with
    the logits of the native grouped convolution."""
    c = len(MODELS[name].channels)
    x = torch.randn(2, 4, c, 28, 28, generator=torch.Generator().manual_seed(1))
    monkeypatch.setenv("MEFR_GROUP_CONV", "matmul")
    net = create_model(name, 3, num_models=2)
    net.init_models([5, 6])
    net.eval()
    convs = [m for m in net.modules() if isinstance(m, GroupConv2d)]
    assert convs and {m.impl for m in convs} == {"matmul"}
    by_matmul = net(x).logits
    for m in convs:
        m.impl = "native"
    torch.testing.assert_close(by_matmul, net(x).logits, rtol=1e-4, atol=1e-4)
    monkeypatch.setenv("MEFR_GROUP_CONV", "fft")
    with pytest.raises(ValueError, match="MEFR_GROUP_CONV='fft'"):
        create_model(name, 3, num_models=2)


def test_init_depends_on_seed_only():
    a = create_model("fr", 3, num_models=2)
    a.init_models([5, 7])
    b = create_model("fr", 3, num_models=1)
    b.init_models([7])
    for pa, pb in zip(a.extract(1).parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_glorot_uniform_bounds_and_zero_bias():
    layer = GroupLinear(2, 600, 400)
    gen = torch.Generator().manual_seed(0)
    layer.init_model(0, gen)
    lim = (6 / 1000) ** 0.5
    w = layer.weight[0]
    assert w.abs().max() <= lim
    assert w.abs().max() > 0.95 * lim  # fills the interval
    assert abs(w.var().item() - lim**2 / 3) < 0.05 * lim**2 / 3  # variance of U(-l, l)
    assert torch.count_nonzero(layer.bias[0]) == 0


def test_torch_default_init_bounds_for_weights_and_biases():
    layer = GroupLinear(1, 400, 3)
    layer.init_model(0, torch.Generator().manual_seed(0), scheme="torch")
    lim = 1 / 400**0.5
    assert layer.weight.abs().max() <= lim and layer.weight.abs().max() > 0.95 * lim
    assert layer.bias.abs().max() <= lim and torch.count_nonzero(layer.bias) == 3
    with pytest.raises(ValueError, match="unknown initialisation"):
        layer.init_model(0, torch.Generator(), scheme="he")


def test_ststnet_follows_its_reference_code():
    """1,683 parameters as the authors' PyTorch STSTNet; PyTorch-default init (conv
    bound 1/sqrt(27)); dropout on the 10x10 pooled maps *before* the 2x2 average-pool,
    so a pooled value is zero only when all four of its inputs are dropped."""
    m = create_model("ststnet", 3)
    assert count_parameters(m) == 3 * 28 + 5 * 28 + 8 * 28 + 2 * 16 + 400 * 3 + 3
    m.init_models([0])
    conv = m.convs[2]
    assert conv.weight.abs().max() <= 1 / 27**0.5 and torch.count_nonzero(conv.bias) == 8
    m.train()
    m.set_noise(torch.tensor([3]), 0)
    shared = m(torch.rand(64, 3, 28, 28)).shared
    zero = (shared == 0).float().mean().item()
    assert 0.03 < zero < 0.12  # about 0.5 ** 4; dropout after pooling would give ~0.5
    m.eval()
    assert (m(torch.rand(64, 3, 28, 28)).shared == 0).float().mean().item() < 0.01


def test_fr_attention_is_softmax_times_z():
    """Eqs. (2)-(3): z_k* = softmax(W_k z + b_k) * z, and Eq. (6) sums them."""
    m = create_model("fr", 3)
    m.init_models([0])
    z = torch.rand(1, 4, 1024)
    zk = m.proposals(z)
    w, b = m.units.weight[0], m.units.bias[0]
    for k in range(3):
        a = torch.softmax(z[0] @ w[:, k * 1024:(k + 1) * 1024] + b[0, k * 1024:(k + 1) * 1024], -1)
        torch.testing.assert_close(zk[0, :, k], a * z[0])
    torch.testing.assert_close(m.fuse(zk), zk.sum(2))


def _reference_bn(x: torch.Tensor) -> tuple[torch.Tensor, torch.nn.BatchNorm2d]:
    bn = torch.nn.BatchNorm2d(x.shape[1]).train()
    return bn(x), bn


@pytest.mark.parametrize("padded", [False, True])
def test_group_batch_norm_matches_torch_per_model(padded):
    """Packed (B, G*C) batch norm == one nn.BatchNorm2d per model on its real samples
    (padding rows, weight 0, ignored), for the output and the running statistics."""
    g, c, b = 3, 4, 6
    torch.manual_seed(0)
    x = torch.randn(g, b, c, 5, 5) * 2 + 1
    w = torch.ones(g, b)
    if padded:
        w[1, 4:] = 0.0
        w[2, 5:] = 0.0
    bn = GroupBatchNorm2d(g, c).train()
    packed = x.transpose(0, 1).reshape(b, g * c, 5, 5)
    out = bn(packed, w if padded else None).reshape(b, g, c, 5, 5).transpose(0, 1)
    for m in range(g):
        real = w[m] > 0
        ref, ref_bn = _reference_bn(x[m][real])
        sl = slice(m * c, (m + 1) * c)
        torch.testing.assert_close(out[m][real], ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_mean[sl], ref_bn.running_mean)
        torch.testing.assert_close(bn.running_var[sl], ref_bn.running_var)


def test_concat_groups_interleaves_per_group():
    a = torch.arange(2 * 2 * 1 * 1.0).view(1, 4, 1, 1)  # groups 0,1 with 2 channels
    b = 100 + torch.arange(2 * 3.0).view(1, 6, 1, 1)  # groups 0,1 with 3 channels
    out = concat_groups((a, b), 2).flatten().tolist()
    assert out == [0, 1, 100, 101, 102, 2, 3, 103, 104, 105]


def test_stateless_uniform_is_uniform_and_seed_local():
    seeds = torch.tensor([1, 2, 3], dtype=torch.int64)
    u = stateless_uniform(seeds, 7, (1000,))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.02
    assert abs(u.var().item() - 1 / 12) < 0.01
    alone = stateless_uniform(seeds[1:2], 7, (1000,))
    assert torch.equal(alone[0], u[1])
    assert not torch.equal(u[0], u[1])
    assert not torch.equal(stateless_uniform(seeds, 8, (1000,)), u)


def test_bad_input_shape_is_explained():
    m = create_model("fr", 3, num_models=2)
    with pytest.raises(ValueError, match="group of 2 models"):
        m(torch.zeros(2, 2, 28, 28))


def test_two_unit_detectors_give_the_log_odds_of_their_softmax():
    """With ``detector_units=2`` each detector ends in a 2-way softmax (Keras style); its
    logit is unit 1 minus unit 0, so Eq. 4's BCE equals that softmax's cross-entropy."""
    from mefr.train.losses import detection_loss

    torch.manual_seed(0)
    small = {"shared_dim": 16, "widths": (2, 4), "detector_hidden": 8, "classifier_hidden": 8}
    model = create_model("fr", 3, num_models=2, detector_units=2, **small).eval()
    model.init_models([0, 1])
    raw = {}
    model.det_out.register_forward_hook(lambda m, i, o: raw.setdefault("out", o.detach()))
    out = model(torch.randn(2, 5, 2, 28, 28))
    pairs = raw["out"].view(2, 3, 5, 2).transpose(1, 2)  # (G, B, K, 2 units)
    p_class = torch.softmax(pairs, dim=-1)[..., 1]
    torch.testing.assert_close(torch.sigmoid(out.detector_logits), p_class)
    y = torch.randint(0, 3, (2, 5))
    target = torch.nn.functional.one_hot(y, 3)
    ce = -torch.log(torch.where(target.bool(), p_class, 1 - p_class)).mean(dim=1)
    torch.testing.assert_close(detection_loss(out.detector_logits, y, torch.ones(2, 5)), ce)
