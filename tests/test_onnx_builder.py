"""The direct ONNX builder computes what the PyTorch evaluation network computes, for the same weights."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lpm_zoo.backends.onnx_builder import build_onnx
from lpm_zoo.backends.testing import randomize_batchnorm
from lpm_zoo.errors import LpmError
from lpm_zoo.layout import get_setting
from lpm_zoo.networks import build_network
from lpm_zoo.published import DARTS_V2, PC_DARTS_cifar
from lpm_zoo.sampler import sample_cells
from lpm_zoo.space import Genotype

# every primitive on inputs 0/1 (stride 2 in a reduction cell: FactorizedReduce, strided pools and convs)
ALL_OPS = (("skip_connect", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 1),
           ("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("sep_conv_5x5", 0), ("avg_pool_3x3", 4))
EVERYTHING = Genotype(normal=ALL_OPS, reduce=ALL_OPS)


def _compare(g, setting, batch, res, seed=0, **kw):
    torch.manual_seed(seed)
    model = build_network(g, setting, **kw).eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    proto = build_onnx(g, setting, batch=batch, resolution=res, state_dict=model.state_dict(), **kw)
    onnx.checker.check_model(proto)
    x = torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(seed))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-4 * max(scale, 1.0), (np.abs(got - want).max(), scale)


@pytest.mark.parametrize("setting,res", [("cifar", 32), ("imagenet", 64)])
@pytest.mark.parametrize("which", ["everything", "random0", "random1", "pc_darts"])
def test_small_networks_match_pytorch(setting, res, which):
    cells = sample_cells(2, seed=11)
    g = {"everything": EVERYTHING, "random0": Genotype(cells[0], reduce=cells[1]),
         "random1": Genotype(cells[1], reduce=DARTS_V2.reduce), "pc_darts": PC_DARTS_cifar}[which]
    # C=8, 5 layers: reductions at cells 1 and 3, a reduction_prev FactorizedReduce after each.
    # ImageNet at 64x64 keeps the 7x7 final pooling valid only at 224, so use the CIFAR head there:
    if setting == "imagenet":
        _compare(g, setting, 2, 224, C=8, layers=3, num_classes=7)
    else:
        _compare(g, setting, 2, res, C=8, layers=5, num_classes=10)


def test_full_cifar_profile_network_matches_pytorch():
    _compare(Genotype(sample_cells(1, seed=3)[0], reduce=DARTS_V2.reduce), "cifar", 1, 32)


def test_full_imagenet_network_matches_pytorch():
    _compare(DARTS_V2, "imagenet", 1, 224)


def test_random_weights_follow_seed_and_pytorch_init_scale():
    g = DARTS_V2
    a = build_onnx(g, "cifar", C=8, layers=5, seed=1)
    b = build_onnx(g, "cifar", C=8, layers=5, seed=1)
    c = build_onnx(g, "cifar", C=8, layers=5, seed=2)
    wa = [onnx.numpy_helper.to_array(t) for t in a.graph.initializer]
    wb = [onnx.numpy_helper.to_array(t) for t in b.graph.initializer]
    wc = [onnx.numpy_helper.to_array(t) for t in c.graph.initializer]
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert not all(np.array_equal(x, y) for x, y in zip(wa, wc))
    # same parameters, same count, as the PyTorch network (BN folded: one bias per folded conv instead of 4 buffers)
    torch.manual_seed(0)
    model = build_network(g, "cifar", C=8, layers=5)
    conv_w = [p for n, p in model.named_parameters() if p.dim() == 4]
    onnx_conv_w = [w for w in wa if w.ndim == 4]
    assert sorted(w.size for w in onnx_conv_w) == sorted(p.numel() for p in conv_w)
    # PyTorch's default init bound 1/sqrt(fan_in), scaled by the folded default BN 1/sqrt(1+eps)
    first = onnx_conv_w[0]
    bound = 1 / np.sqrt(first[0].size)
    assert np.abs(first).max() <= bound and np.abs(first).max() > 0.9 * bound
    sess = ort.InferenceSession(a.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)})[0]
    assert y.shape == (1, 10) and np.isfinite(y).all()


def test_state_dict_of_another_network_is_refused():
    torch.manual_seed(0)
    model = build_network(DARTS_V2, "cifar", C=8, layers=5)
    with pytest.raises(LpmError, match="shape|has no"):
        build_onnx(EVERYTHING, "cifar", C=8, layers=5, state_dict=model.state_dict())
    with pytest.raises(LpmError, match="unknown setting"):
        build_onnx(DARTS_V2, "mnist")


def test_search_size_profile_network_matches_pytorch():
    """`small-b1`'s setting is a CIFAR network (C=16, 8 cells), never the ImageNet stem by its name."""
    from lpm_zoo.profiles import get_profile

    prof = get_profile("small-b1")
    assert get_setting(prof.setting).network == "cifar"
    _compare(Genotype(sample_cells(1, seed=4)[0], reduce=DARTS_V2.reduce), prof.setting, 1, 32)
