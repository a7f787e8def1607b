"""Perturbation-based selection (DARTS-PT, `lpm_zoo.search.selection`): the masks, the decisions, the option, Ctrl-C."""

import json
import math
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lpm_zoo.search.selection as selection
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.search.model_search import SearchNetwork
from lpm_zoo.search.searcher import Search, SearchConfig
from lpm_zoo.search.selection import (
    CANDIDATES,
    NONE,
    check_selection,
    node_edges,
    select_perturbation,
    without_edge,
    without_op,
)
from lpm_zoo.space import EDGES, OP_INDEX, PRIMITIVES, Genotype

TINY = dict(channels=4, layers=3, batch_size=16, max_steps=2, epochs=1, resolution=8)
N_MEASUREMENTS = 1 + 2 * (len(EDGES) * (len(CANDIDATES) + 1) + (3 + 1) + (4 + 1) + (5 + 1))




def _net(edge_norm: bool = False) -> SearchNetwork:
    torch.manual_seed(0)
    net = SearchNetwork(4, 10, 3, partial_k=4 if edge_norm else 1, edge_norm=edge_norm)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 1)  # far from uniform, so a renormalisation would show
    return net


# --- the masks ----------------------------------------------------------------------------------
def test_removing_an_op_moves_its_weight_to_none_and_restores_alpha_exactly():
    net = _net()
    saved = [p.detach().clone() for p in net.arch_parameters()]
    w = F.softmax(net.alphas_normal.detach(), dim=-1)
    for op in CANDIDATES:
        with without_op(net, "normal", 5, op):
            m = F.softmax(net.alphas_normal.detach(), dim=-1)
            assert m[5, op] == 0
            assert m[5, NONE] == pytest.approx(float(w[5, NONE] + w[5, op]), rel=1e-6)
            others = [k for k in range(len(PRIMITIVES)) if k not in (op, NONE)]
            torch.testing.assert_close(m[5, others], w[5, others], rtol=1e-6, atol=0)  # not renormalised
            torch.testing.assert_close(torch.cat([m[:5], m[6:]]), torch.cat([w[:5], w[6:]]), rtol=0, atol=0)
        assert all(torch.equal(a, b) for a, b in zip(net.arch_parameters(), saved))
    with pytest.raises(ValueError, match="none"):
        with without_op(net, "normal", 0, NONE):
            pass


def test_masks_are_undone_even_when_the_measurement_fails():
    net = _net(edge_norm=True)
    saved = [p.detach().clone() for p in net.arch_parameters()]
    with pytest.raises(RuntimeError):
        with without_op(net, "reduce", 3, OP_INDEX["sep_conv_3x3"]):
            raise RuntimeError("measurement failed")
    with pytest.raises(RuntimeError):
        with without_edge(net, "normal", 7):
            assert net.betas_normal[7] == -math.inf  # PC-DARTS: the edge's beta (bypass channels included)
            raise RuntimeError("measurement failed")
    assert all(torch.equal(a, b) for a, b in zip(net.arch_parameters(), saved))


def test_removing_an_edge_zeroes_its_output_in_darts():
    net = _net()
    with without_edge(net, "normal", 4):
        m = F.softmax(net.alphas_normal.detach(), dim=-1)
        assert m[4, NONE] == 1 and m[4].sum() == 1


