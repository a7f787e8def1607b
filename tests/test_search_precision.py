"""`lpm search --precision` and `--channels-last` (lpm_zoo.search.precision): what is refused where, the bf16 path run
for real on this CPU (torch emulates bf16 where the CPU lacks it: correct, only slower), and the fp16 path with loss
scaling run for real on the CPU too (torch's CPU autocast and GradScaler take float16), with the device check that
keeps fp16 to CUDA lifted for the test. No speed is asserted; CUDA itself is not run here (no GPU)."""

import json

import pytest
import torch

from lpm_zoo.cli import main
from lpm_zoo.errors import LpmError
from lpm_zoo.search import precision as precision_mod
from lpm_zoo.search.precision import Precision, check_precision, precision_note
from lpm_zoo.search.searcher import Search, SearchConfig

TINY = dict(channels=4, layers=3, batch_size=8, max_steps=2, epochs=1, resolution=8, warmup_epochs=0, seed=3)


@pytest.mark.parametrize("args, words", [
    (("fp16", "cpu", False, False), "is for CUDA"),
    (("fp32", "cpu", False, True), "--channels-last is offered on CUDA only"),
    (("bf16", "cpu", True, False), "needs a first-order method"),
    (("fp16", "cuda", True, False), "needs a first-order method"),
    (("fp64", "cpu", False, False), "--precision must be one of fp32, bf16, fp16"),
])
def test_what_is_refused(args, words):
    with pytest.raises(LpmError, match=words):
        check_precision(*args)


def test_what_cuda_takes_and_a_gpu_without_bf16(monkeypatch):
    check_precision("fp16", "cuda", False, True)  # no GPU needed to accept the settings
    check_precision("bf16", "cuda:0", False, False)
    # a recording stand-in for a P100 (compute capability 6.0) and an A100 (8.0); torch's own is_bf16_supported()
    # says yes to the P100 too (it counts emulation), so it must not be what decides
    caps = {"cuda": (6, 0), "cuda:1": (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: caps[str(d)])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: {"cuda": "Tesla P100-PCIE-16GB"}.get(str(d), "A100"))
    with pytest.raises(LpmError, match=r"this GPU \(Tesla P100-PCIE-16GB, compute capability 6.0\) has no native bf16"):
        check_precision("bf16", "cuda", False, False)
    check_precision("bf16", "cuda:1", False, False)
    check_precision("fp16", "cuda", False, False)


def test_the_note_names_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr("lpm_zoo.search.precision.cpu_isa", lambda: ["avx2", "fma"])
    assert "no native bf16" in precision_note("bf16", "cpu")
    monkeypatch.setattr("lpm_zoo.search.precision.cpu_isa", lambda: ["avx2", "avx512_bf16"])
    assert precision_note("bf16", "cpu") is None
    assert precision_note("bf16", "cuda") is None and precision_note("fp32", "cpu") is None


def test_the_cli_refuses_in_one_line(tmp_path, capsys):
    for extra, words in ((["--precision", "fp16"], "is for CUDA"), (["--channels-last"], "CUDA only"),
                         (["--precision", "bf16", "--method", "darts-2nd"], "first-order")):
        assert main(["search", "--out", str(tmp_path / "s"), *extra]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert not (tmp_path / "s").exists()


def _search(tmp_path, name, **kw):
    s = Search(SearchConfig(**{**TINY, **kw}), tmp_path / name, progress=False, log=lambda m: None)
    return s, s.run()


def test_bf16_trains_under_autocast_and_stays_near_fp32(tmp_path):
    s32, _ = _search(tmp_path, "fp32")
    s16, r = _search(tmp_path, "bf16", precision="bf16")
    assert r["config"]["precision"] == "bf16"
    a32, a16 = s32.model.alphas_normal.detach(), s16.model.alphas_normal.detach()
    assert torch.isfinite(a16).all() and a16.dtype == torch.float32  # the parameters stay fp32 under autocast
    assert not torch.equal(a32, a16)  # the autocast ran: other roundings
    ce32, ce16 = s32.state.history[0]["train_ce"], s16.state.history[0]["train_ce"]
    assert abs(ce16 - ce32) < 0.05 * ce32  # the same training, to bf16's 3 significant digits


def test_fp16_scales_the_loss_saves_the_scale_and_resumes_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr("lpm_zoo.search.config.check_precision", lambda *a: None)  # fp16 on the CPU, for the test
    s, r = _search(tmp_path, "fp16", precision="fp16", max_steps=1)
    assert r["config"]["precision"] == "fp16" and torch.isfinite(s.model.alphas_normal).all()
    assert r["alpha_steps_skipped"] == 0 and s.state.history[0]["alpha_steps_skipped"] == 0
    s.precision.scaler.update(new_scale=1234.0)  # not a fresh scaler's 65536: what the resume must bring back
    s.save_checkpoint()
    ck = torch.load(tmp_path / "fp16" / "checkpoint.pt", weights_only=True)
    assert json.loads(ck["scaler_json"])["scale"] == 1234.0

    def resumed():
        return Search(SearchConfig(**{**TINY, "precision": "fp16", "max_steps": 1}), tmp_path / "fp16",
                      progress=False, log=lambda m: None)

    again = resumed()
    assert again.try_resume() and again.precision.scaler.get_scale() == 1234.0
    for bad in ({"scale": "x"}, {**json.loads(ck["scaler_json"]), "scale": float("nan")},
                {**json.loads(ck["scaler_json"]), "scale": -1.0}, {**json.loads(ck["scaler_json"]), "extra": 1}):
        ck["scaler_json"] = json.dumps(bad)
        torch.save(ck, tmp_path / "fp16" / "checkpoint.pt")
        with pytest.raises(LpmError, match="does not fit this run"):
            resumed().try_resume()


def test_an_overflowing_alpha_gradient_is_skipped_not_applied():
    p = Precision("fp16", torch.device("cpu"))  # GradScaler's scale starts at 65536
    a = torch.ones(3, requires_grad=True)
    assert p.grads((a * 1e36).sum(), [a]) is None  # 1e36 x 65536 overflows float32
    assert p.scaler.get_scale() == 32768.0  # backed off, as after an overflowing weight step
    g = p.grads((a * 2.0).sum(), [a])
    assert torch.allclose(g[0], torch.full((3,), 2.0))  # unscaled again
    assert precision_mod.Precision("fp32", torch.device("cpu")).grads((a * 3).sum(), [a])[0][0] == 3.0
