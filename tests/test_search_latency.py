"""The latency term of §3.3: sampling S(α, β), both gradient estimators, exactness against enumeration."""

import itertools

import numpy as np
import pytest
import torch

from lpm_zoo.encoding import encode_arrays
from lpm_zoo.errors import LpmError
from lpm_zoo.predictors import create_predictor
from lpm_zoo.sampler import sample_arrays
from lpm_zoo.search.latency import (
    LatencyTerm,
    edge_distribution,
    encode_samples,
    inclusion_probability,
    sample_subnetworks,
    subnetwork_arrays,
)
from lpm_zoo.space import EDGES, OP_INDEX
from lpm_zoo.synthetic import OP_COST

COST = OP_COST  # ms per kept edge: skip_connect is the cheapest op, sep_conv_5x5 the dearest
SKIP, SEP5 = OP_INDEX["skip_connect"], OP_INDEX["sep_conv_5x5"]
# Edges out of node 0 (c_{k-2}) cost 50% more, so edge choice matters too (for β).
EDGE_FACTOR = np.array([1.5 if i == 0 else 1.0 for i, _ in EDGES])


def table_latency(ops, inputs):
    """Synthetic latency: 5 ms + Σ over kept edges of cost(op) × factor(edge)."""
    from lpm_zoo.encoding import bit_indices

    bits = bit_indices(ops, inputs)  # (N, 8) positions 8*edge + op
    return 5.0 + (COST[bits % 8] * EDGE_FACTOR[bits // 8]).sum(axis=1)


@pytest.fixture(scope="module")
def data():
    ops, inputs = sample_arrays(3000, seed=0)
    return (ops, inputs), table_latency(ops, inputs)


@pytest.fixture(scope="module")
def ridge(data):
    return create_predictor("ridge", alpha=1e-4).fit(*data)  # differentiable, linear in the bits


@pytest.fixture(scope="module")
def knn(data):
    return create_predictor("knn", n_neighbors=3).fit(*data)  # not differentiable: `predict` only


def test_samples_are_valid_cells_with_the_right_op_distribution():
    gen = torch.Generator().manual_seed(0)
    alpha = torch.zeros(14, 8)
    alpha[:, SKIP] = 2.0  # skip: e^2 / (e^2 + 6) of the non-none mass
    alpha[:, 0] = 10.0  # a strong `none` must not matter: it is excluded
    edges, ops = sample_subnetworks(alpha, None, 4000, gen)
    o, i = subnetwork_arrays(edges, ops)
    enc = encode_samples(edges, ops).numpy()
    assert (enc.sum(1) == 8).all() and not enc.reshape(-1, 14, 8)[:, :, 0].any()
    np.testing.assert_array_equal(enc, encode_arrays(o, i))  # same cells as lpm_zoo's encoding
    assert (i[:, 0::2] != i[:, 1::2]).all()  # two distinct inputs per node
    want = np.e ** 2 / (np.e ** 2 + 6)
    assert abs((o == SKIP).mean() - want) < 0.02
    # uniform edges (DARTS): node 5 keeps each of its 5 inputs with probability 2/5
    assert abs((i[:, 6:] == 4).any(1).mean() - 0.4) < 0.03


def test_beta_enters_the_edge_choice():
    beta = torch.zeros(14)
    beta[9] = 3.0  # edge (0, 5)
    q = edge_distribution(beta)
    pi = inclusion_probability(q)
    gen = torch.Generator().manual_seed(1)
    edges, _ = sample_subnetworks(torch.zeros(14, 8), beta, 20000, gen)
    freq = torch.zeros(14).index_add_(0, edges.reshape(-1), torch.ones(edges.numel())) / 20000
    np.testing.assert_allclose(freq.numpy(), pi.numpy(), atol=0.015)
    assert pi[9] > 0.9 and abs(float(pi[9:14].sum()) - 2.0) < 1e-5  # node 5 keeps exactly 2 edges


@pytest.mark.parametrize("which,estimator", [("ridge", "pathwise"), ("knn", "score"), ("ridge", "score")])
def test_a_pure_latency_loss_favours_the_cheap_op(which, estimator, request):
    pred = request.getfixturevalue(which)
    term = LatencyTerm(pred, lam=1.0, samples=20, estimator=estimator, relative=True)
    torch.manual_seed(0)
    alpha = torch.nn.Parameter(1e-3 * torch.randn(14, 8))
    opt = torch.optim.Adam([alpha], lr=0.05)
    gen = torch.Generator().manual_seed(0)
    before = term.predict_mean_ms(alpha.detach())
    for _ in range(60):
        opt.zero_grad()
        term(alpha, None, gen).loss.backward()
        opt.step()
    a = alpha.detach()
    # every edge for the exact-in-expectation pathwise gradient; REINFORCE with M=20 is noisier on the
    # edges into node 5, which a sample keeps only 2 times in 5
    assert (a[:, SKIP] > a[:, SEP5]).sum() >= (14 if estimator == "pathwise" else 12)
    assert float((a[:, SKIP] - a[:, SEP5]).mean()) > 1.0
    assert term.predict_mean_ms(a) < before - 1.0  # LAT(α) fell by > 1 ms of ~12


def _exact_expectation(alpha, beta, predictor, ops_allowed):
    """E[f(γ)] under S(α, β) by enumerating every cell whose ops are in `ops_allowed` (differentiable)."""
    from lpm_zoo.search.latency import op_distribution

    p = op_distribution(alpha).double()  # (14, 8)
    q = edge_distribution(beta).double()  # (4, 5)
    pairs = [list(itertools.combinations(range(2 + k), 2)) for k in range(4)]
    edge_sets, pair_probs = [], []
    for choice in itertools.product(*pairs):
        prob = 1.0
        for k, (a, b) in enumerate(choice):
            qa, qb = q[k, a], q[k, b]
            prob = prob * (qa * qb / (1 - qa) + qb * qa / (1 - qb))  # unordered pair, without replacement
        edge_sets.append(choice)
        pair_probs.append(prob)
    op_sets = list(itertools.product(ops_allowed, repeat=8))
    ops = np.array([[o for o in os_] for os_ in op_sets], np.int8)  # (256, 8)
    start = [0, 2, 5, 9]
    rows_ops, rows_in, weights = [], [], []
    for choice, pp in zip(edge_sets, pair_probs):
        inputs = np.array([i for pair in choice for i in pair], np.int8)
        edges = np.array([start[k] + i for k, pair in enumerate(choice) for i in pair])
        po = p[torch.as_tensor(edges)[None, :], torch.as_tensor(ops, dtype=torch.long)].prod(dim=1)  # (256,)
        weights.append(pp * po)
        rows_ops.append(ops)
        rows_in.append(np.broadcast_to(inputs, ops.shape))
    w = torch.cat(weights)
    f = predictor.predict((np.concatenate(rows_ops), np.ascontiguousarray(np.concatenate(rows_in))))
    return (w * torch.as_tensor(f)).sum(), w.sum()


@pytest.fixture(scope="module")
def restricted():
    """α and β giving mass only to 2 ops per edge (others at -30), so the space can be enumerated."""
    torch.manual_seed(3)
    alpha = torch.full((14, 8), -30.0)
    alpha[:, SKIP] = torch.randn(14) * 0.5
    alpha[:, SEP5] = torch.randn(14) * 0.5
    beta = torch.randn(14) * 0.7
    return alpha, beta


@pytest.mark.parametrize("which,estimator", [("knn", "score"), ("ridge", "pathwise")])
def test_estimators_match_exact_enumeration(which, estimator, restricted, request):
    """The score-function estimator (any predictor) and the pathwise one (linear predictor: exact in expectation)
    average to the gradient of E[LPM] computed by enumerating all 46,080 cells of a restricted space."""
    pred = request.getfixturevalue(which)
    a0, b0 = restricted
    alpha, beta = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    exact, mass = _exact_expectation(alpha, beta, pred, (SKIP, SEP5))
    assert abs(mass.item() - 1.0) < 1e-5  # float32 softmax
    g_alpha, g_beta = torch.autograd.grad(exact, [alpha, beta])

    term = LatencyTerm(pred, lam=1000.0, samples=4000, estimator=estimator)  # scale 1: loss = LAT in ms
    gen = torch.Generator().manual_seed(0)
    acc_a, acc_b, lat = torch.zeros(14, 8), torch.zeros(14), []
    reps = 12
    for _ in range(reps):
        alpha.grad = beta.grad = None
        est = term(alpha, beta, gen)
        est.loss.backward()
        acc_a += alpha.grad / reps
        acc_b += beta.grad / reps
        lat.append(est.lat_ms)
    assert abs(np.mean(lat) - exact.item()) < 0.02 * exact.item()
    for mc, ex in ((acc_a[:, [SKIP, SEP5]], g_alpha[:, [SKIP, SEP5]]), (acc_b, g_beta)):
        mc, ex = mc.flatten().double(), ex.flatten().double()
        cos = float(mc @ ex / (mc.norm() * ex.norm()))
        assert cos > 0.97, cos
        assert abs(float(mc.norm() / ex.norm()) - 1.0) < 0.12


def test_relative_mode_divides_by_darts_v2(ridge):
    from lpm_zoo.encoding import encode
    from lpm_zoo.published import DARTS_V2

    ref = float(ridge.predict(encode(DARTS_V2.normal)[None])[0])
    rel = LatencyTerm(ridge, lam=0.2, relative=True)
    ab = LatencyTerm(ridge, lam=0.2)
    assert rel.reference_ms == pytest.approx(ref) and rel.scale == pytest.approx(0.2 / ref)
    assert ab.scale == pytest.approx(0.2 / 1000.0)  # λ in 1/s, LAT in s
    alpha = torch.zeros(14, 8)
    g = torch.Generator().manual_seed(0)
    est = rel(alpha, None, g)
    assert float(est.loss) == pytest.approx(0.2 * est.lat_ms / ref, rel=1e-5)


def test_noise_changes_values_not_the_mean(ridge):
    term = LatencyTerm(ridge, lam=1.0, samples=2000, noise_ms=0.5)
    clean = LatencyTerm(ridge, lam=1.0, samples=2000)
    alpha = torch.zeros(14, 8)
    a = term(alpha, None, torch.Generator().manual_seed(0))
    b = clean(alpha, None, torch.Generator().manual_seed(0))
    assert abs(np.std(a.samples_ms - b.samples_ms) - 0.5) < 0.05
    assert abs(a.lat_ms - b.lat_ms) < 0.1


def test_bad_options_are_one_line_errors(knn):
    with pytest.raises(LpmError, match="differentiable"):
        LatencyTerm(knn, 0.2, estimator="pathwise")
    with pytest.raises(LpmError, match="samples"):
        LatencyTerm(knn, 0.2, samples=1)
    assert LatencyTerm(knn, 0.2).estimator == "score"


REDUCE_FACTOR = 2.0  # the synthetic whole network: reduction-cell operations cost twice a normal cell's


@pytest.fixture(scope="module")
def both_predictors():
    """Predictors of a synthetic whole network (224 bits): ridge (differentiable) and knn (predict only)."""
    from lpm_zoo.sampler import sample_unique_arrays

    ops, inputs, _ = sample_unique_arrays(3000, seed=4, cells=2)
    y = table_latency(ops[:, :8], inputs[:, :8]) + REDUCE_FACTOR * (table_latency(ops[:, 8:], inputs[:, 8:]) - 5.0)
    return {"ridge": create_predictor("ridge", alpha=1e-4).fit((ops, inputs), y),
            "knn": create_predictor("knn", n_neighbors=3).fit((ops, inputs), y)}


def _two_ops_two_edges(seed):
    """α with mass on skip/sep5 only and β fixing each node's two edges (others at -30): 256 cells per cell type."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.full((14, 8), -30.0)
    alpha[:, SKIP] = torch.randn(14, generator=g) * 0.5
    alpha[:, SEP5] = torch.randn(14, generator=g) * 0.5
    beta = torch.full((14,), -30.0)
    beta[[0, 1, 2, 4, 5, 8, 9, 13]] = 0.0  # node 2: inputs (0, 1); node 3: (0, 2); node 4: (0, 3); node 5: (0, 4)
    return alpha, beta


@pytest.mark.parametrize("which,estimator", [("knn", "score"), ("ridge", "pathwise")])
def test_whole_network_latency_reaches_the_reduction_cell_exactly(which, estimator, both_predictors):
    """With an lpm-224 predictor, LAT(α) samples both cells and its gradient reaches α_reduce: both estimators
    average to the gradient of E[LPM] enumerated over all 65,536 (normal, reduction) pairs of a restricted space."""
    from lpm_zoo.search.latency import op_distribution

    pred = both_predictors[which]
    (an0, bn), (ar0, br) = _two_ops_two_edges(1), _two_ops_two_edges(2)
    alpha_n, alpha_r = an0.clone().requires_grad_(True), ar0.clone().requires_grad_(True)
    edges = [0, 1, 2, 4, 5, 8, 9, 13]
    inputs = np.array([0, 1, 0, 2, 0, 3, 0, 4], np.int8)
    ops = np.array(list(itertools.product((SKIP, SEP5), repeat=8)), np.int8)  # (256, 8)
    pn = op_distribution(alpha_n).double()[torch.as_tensor(edges)[None], torch.as_tensor(ops, dtype=torch.long)].prod(1)
    pr = op_distribution(alpha_r).double()[torch.as_tensor(edges)[None], torch.as_tensor(ops, dtype=torch.long)].prod(1)
    both_ops = np.hstack([np.repeat(ops, 256, 0), np.tile(ops, (256, 1))])
    both_in = np.tile(np.concatenate([inputs, inputs]), (len(both_ops), 1))
    f = torch.as_tensor(pred.predict((both_ops, both_in)))
    exact = ((pn[:, None] * pr[None, :]).reshape(-1) * f).sum()
    g_n, g_r = torch.autograd.grad(exact, [alpha_n, alpha_r])

    term = LatencyTerm(pred, lam=1000.0, samples=4000, estimator=estimator)
    assert term.both
    gen = torch.Generator().manual_seed(0)
    acc_n, acc_r, lat = torch.zeros(14, 8), torch.zeros(14, 8), []
    reps = 12
    for _ in range(reps):
        alpha_n.grad = alpha_r.grad = None
        est = term(alpha_n, bn, gen, alpha_r, br)
        est.loss.backward()
        acc_n += alpha_n.grad / reps
        acc_r += alpha_r.grad / reps
        lat.append(est.lat_ms)
    assert abs(np.mean(lat) - exact.item()) < 0.02 * exact.item()
    for mc, ex in ((acc_n[edges][:, [SKIP, SEP5]], g_n[edges][:, [SKIP, SEP5]]),
                   (acc_r[edges][:, [SKIP, SEP5]], g_r[edges][:, [SKIP, SEP5]])):
        mc, ex = mc.flatten().double(), ex.flatten().double()
        cos = float(mc @ ex / (mc.norm() * ex.norm()))
        assert cos > 0.97, cos
        assert abs(float(mc.norm() / ex.norm()) - 1.0) < 0.12
    # the reduction cell's operations cost twice as much here, and the gradient knows it
    assert float(g_r[edges][:, SEP5].abs().sum()) > 1.5 * float(g_n[edges][:, SEP5].abs().sum())


def test_a_whole_network_predictor_needs_the_reduction_alpha(both_predictors):
    term = LatencyTerm(both_predictors["ridge"], lam=1.0)
    with pytest.raises(LpmError, match="reduction cell's α"):
        term(torch.zeros(14, 8))
