"""The `executorch` backend (ExecuTorch, XNNPACK delegate, fp32): equals PyTorch eager on random DARTS networks,
times on the calling thread with one thread, records its settings, refuses bad input in one line, passes the
conformance kit. Lowering a network takes tens of seconds here, so each network is lowered once per module."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from lpm_zoo import Genotype, build_network, sample_cells
from lpm_zoo.backends.registry import get_backend, list_backends
from lpm_zoo.backends.testing import randomize_batchnorm
from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError

executorch = pytest.importorskip("executorch", reason="executorch not installed: pip install 'lpm-zoo[executorch]'")

pytestmark = pytest.mark.slow

#: (build_network overrides, batch, resolution) of the small random networks: CIFAR and ImageNet stems and cells
NETS = {"cifar": ({"C": 8, "layers": 3}, 2, 32), "imagenet": ({"C": 8, "layers": 3}, 1, 224)}


def _random_net(setting: str, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """A DARTS network of two sampled cells with random weights and non-trivial BatchNorm statistics."""
    normal, reduce = sample_cells(2, seed=seed)
    kw, batch, res = NETS[setting]
    torch.manual_seed(seed)
    model = build_network(Genotype(normal, reduce=reduce), setting, **kw).eval()
    gen = torch.Generator().manual_seed(seed)
    randomize_batchnorm(model, gen)
    return model, torch.randn(batch, 3, res, res, generator=gen)


@pytest.fixture(scope="module", params=sorted(NETS))
def lowered(request):
    """(setting, model, input, prepared) for a random network of each setting, lowered once."""
    model, x = _random_net(request.param, seed=11)
    p = get_backend("executorch").prepare(model, x, "cpu", threads=1)
    yield request.param, model, x, p
    p.close()


def test_output_equals_torch_eager_within_fp32_tolerance(lowered):
    setting, model, x, p = lowered
    with torch.inference_mode():
        want = model(x).numpy()
    got = p.output()
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1.0), setting
    assert not np.allclose(want, want[..., :1])  # a network whose outputs differ, so equality means something


def test_folding_batch_norms_first_gives_the_xnnpack_graph_of_the_plain_lowering(monkeypatch):
    """The backend folds batch norms before lowering (to prepare faster); XNNPACK's own passes fold them on the plain
    path, so the delegate must receive the same graph: the same node kinds in the same order, the same values."""
    import executorch.backends.xnnpack.xnnpack_preprocess as preprocess
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from lpm_zoo.backends.executorch_backend import _lower

    graphs = []
    serialize = preprocess.serialize_xnnpack_binary

    def spy(graph, *args, **kwargs):
        graphs.append(graph)
        return serialize(graph, *args, **kwargs)

    monkeypatch.setattr(preprocess, "serialize_xnnpack_binary", spy)
    model, x = _random_net("cifar", seed=3)
    with torch.no_grad():
        to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=[XnnpackPartitioner()])
    _, info = _lower(model, x)
    assert info["batchnorms_folded"] > 0 and len(graphs) == 2
    plain, ours = ([type(n.xnode_union).__name__ for n in g.xnodes] for g in graphs)
    assert plain == ours and "XNNConv2d" in plain
    assert len(graphs[0].xvalues) == len(graphs[1].xvalues)


def test_prepared_info_records_the_settings_really_used(lowered):
    _, _, _, p = lowered
    info = p.info
    json.dumps(info, allow_nan=False)
    assert info["device_kind"] == "cpu" and info["threads"] == 1 and info["precision"] == "fp32"
    assert info["delegate"] == "XnnpackBackend"
    # facts of this one network, recorded with its row but not settings (two networks differ in them)
    net = p.network
    json.dumps(net, allow_nan=False)
    assert net["delegate_calls"] >= 1 and net["program_bytes"] > 0 and isinstance(net["ops_outside_delegate"], dict)
    assert net["batchnorms_folded"] > 0  # folded before lowering; the output test above holds with it
    assert not set(net) & set(info)
    from importlib import metadata

    rt = get_backend("executorch").runtime_info("cpu")
    assert rt["executorch"] == metadata.version("executorch") and rt["delegate"] == "XnnpackBackend"
    assert rt["torch"] == torch.__version__ and "XnnpackBackend" in rt["registered_backends"]


def test_one_thread_computes_on_the_calling_thread(lowered):
    """The protocol's thread clock is valid only if a 1-thread run does its work on the timing thread."""
    _, _, _, p = lowered
    b = get_backend("executorch")
    b.run_timed(p, 2)
    proc0, thr0 = time.process_time(), time.thread_time()
    thread_ms = sum(b.run_timed(p, 5, "thread"))
    proc, thr = time.process_time() - proc0, time.thread_time() - thr0
    assert thread_ms > 0 and thread_ms / 1e3 <= thr * 1.01 + 1e-3
    assert proc <= thr * 1.15 + 0.01, (proc, thr)


def test_bad_device_option_model_and_threads_fail_in_one_line():
    b, (model, x) = get_backend("executorch"), _random_net("cifar", seed=3)
    cases = [
        (dict(device="cuda"), "does not run on cuda; it supports: cpu"),
        (dict(device="tpu"), "tpu"),
        (dict(delegate="coreml"), "unknown option"),
        (dict(threads=0), "threads must be an integer >= 1"),
    ]
    for kw, match in cases:
        with pytest.raises(LpmError, match=match) as e:
            b.prepare(model, x, **kw)
        assert str(e.value).strip() and "\n" not in str(e.value)
    with pytest.raises(LpmError, match="nn.Module"):
        b.prepare(b"onnx bytes", x)
    with pytest.raises(LpmError, match="float32"):
        b.prepare(model, x.double())


def test_cli_refuses_a_gpu_device_in_one_line(capsys):
    assert main(["measure", "--backend", "executorch", "--device", "cuda", "--genotype", "DARTS_V2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "executorch" in err and "cpu" in err and len(err.splitlines()) == 1


def test_lpm_backends_lists_it_with_its_version(capsys):
    from importlib import metadata

    assert "executorch" in list_backends()
    assert main(["backends", "--json"]) == 0
    rows = {(r["backend"], r["device"]): r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    row = rows[("executorch", "cpu")]
    assert row["available"] and row["version"] == f"executorch {metadata.version('executorch')}"
    assert ("executorch", "cuda") not in rows


def test_missing_executorch_says_how_to_install(monkeypatch):
    import importlib.util
    import sys

    b = get_backend("executorch")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    ok, why = b.available("cpu")
    assert not ok and "pip install 'lpm-zoo[executorch]'" in why
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # import of it raises ImportError
    with pytest.raises(LpmError, match=r"pip install 'lpm-zoo\[executorch\]'"):
        b.runtime_info("cpu")


def test_conformance_kit():
    testing = pytest.importorskip("lpm_zoo.backends.testing", reason="the conformance kit (lpm_zoo.backends.testing) is not here")
    testing.check_backend(type(get_backend("executorch")), "cpu")
