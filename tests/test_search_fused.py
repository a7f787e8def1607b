"""The per-state search cell (`lpm_zoo.search.fused_cell`, opt-in) against the original per-edge loop:
same loss, same gradients of w, α and β, same batch-norm running statistics. In fp64 every tensor
agrees to rounding (the algebra is the same); in fp32 the loss and the gradients of w and of α (β)
agree within 1e-5 relative (norm of the difference over norm of the plain gradient)."""

from __future__ import annotations

import copy

import pytest
import torch

from lpm_zoo.search.model_search import SearchNetwork

REL = 1e-5


def _pair(k: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[SearchNetwork, SearchNetwork]:
    torch.manual_seed(seed)
    fused = SearchNetwork(8, 10, 5, partial_k=k, edge_norm=k > 1, fused=True).to(dtype)  # 5 cells: reductions at 1 and 3
    with torch.no_grad():  # α, β far from uniform, so every op's weight matters
        for p in fused.arch_parameters():
            p.normal_()
    return fused, copy.deepcopy(fused).set_fused(False)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).double().norm() / b.double().norm().clamp_min(1e-30))


def _loss_and_grads(k: int, dtype: torch.dtype):
    fused, plain = _pair(k, dtype=dtype)
    assert fused.cells[0].fused and not plain.cells[0].fused
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 16, 16, generator=gen).to(dtype), torch.randint(0, 10, (4,), generator=gen)
    out = []
    for net in (fused, plain):
        loss = net.loss(x, y)
        out.append((loss.item(), dict(zip([n for n, _ in net.named_parameters()],
                                          torch.autograd.grad(loss, list(net.parameters()))))))
    atol = 1e-7 if dtype == torch.float64 else 1e-6  # fp32: a batch mean of O(1) values summed in another order
    for (name, bf), bp in zip(fused.named_buffers(), plain.buffers()):
        assert torch.allclose(bf.double(), bp.double(), rtol=1e-5, atol=atol), name
    return out


def test_the_default_network_is_the_original_per_edge_loop():
    assert not SearchNetwork(8, 10, 5).cells[0].fused  # the default stays bit-exact with the original code


@pytest.mark.parametrize("k", [1, 4], ids=["darts", "pcdarts"])
def test_fused_matches_plain_in_fp64_tensor_by_tensor(k):
    (loss_f, grads_f), (loss_p, grads_p) = _loss_and_grads(k, torch.float64)
    assert abs(loss_f - loss_p) <= 1e-12 * abs(loss_p)
    assert any(n.startswith("alphas") for n in grads_p) and (k == 1 or "betas_normal" in grads_p)
    for name, gp in grads_p.items():
        assert gp.abs().max() > 0, name  # a gradient that is there to compare
        assert _rel(grads_f[name], gp) <= 1e-10, (name, _rel(grads_f[name], gp))


@pytest.mark.parametrize("k", [1, 4], ids=["darts", "pcdarts"])
def test_fused_matches_plain_in_fp32_within_1e_5(k):
    (loss_f, grads_f), (loss_p, grads_p) = _loss_and_grads(k, torch.float32)
    assert abs(loss_f - loss_p) <= REL * abs(loss_p)
    arch = [n for n in grads_p if n.startswith(("alphas", "betas"))]
    weights = [n for n in grads_p if n not in arch]
    for names in (arch, weights):
        flat_f = torch.cat([grads_f[n].reshape(-1) for n in names])
        flat_p = torch.cat([grads_p[n].reshape(-1) for n in names])
        assert _rel(flat_f, flat_p) <= REL, (names[0], _rel(flat_f, flat_p))
    for name in arch:  # each of α, β on its own too
        assert _rel(grads_f[name], grads_p[name]) <= REL, name


@pytest.mark.parametrize("k", [1, 4], ids=["darts", "pcdarts"])
def test_fused_sgd_steps_track_plain(k):
    """Three weight steps each: the weights (and the running statistics eval mode uses) stay together."""
    fused, plain = _pair(k, seed=2)
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randn(4, 3, 16, 16, generator=gen), torch.randint(0, 10, (4,), generator=gen))
               for _ in range(3)]
    for net in (fused, plain):
        opt = torch.optim.SGD(net.weight_parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
        for x, y in batches:
            opt.zero_grad()
            net.loss(x, y).backward()
            opt.step()
    for (name, pf), pp in zip(fused.state_dict().items(), plain.state_dict().values()):
        assert torch.allclose(pf.double(), pp.double(), rtol=1e-4, atol=1e-6), name
    fused.eval()
    plain.eval()
    with torch.no_grad():  # eval mode runs the per-edge loop on each edge's own statistics
        x = batches[0][0]
        assert torch.allclose(fused(x), plain(x), rtol=1e-4, atol=1e-5)


def test_shared_pool_batch_norm_keeps_each_edge_statistics():
    """The pools' batch norm runs once per state, yet every edge's module is updated from its own value."""
    fused, plain = _pair(1, seed=4)
    for net in (fused, plain):  # make one edge's pool statistics differ from its siblings'
        net.cells[0]._ops[0]._ops[1][1].running_mean.fill_(0.5)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    fused.loss(x, y)
    plain.loss(x, y)
    for (name, bf), bp in zip(fused.named_buffers(), plain.buffers()):
        assert torch.allclose(bf.double(), bp.double(), rtol=REL, atol=1e-7), name


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [3, 5])
def test_dilated_convolution_by_phases_is_the_dilated_convolution(kernel, stride):
    """The per-state forward runs dilated convolutions on the 2×2 phase grids of their input (the same products);
    values and both gradients agree with PyTorch's dilated kernel in fp64."""
    from lpm_zoo.search.fused_cell import _conv

    torch.manual_seed(5)
    conv = torch.nn.Conv2d(6, 6, kernel, stride, (kernel - 1), dilation=2, groups=6, bias=False).double()
    x = torch.randn(3, 6, 8, 8, dtype=torch.float64, requires_grad=True)
    got, want = _conv(x, [conv]), conv(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(got, (x, conv.weight), g), torch.autograd.grad(want, (x, conv.weight), g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    odd = torch.randn(1, 6, 7, 7, dtype=torch.float64)  # 7 is not a multiple of 2: PyTorch's kernel, same answer
    torch.testing.assert_close(_conv(odd, [conv]), conv(odd))
