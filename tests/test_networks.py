"""Evaluation networks: the paper's parameter counts, multiply-adds, forward passes."""

import pytest
import torch

from lpm_zoo.complexity import count_madds, count_params, genotype_complexity
from lpm_zoo.networks import NetworkCIFAR, NetworkImageNet, build_network
from lpm_zoo.ops import FactorizedReduce
from lpm_zoo.published import get_genotype, published_figures
from lpm_zoo.sampler import sample_genotypes


@pytest.mark.parametrize("name", ["DARTS_V2", "PC_DARTS_cifar"])
@pytest.mark.parametrize("setting", ["cifar", "imagenet"])
def test_paper_parameter_counts(name, setting):
    fig = published_figures(name)[f"{setting}_params_M"]
    params = count_params(build_network(get_genotype(name), setting)) / 1e6
    assert round(params, 1) == fig


def test_exact_darts_v2_counts():
    # DARTS' own count_parameters_in_MB gives 3.349342 (CIFAR) and 4.718752 (ImageNet).
    assert count_params(build_network(get_genotype("DARTS_V2"), "cifar")) == 3_349_342
    assert count_params(build_network(get_genotype("DARTS_V2"), "imagenet")) == 4_718_752


@pytest.mark.parametrize("name", ["DARTS_V2", "PC_DARTS_cifar"])
def test_imagenet_multiply_adds_within_10_percent_of_paper(name):
    madds = genotype_complexity(get_genotype(name), "imagenet")["madds_M"]
    paper = published_figures(name)["imagenet_mult_adds_M"]
    assert abs(madds - paper) / paper < 0.10


def test_madds_count_a_single_conv_exactly():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False))
    assert count_madds(conv, (2, 3, 10, 10)) == 3 * 3 * 3 * 8 * 10 * 10


def test_auxiliary_head_excluded_from_params():
    g = get_genotype("DARTS_V2")
    assert count_params(NetworkCIFAR(36, 10, 20, True, g)) == count_params(NetworkCIFAR(36, 10, 20, False, g))


def test_skip_connect_in_reduction_is_factorized_reduce():
    net = build_network(get_genotype("DARTS_V2"), "cifar")
    red = net.cells[20 // 3]
    assert red.reduction
    skip_ops = [op for (name, _), op in zip(get_genotype("DARTS_V2").reduce, red._ops) if name == "skip_connect"]
    # DARTS_V2's reduce skips come from node 2 (stride 1): identity; preprocess0 after a reduction is FR.
    assert skip_ops and not any(isinstance(op, FactorizedReduce) for op in skip_ops)
    assert isinstance(net.cells[20 // 3 + 1].preprocess0, FactorizedReduce)
    pc = build_network(get_genotype("PC_DARTS_image"), "cifar")
    assert isinstance(pc.cells[20 // 3]._ops[1], FactorizedReduce)  # ('skip_connect', 1) at stride 2


def test_forward_cifar_random_cells_train_and_eval():
    for g in sample_genotypes(3, seed=11):
        net = NetworkCIFAR(8, 10, 5, True, g)
        net.drop_path_prob = 0.2
        net.train()
        logits, aux = net(torch.randn(2, 3, 32, 32))
        assert logits.shape == (2, 10) and aux.shape == (2, 10)
        net.eval()
        out = net(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_forward_imagenet_random_cell():
    g = sample_genotypes(1, seed=12)[0]
    net = NetworkImageNet(8, 1000, 5, True, g).eval()
    assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    net.train()
    logits, aux = net(torch.randn(2, 3, 224, 224))
    assert logits.shape == aux.shape == (2, 1000)
