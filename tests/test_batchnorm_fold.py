"""backends/batchnorm_fold.py: folding Conv2d -> BatchNorm2d pairs before a lowering keeps every output and leaves the
caller's model untouched (what the ExecuTorch backend relies on to prepare networks faster)."""

import pytest
import torch
from torch import nn

from lpm_zoo.backends.batchnorm_fold import fold_batch_norms
from lpm_zoo.backends.testing import randomize_batchnorm
from lpm_zoo.networks import build_network
from lpm_zoo.published import get_genotype
from lpm_zoo.sampler import sample_genotypes


def _pairs(model: nn.Module) -> int:
    """Conv2d directly followed by BatchNorm2d inside one nn.Sequential."""
    return sum(type(m[i]) is nn.Conv2d and type(m[i + 1]) is nn.BatchNorm2d
               for m in model.modules() if isinstance(m, nn.Sequential) for i in range(len(m) - 1))


@pytest.mark.parametrize("genotype", [get_genotype("DARTS_V2"), *sample_genotypes(2, seed=5)])
def test_folded_network_gives_the_same_output_and_keeps_only_unfoldable_batch_norms(genotype):
    torch.manual_seed(0)
    model = build_network(genotype, "cifar", C=8, layers=5).eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(1))  # far from identity: a wrong fold shows
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = _pairs(model)
    folded, count = fold_batch_norms(model)
    assert count == pairs > 0
    assert _pairs(folded) == 0
    # what is left: the batch norms after a concatenation (FactorizedReduce), never one after a convolution
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert left == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) - count
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = model(x), folded(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_model_in_training_mode_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model)


def test_a_batch_norm_after_anything_but_a_conv2d_stays():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv1d(4, 4, 1)).eval()
    folded, count = fold_batch_norms(model)
    assert count == 0 and isinstance(folded[2], nn.BatchNorm2d)


def test_a_pair_left_in_training_mode_inside_an_eval_model_stays():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), nn.Sequential(nn.Conv2d(4, 4, 1),
                                                                                            nn.BatchNorm2d(4)))
    model.eval()
    model[1].train()
    folded, count = fold_batch_norms(model)
    assert count == 1 and isinstance(folded[0][1], nn.Identity) and isinstance(folded[1][1], nn.BatchNorm2d)
