"""Search network, genotype derivation, data, the three methods, checkpoint/resume, Ctrl-C and the CLI."""

import json
import signal

import numpy as np
import pytest
import torch

from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.hardware import cpu_fingerprint, describe
from lpm_zoo.predictors import create_predictor
from lpm_zoo.sampler import sample_arrays
from lpm_zoo.search.data import load_cifar10, read_cifar_bin
from lpm_zoo.search.datasets import load_data
from lpm_zoo.search.model_search import SearchNetwork, derive_capped, derive_cell
from lpm_zoo.search.searcher import Search, SearchConfig
from lpm_zoo.space import OP_INDEX, PRIMITIVES, Genotype
from lpm_zoo.synthetic import OP_COST

TINY = dict(channels=4, layers=3, batch_size=16, max_steps=2, epochs=1, resolution=8)


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory):
    """A small MLP fitted on a known per-op cost table, saved like a zoo entry."""
    ops, inputs = sample_arrays(1000, seed=0)
    path = tmp_path_factory.mktemp("zoo") / "toy-cpu"
    create_predictor("mlp", epochs=20, seed=0).fit((ops, inputs), 5 + OP_COST[ops].sum(1)).save(str(path))
    return str(path)


# --- genotype derivation -----------------------------------------------------------------------
def test_derive_cell_follows_darts_parse():
    w = np.full((14, 8), 0.1)
    w[:, 0] = 0.9  # `none` strongest everywhere: ignored
    # node 2 (edges 0, 1): both kept, strongest first
    w[0, OP_INDEX["sep_conv_3x3"]] = 0.3
    w[1, OP_INDEX["max_pool_3x3"]] = 0.5
    # node 3 (edges 2, 3, 4): edges from 2 and 0
    w[4, OP_INDEX["dil_conv_5x5"]] = 0.6
    w[2, OP_INDEX["skip_connect"]] = 0.4
    # node 4 (edges 5..8), node 5 (edges 9..13)
    w[8, OP_INDEX["avg_pool_3x3"]] = 0.7
    w[6, OP_INDEX["sep_conv_5x5"]] = 0.2
    w[13, OP_INDEX["dil_conv_3x3"]] = 0.35
    w[9, OP_INDEX["sep_conv_3x3"]] = 0.33
    assert derive_cell(w) == (
        ("max_pool_3x3", 1), ("sep_conv_3x3", 0),
        ("dil_conv_5x5", 2), ("skip_connect", 0),
        ("avg_pool_3x3", 3), ("sep_conv_5x5", 1),
        ("dil_conv_3x3", 4), ("sep_conv_3x3", 0),
    )


def test_pc_darts_beta_weighs_the_edges():
    torch.manual_seed(0)
    net = SearchNetwork(C=4, layers=3, partial_k=4, edge_norm=True)
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, OP_INDEX["sep_conv_3x3"]] = 1.0
        net.betas_normal.zero_()
        net.betas_normal[[12, 13]] = 5.0  # node 5 keeps edges from nodes 3 and 4
    g = net.genotype()
    assert isinstance(g, Genotype) and {i for _, i in g.normal[6:]} == {3, 4}
    assert all(op == "sep_conv_3x3" for op, _ in g.normal)


@pytest.mark.parametrize("k,edge_norm", [(1, False), (4, True)])
def test_search_network_shapes_and_parameter_split(k, edge_norm):
    net = SearchNetwork(C=4, num_classes=10, layers=5, partial_k=k, edge_norm=edge_norm)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    n_arch = 4 if edge_norm else 2
    assert len(net.arch_parameters()) == n_arch
    assert len(net.weight_parameters()) + n_arch == len(list(net.parameters()))
    assert sum(c.reduction for c in net.cells) == 2 and net.cells[1].reduction and net.cells[3].reduction


# --- data -----------------------------------------------------------------------------------------
def _write_cifar(root, n=3):
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
    for f in files:
        rec = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
        rec[:, 0] = np.arange(n) % 10
        rec.tofile(d / f)
    return d