# --- the decisions, on a network whose answer is known ------------------------------------------
class KnownNet(nn.Module):
    """A fake supernet (no convolutions): its accuracy grows with the softmax weight of one chosen operation per
    edge (`key_op`) times the edge's importance, so DARTS-PT's answer is known; α favours other operations."""

    def __init__(self, key_op: dict[str, list[int]], importance: dict[str, list[float]]):
        super().__init__()
        self.key_op, self.importance = key_op, importance
        alpha = torch.zeros(len(EDGES), len(PRIMITIVES))
        alpha[:, OP_INDEX["skip_connect"]] = 2.0  # argmax would pick skip_connect everywhere
        self.alphas_normal = nn.Parameter(alpha.clone())
        self.alphas_reduce = nn.Parameter(alpha.clone())
        self.total = sum(sum(v) for v in importance.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signal_ = torch.zeros(())
        for cell in ("normal", "reduce"):
            w = F.softmax(getattr(self, f"alphas_{cell}"), dim=-1)
            for e in range(len(EDGES)):
                signal_ = signal_ + w[e, self.key_op[cell][e]] * self.importance[cell][e]
        t = x.flatten(1)[:, 0] * self.total  # a sample is right when the signal beats its threshold
        return torch.stack([t, signal_.expand_as(t)], dim=1)


def _known():
    ops = [k for k in CANDIDATES if PRIMITIVES[k] != "skip_connect"]  # the op argmax α picks everywhere
    key_op = {"normal": [ops[e % len(ops)] for e in range(len(EDGES))],
              "reduce": [ops[(3 * e + 1) % len(ops)] for e in range(len(EDGES))]}
    importance = {"normal": [1.0 + (e * 7) % 5 for e in range(len(EDGES))],
                  "reduce": [1.0 + (e * 3) % 4 for e in range(len(EDGES))]}
    x = torch.linspace(0.001, 0.999, 400).reshape(-1, 1, 1, 1)
    batches = [(x[k:k + 100], torch.ones(100, dtype=torch.long)) for k in range(0, 400, 100)]
    return KnownNet(key_op, importance), batches


def test_keeps_the_op_and_the_edges_whose_removal_hurts_most_not_argmax_alpha():
    net, batches = _known()
    before = [net.alphas_normal.detach().clone(), net.alphas_reduce.detach().clone()]
    sel = select_perturbation(net, batches, seed=3, progress=False)
    for cell in ("normal", "reduce"):
        cell_genes = getattr(sel.genotype, cell)
        for node in range(4):
            edges = node_edges(node)
            imp = [net.importance[cell][e] for e in edges]
            expected = sorted(edges, key=lambda e: -net.importance[cell][e])[:2]
            if len(edges) == 2 or sorted(imp)[-2] > sorted(imp)[-3]:  # no tie for the two most important edges
                assert {src for _, src in cell_genes[2 * node:2 * node + 2]} == {EDGES[e][0] for e in expected}
            for op, src in cell_genes[2 * node:2 * node + 2]:
                e = next(k for k in edges if EDGES[k][0] == src)
                assert op == PRIMITIVES[net.key_op[cell][e]] != "skip_connect"
    rows = {(r["cell"], r["edge"]): r for r in sel.ops}
    assert len(rows) == 2 * len(EDGES)
    r = rows[("normal", 0)]
    assert set(r["acc_drop"]) == {PRIMITIVES[k] for k in CANDIDATES}
    assert r["ce_rise"][r["op"]] == max(r["ce_rise"].values()) > 0
    assert torch.equal(net.alphas_normal, before[0]) and torch.equal(net.alphas_reduce, before[1])  # a copy is used
    json.dumps(sel.to_dict())  # plain data for result.json


def test_ops_with_identical_outputs_tie_without_crashing():
    """All cell convolutions zeroed: every conv op outputs exactly 0, like `none` and like each other."""
    net = _net()
    with torch.no_grad():
        for name, p in net.named_weight_parameters():
            if "._ops." in name:
                p.zero_()
    batches = [(torch.randn(16, 3, 8, 8), torch.arange(16) % 10)]
    a = select_perturbation(net, batches, seed=0, progress=False)
    Genotype.from_dict(a.genotype.to_dict())
    convs = [k for k in CANDIDATES if "conv" in PRIMITIVES[k]]
    for row in a.ops:
        assert len({row["acc_drop"][PRIMITIVES[k]] for k in convs}) == 1  # the identical ops tie exactly
        drops = {PRIMITIVES[k]: (row["acc_drop"][PRIMITIVES[k]], row["ce_rise"][PRIMITIVES[k]]) for k in CANDIDATES}
        # the chosen op is one whose removal hurts most. Which of the zeroed convolutions that is, is not fixed: their
        # outputs are identical, but removing each moves a different weight to `none`, so the mixtures' sums, and
        # the cross-entropies, differ in their last bits, and differently on CPUs with other vector units
        assert drops[row["op"]] == max(drops.values())


# --- inside `lpm search`: result.json, resume, Ctrl-C, the option -------------------------------------------
def _alpha_score(model, batches):
    """A stand-in for the forward pass (the real one is tested above): the weight of sep_conv_3x3 plus half of
    max_pool's over both cells, so every removal changes it and the run takes seconds on a busy runner."""
    assert sum(len(y) for _, y in batches) == 64 and all(len(y) == 16 for _, y in batches)
    w = [F.softmax(model.alphas_normal.detach(), -1), F.softmax(model.alphas_reduce.detach(), -1)]
    s = float(sum(x[:, OP_INDEX["sep_conv_3x3"]].sum() + 0.5 * x[:, OP_INDEX["max_pool_3x3"]].sum() for x in w))
    return selection.Score(acc=round(s, 2) / 28, ce=-s)


def test_search_selects_records_and_a_ctrl_c_during_selection_leaves_the_checkpoint_usable(tmp_path, monkeypatch):
    cfg = SearchConfig(select="perturbation", select_images=70, **TINY)  # whole batches of 16: 64 images
    calls = {"n": 0}
    real_score = _alpha_score

    def counting(*a, **k):
        calls["n"] += 1
        return real_score(*a, **k)

    monkeypatch.setattr(selection, "score", counting)
    straight = Search(cfg, tmp_path / "a", progress=False, log=lambda m: None).run()
    assert calls["n"] == N_MEASUREMENTS
    res = json.loads((tmp_path / "a" / "result.json").read_text())
    g = Genotype.from_dict(json.loads((tmp_path / "a" / "genotype.json").read_text()))
    assert res["genotype"] == g.to_darts() == straight["genotype"] and res["select"] == "perturbation"
    assert res["selection"]["images"] == 64 and len(res["selection"]["ops"]) == 2 * len(EDGES)
    assert len(res["selection"]["topology"]) == 6 and Genotype.from_darts(res["genotype_argmax"])
    assert {op for op, _ in g.normal + g.reduce} <= {"sep_conv_3x3", "max_pool_3x3"}

    def interrupting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # a real SIGINT, as Ctrl-C sends, in the middle of the selection
            signal.raise_signal(signal.SIGINT)
        return real_score(*a, **k)

    calls["n"] = 0
    monkeypatch.setattr(selection, "score", interrupting)
    before = signal.getsignal(signal.SIGINT)
    r = Search(cfg, tmp_path / "b", progress=False, log=lambda m: None).run()
    assert r["interrupted"] and r["phase"] == "selection" and signal.getsignal(signal.SIGINT) is before
    assert (tmp_path / "b" / "checkpoint.pt").is_file() and not (tmp_path / "b" / "result.json").exists()
    monkeypatch.setattr(selection, "score", real_score)
    again = Search(cfg, tmp_path / "b", progress=False, log=lambda m: None)
    assert again.try_resume() and again.state.epoch == 1
    assert again.run()["genotype"] == straight["genotype"]  # the selection redone on the same supernet

    argmax = Search(SearchConfig(select="argmax", **TINY), tmp_path / "b", progress=False, log=lambda m: None)
    assert argmax.try_resume()  # the selection is not part of the checkpoint's settings
    out = argmax.run()
    assert out["genotype"] == res["genotype_argmax"] and out["selection"] is None


@pytest.mark.parametrize("flags,msg", [(["--select-images", "5"], "--select-images must be from 64"),
                                       (["--select", "perturbation", "--max-skip", "2"], "leave it out"),
                                       (["--select", "best"], "invalid choice")])
def test_bad_selection_options_are_one_line_errors(flags, msg, tmp_path, capsys):
    try:
        rc = main(["search", "--epochs", "1", "--max-steps", "1", "--out", str(tmp_path / "o"), *flags])
    except SystemExit as e:  # argparse's own refusal of a value outside the choices
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "o" / "checkpoint.pt").exists()
    with pytest.raises(LpmError, match="--select must be one of argmax, perturbation"):
        check_selection("best", 512)