def test_cifar_binary_reader(tmp_path):
    d = _write_cifar(tmp_path)
    x, y = read_cifar_bin(d / "test_batch.bin")
    raw = np.fromfile(d / "test_batch.bin", np.uint8).reshape(3, 3073)
    assert x.shape == (3, 3, 32, 32) and list(y) == [0, 1, 2]
    assert x[1, 2, 31, 31] == raw[1, 3072] and x[2, 0, 0, 1] == raw[2, 2]  # channel-major 32x32 planes
    data = load_data("cifar10", tmp_path)
    assert data.x_train.shape == (15, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    expect = (raw[0, 1] / 255.0 - 0.49139968) / 0.24703233
    assert float(data.x_test[0, 0, 0, 0]) == pytest.approx(expect, rel=1e-5)


def test_cifar_errors(tmp_path):
    with pytest.raises(LpmError, match="does not exist"):
        load_cifar10(tmp_path / "nope")
    with pytest.raises(LpmError, match="not found"):
        load_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(LpmError, match="binary version"):
        load_cifar10(tmp_path)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(LpmError, match="not a CIFAR-10 binary batch"):
        read_cifar_bin(bad)
    with pytest.raises(LpmError, match="--data-dir"):
        load_data("cifar10", None)


def test_digits_builtin():
    d = load_data("digits")
    assert d.x_train.shape[1:] == (3, 16, 16) and len(d.y_train) + len(d.y_test) == 1797
    assert set(d.y_test.tolist()) == set(range(10))


# --- search runs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["darts", "darts-2nd", "pc-darts"])
def test_each_method_updates_alpha_and_writes_outputs(method, tmp_path, predictor_dir):
    cfg = SearchConfig(method=method, predictor=predictor_dir, lam=0.5, relative=True, warmup_epochs=0, **TINY)
    s = Search(cfg, tmp_path, progress=False, log=lambda m: None)
    a0 = [p.detach().clone() for p in s.model.arch_parameters()]
    r = s.run()
    assert all(not torch.equal(a, p) for a, p in zip(a0, s.model.arch_parameters()))
    assert Genotype.from_json((tmp_path / "genotype.json").read_text()) == parse_genotype(
        (tmp_path / "genotype.txt").read_text())
    assert r["estimator"] == "pathwise" and r["predicted_latency_ms"] > 0 and 0 <= r["val_acc"] <= 1
    assert (tmp_path / "cells.png").stat().st_size > 1000 and (tmp_path / "cells.svg").is_file()
    assert 0 < r["latency_term_fraction"] < 1
    import csv

    rows = list(csv.DictReader(open(tmp_path / "history.csv", encoding="utf-8")))
    assert [int(x["epoch"]) for x in rows] == [h["epoch"] for h in s.state.history]
    alpha = np.array([[float(rows[-1][f"alpha_normal.e{e}.{op}"]) for op in PRIMITIVES] for e in range(14)])
    if method != "pc-darts":  # softmax(α) per edge; PC-DARTS scales each edge by its normalised β
        assert np.allclose(alpha.sum(1), 1, atol=1e-3)
    assert np.allclose(alpha, s.model.edge_op_weights()[0], atol=1e-4)  # the weights the cell is derived from
    assert rows[-1]["genotype"] == r["genotype"]
    assert int(rows[-1]["skip_normal"]) == sum(op == "skip_connect" for op, _ in parse_genotype(r["genotype"]).normal)


def test_pc_darts_warmup_freezes_alpha(tmp_path):
    cfg = SearchConfig(method="pc-darts", **{**TINY, "epochs": 2, "max_steps": 1})
    s = Search(cfg, tmp_path, progress=False, log=lambda m: None)
    assert s.cfg.warmup_epochs == 1 and s.cfg.batch_size == 16  # 15 of 50 scaled to 2 epochs
    a0 = s.model.alphas_normal.detach().clone()
    s.run()
    assert [row["arch_updates"] for row in s.state.history] == [False, True]
    assert not torch.equal(a0, s.model.alphas_normal)


def test_paper_defaults():
    d = SearchConfig(method="darts").resolved()
    assert (d.batch_size, d.lr, d.arch_lr, d.epochs, d.warmup_epochs) == (64, 0.025, 3e-4, 50, 0)
    p = SearchConfig(method="pc-darts").resolved()
    assert (p.batch_size, p.lr, p.arch_lr, p.warmup_epochs, p.partial_k) == (256, 0.1, 6e-4, 15, 4)
    assert d.arch_betas == (0.5, 0.999) and d.arch_weight_decay == 1e-3 and d.weight_decay == 3e-4


def test_score_estimator_drives_search_with_any_predictor(tmp_path):
    from lpm_zoo.predictors import get_predictor

    ops, inputs = sample_arrays(500, seed=1)
    create_predictor("knn").fit((ops, inputs), 5 + OP_COST[ops].sum(1)).save(str(tmp_path / "knn"))
    assert not get_predictor(str(tmp_path / "knn")).differentiable
    cfg = SearchConfig(predictor=str(tmp_path / "knn"), lam=1.0, relative=True, **TINY)
    r = Search(cfg, tmp_path / "out", progress=False, log=lambda m: None).run()
    assert r["estimator"] == "score" and r["lat_alpha_ms"] > 0


def _final_state(s):
    return [p.detach().clone() for p in s.model.parameters()]


def test_ctrl_c_saves_and_resume_is_exact(tmp_path, predictor_dir):
    cfg = SearchConfig(predictor=predictor_dir, lam=0.5, relative=True, **{**TINY, "epochs": 2})
    straight = Search(cfg, tmp_path / "a", progress=False, log=lambda m: None)
    straight.run()

    s = Search(cfg, tmp_path / "b", progress=False, log=lambda m: None)
    calls = {"n": 0}
    step = s.architect.step

    def interrupting_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # mid-way through epoch 2: a real SIGINT, as Ctrl-C sends
            signal.raise_signal(signal.SIGINT)
        return step(*a, **k)

    s.architect.step = interrupting_step
    before = signal.getsignal(signal.SIGINT)
    r = s.run()
    assert r == {"interrupted": True, "epoch": 1, "step": 1}
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    resumed = Search(cfg, tmp_path / "b", progress=False, log=lambda m: None)
    assert resumed.try_resume() and (resumed.state.epoch, resumed.state.step) == (1, 1)
    resumed.run()
    for a, b in zip(_final_state(straight), _final_state(resumed)):
        assert torch.equal(a, b)
    assert json.loads((tmp_path / "a" / "genotype.json").read_text()) == json.loads(
        (tmp_path / "b" / "genotype.json").read_text())

    other = Search(SearchConfig(predictor=predictor_dir, lam=0.9, **{**TINY, "epochs": 2}), tmp_path / "b",
                   progress=False, log=lambda m: None)
    with pytest.raises(LpmError, match="other settings"):
        other.try_resume()
    refit = Search(cfg, tmp_path / "b", progress=False, log=lambda m: None)
    refit.predictor.meta["train_hash"] = "0" * 64  # the same name, refitted on other data
    with pytest.raises(LpmError, match=r"other settings \(predictor_fit\)"):
        refit.try_resume()


def test_bad_search_options():
    with pytest.raises(LpmError, match="needs --predictor"):
        Search(SearchConfig(lam=0.2, **TINY), "unused", progress=False)
    with pytest.raises(LpmError, match="unknown method"):
        SearchConfig(method="enas").resolved()
    with pytest.raises(LpmError, match="no fitted predictor"):
        Search(SearchConfig(predictor="no-such-device", lam=0.2, **TINY), "unused", progress=False)


# --- CLI ----------------------------------------------------------------------------------------------
def test_cli_search_json_then_train(tmp_path, capsys, predictor_dir):
    out = tmp_path / "s"
    rc = main(["search", "--predictor", predictor_dir, "--lambda", "0.2", "--epochs", "1", "--channels", "4",
               "--layers", "3", "--batch-size", "16", "--max-steps", "1", "--resolution", "8", "--out", str(out),
               "--json",
               "--no-progress"])
    assert rc == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out)
    g = Genotype.from_dict(res["genotype_json"])
    assert g.to_darts() == res["genotype"] and res["predicted_latency_ms"] > 0 and "val_acc" in res
    assert "epoch   1" in cap.err  # the per-epoch log goes to stderr with --json
    assert json.loads((out / "result.json").read_text())["genotype"] == res["genotype"]

    rc = main(["train", "--genotype", str(out / "genotype.json"), "--epochs", "1", "--channels", "4", "--layers",
               "3", "--max-steps", "2", "--resolution", "32", "--auxiliary-weight", "0.4", "--out",
               str(tmp_path / "t"), "--json", "--no-progress"])
    assert rc == 0
    tr = json.loads(capsys.readouterr().out)
    from lpm_zoo.complexity import count_params
    from lpm_zoo.networks import NetworkCIFAR

    assert tr["params_M"] == pytest.approx(count_params(NetworkCIFAR(4, 10, 3, True, g)) / 1e6)
    assert 0 <= tr["test_acc"] <= 1 and tr["epochs_done"] == 1 and tr["config"]["auxiliary_weight"] == 0.4
    # where and on what it trained: the stated host (tests/conftest.py), torch, and the data's fingerprint
    assert tr["trained_on"] == describe(cpu_fingerprint()) + " (a stated identity, LPM_HOST_IDENTITY)"  # conftest's
    assert tr["torch"] == torch.__version__
    assert tr["data_sha256"] == load_data("digits", None, 32).fingerprint() != load_data("digits", None, 16).fingerprint()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["search", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert main(["train", "--genotype", "DARTS_V2", "--auxiliary-weight", "0.4"]) == 2  # 16x16 digits: no aux head
    assert "32x32" in capsys.readouterr().err


def test_checkpoint_schedule_is_restored_or_replayed():
    import math

    from lpm_zoo.search.loop import checkpoint_state, cosine_schedule, restore_state

    def fresh():
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, cosine_schedule(opt, 5, 0.01), torch.Generator()

    model, opt, sched, gen = fresh()
    for _ in range(3):
        opt.step()
        sched.step()
    ck = checkpoint_state(model, {"opt": opt}, sched, gen)
    want = 0.01 + 0.5 * 0.09 * (1 + math.cos(math.pi * 3 / 5))
    for old in (False, True):  # format 2 saves the schedule; format 1 (before it) has it replayed
        saved = {k: v for k, v in ck.items() if k != "scheduler"} | {"format": 1} if old else ck
        model2, opt2, sched2, gen2 = fresh()
        restore_state(saved, model2, {"opt": opt2}, sched2, gen2, epoch=3)
        assert opt2.param_groups[0]["lr"] == pytest.approx(want) and sched2.last_epoch == 3
    model3, opt3, sched3, gen3 = fresh()
    with pytest.raises(LpmError, match="newer than this lpm-zoo reads"):
        restore_state({**ck, "format": 99}, model3, {"opt": opt3}, sched3, gen3, epoch=3)


class _Smooth(torch.nn.Module):
    """A smooth two-level model with the search network's interface (ReLU nets have kinks that
    finite differences see and autograd's Hessian does not, so exactness is checked here)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
        self.alpha = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))

    def loss(self, x, y):
        return torch.nn.functional.cross_entropy(torch.tanh(x @ self.w) * torch.softmax(self.alpha, 0) * 3, y)

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [self.w]

    def named_weight_parameters(self):
        return [("w", self.w)]

    def new(self):
        other = _Smooth()
        other.alpha.data.copy_(self.alpha.data)
        return other


def test_second_order_gradient_is_the_unrolled_total_derivative():
    """DARTS' second-order α gradient (virtual step + finite-difference Hessian-vector product) equals
    d/dα L_val(w − ξ(momentum + ∇w L_train + wd·w), α), computed exactly by autograd."""
    from lpm_zoo.search.architect import Architect

    torch.manual_seed(0)
    model = _Smooth()
    xt, yt = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 4, (16,))
    xv, yv = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 4, (16,))
    eta, mom, wd = 0.5, 0.9, 3e-4
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=eta, momentum=mom, weight_decay=wd)
    model.loss(xt, yt).backward()
    w_opt.step()  # leaves a momentum buffer, which the virtual step uses
    w0 = model.w.detach().clone()
    buf = w_opt.state[model.w]["momentum_buffer"].clone()

    arch = Architect(model, 3e-4, (0.5, 0.999), 1e-3, mom, wd, unrolled=True)
    arch._backward_unrolled(xt, yt, xv, yv, eta, w_opt)
    assert torch.allclose(model.w.detach(), w0, rtol=0, atol=1e-12)  # the ±εv perturbations are undone

    alpha = model.alpha.detach().clone().requires_grad_(True)

    def val_after_step(a):
        logits = lambda w, x: torch.tanh(x @ w) * torch.softmax(a, 0) * 3  # noqa: E731
        lt = torch.nn.functional.cross_entropy(logits(w0.requires_grad_(True), xt), yt)
        gw = torch.autograd.grad(lt, w0, create_graph=True)[0]
        w1 = w0 - eta * (mom * buf + gw + wd * w0)
        return torch.nn.functional.cross_entropy(logits(w1, xv), yv)

    exact = torch.autograd.grad(val_after_step(alpha), alpha)[0]
    assert torch.allclose(model.alpha.grad, exact, rtol=1e-4, atol=1e-7), (model.alpha.grad, exact)


def test_bad_device_is_a_one_line_error(capsys):
    from lpm_zoo.cli import main

    assert main(["search", "--device", "gpu", "--out", "unused-dir"]) == 2
    assert "is not a device" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["DARTS_V2", "PC_DARTS_cifar", "PC_DARTS_image", "random0", "random1", "random2"])
def test_cell_pictures_have_no_overlapping_operation_labels(name):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from lpm_zoo.published import get_genotype
    from lpm_zoo.sampler import sample_cells
    from lpm_zoo.search.plot import draw_cell

    if name.startswith("random"):
        cells = sample_cells(2, seed=int(name[-1]))
    else:
        cells = [get_genotype(name).normal, get_genotype(name).reduce]
    for cell in cells:
        fig = Figure(figsize=(7.5, 4.2))
        ax = fig.subplots()
        draw_cell(ax, cell, name)
        fig.canvas.draw()  # an Agg canvas: text extents in pixels
        boxes = [t.get_window_extent() for t in ax.texts if t.get_text() in OP_INDEX]
        assert len(boxes) == 8
        for i, a in enumerate(boxes):
            assert not any(a.overlaps(b) for b in boxes[i + 1:]), name


def test_max_skip_caps_the_derived_normal_cell():
    w = np.full((14, 8), 0.01)
    w[:, OP_INDEX["skip_connect"]] = np.linspace(0.9, 0.5, 14)  # every edge prefers skip, strongest first
    w[:, OP_INDEX["sep_conv_3x3"]] = 0.3
    assert sum(op == "skip_connect" for op, _ in derive_capped(w, None)) == 8
    for k in (0, 2, 8):
        cell = derive_capped(w, k)
        assert sum(op == "skip_connect" for op, _ in cell) == k
        assert all(op in ("skip_connect", "sep_conv_3x3") for op, _ in cell)
    assert derive_capped(w, 2) == derive_capped(w.copy(), 2)


def test_stop_skip_ends_the_search_early_and_says_so(tmp_path):
    cfg = SearchConfig(stop_skip=1, max_skip=None, **{**TINY, "epochs": 3, "max_steps": 1})
    s = Search(cfg, tmp_path, progress=False, log=lambda m: None)
    # a search network whose α already favours skip_connect everywhere: the first epoch's cell collapses
    with torch.no_grad():
        s.model.alphas_normal[:, OP_INDEX["skip_connect"]] = 5.0
    r = s.run()
    assert r["stopped_early_after_epoch"] == 1 and len(s.state.history) == 1 and r["skip_normal"] >= 1
    capped = Search(SearchConfig(max_skip=0, **{**TINY, "epochs": 1, "max_steps": 1}), tmp_path / "c",
                    progress=False, log=lambda m: None)
    with torch.no_grad():
        capped.model.alphas_normal[:, OP_INDEX["skip_connect"]] = 5.0
    rc = capped.run()
    assert rc["skip_normal"] == 0 and rc["stopped_early_after_epoch"] is None


@pytest.mark.parametrize("flag,msg", [(["--max-skip", "9"], "--max-skip must be from 0 to 8"),
                                      (["--stop-skip", "0"], "--stop-skip must be from 1 to 8")])
def test_guard_thresholds_out_of_range_are_refused_before_any_epoch(flag, msg, tmp_path, capsys):
    assert main(["search", "--epochs", "1", "--max-steps", "1", "--out", str(tmp_path / "o"), *flag]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "o" / "checkpoint.pt").exists()


@pytest.mark.parametrize("method", ["darts", "pc-darts"])
def test_a_whole_network_predictor_steers_the_reduction_cell_too(method, tmp_path):
    from lpm_zoo.sampler import sample_unique_arrays

    ops, inputs, _ = sample_unique_arrays(800, seed=2, cells=2)
    path = tmp_path / "both"
    create_predictor("ridge").fit((ops, inputs), 5 + OP_COST[ops].sum(1)).save(str(path))
    cfg = SearchConfig(method=method, predictor=str(path), lam=0.5, relative=True, warmup_epochs=0, **TINY)
    s = Search(cfg, tmp_path / "out", progress=False, log=lambda m: None)
    est = s._latency_fn()()
    est.loss.backward()
    assert s.model.alphas_reduce.grad.abs().sum() > 0 and s.model.alphas_normal.grad.abs().sum() > 0
    if method == "pc-darts":
        assert s.model.betas_reduce.grad.abs().sum() > 0
    s.model.zero_grad(set_to_none=True)
    r = s.run()
    assert r["predicted_latency_of"] == "the whole network (both cells)" and r["predicted_latency_ms"] > 0
    g = parse_genotype(r["genotype"])
    assert r["predicted_latency_ms"] == pytest.approx(float(s.predictor.predict([g])[0]))


def test_fused_search_resumes_a_plain_checkpoint_and_ends_with_the_same_alpha(tmp_path):
    """`lpm search --fused` is a speed setting, not part of the checkpoint's settings: a run stopped with the
    per-edge loop resumes with the per-state forward, and two short runs that differ only in it end with the
    same α to fp32 rounding (same function; the cells are then the same unless two α are within rounding)."""
    cfg = SearchConfig(**{**TINY, "epochs": 2})
    plain = Search(cfg, tmp_path / "plain", progress=False, log=lambda m: None)
    assert not plain.model.cells[0].fused
    plain.run()
    fused = Search(SearchConfig(fused=True, **{**TINY, "epochs": 2}), tmp_path / "fused", progress=False,
                   log=lambda m: None)
    assert fused.model.cells[0].fused
    fused.run()
    for a, b in zip(plain.model.arch_parameters(), fused.model.arch_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    resumed = Search(SearchConfig(fused=True, **{**TINY, "epochs": 2}), tmp_path / "plain", progress=False,
                     log=lambda m: None)
    assert resumed.try_resume() and resumed.model.cells[0].fused
