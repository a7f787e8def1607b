"""`lpm search` (latency-aware DARTS / PC-DARTS) and `lpm train` (evaluation training of a genotype).

Nothing heavy is imported at module level: torch and friends load inside `run`, so `lpm --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from lpm_zoo.cli import Command, check_threads
from lpm_zoo.errors import LpmError
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.notes import release as release_notes
from lpm_zoo.published import DARTS_V2
from lpm_zoo.search.history import genotype_after
from lpm_zoo.search.options import DATASETS, METHODS, PRECISIONS, SELECT_IMAGES, SELECTIONS


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: scikit-learn's built-in 8x8 digits, upsampled (default; no download); "
                        "textures: the orientation of the boundary between two real textures (photographs "
                        "bundled with scikit-image; built in, needs stacked convolutions); "
                        "cifar10: the binary CIFAR-10 archive in --data-dir")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding cifar-10-batches-bin/ (for --dataset cifar10)")
    p.add_argument("--resolution", type=int, metavar="PX",
                   help="image size: digits a multiple of 8 up to 64 (default 16); textures 16 (default), 32 or 8 "
                        "(the same 32-pixel field of view)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="at most N steps per epoch, validating on as many images (quick runs)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is often faster for tiny networks "
                        "on a busy CPU)")
    p.add_argument("--json", action="store_true", help="print a final JSON object (logs go to stderr)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out and start afresh")


def _configure_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--predictor", metavar="NAME",
                   help="fitted predictor giving LAT(α): a zoo name (see `lpm zoo`) or a predictor directory; "
                        "any registered type works (differentiable ones use the pathwise gradient, others REINFORCE)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.0, metavar="λ",
                   help="weight of the latency term: L_val + λ·LAT(α), λ in 1/s with LAT in seconds (paper: 0.2); "
                        "with --relative, λ multiplies LAT(α)/LAT(DARTS_V2) and has no unit (default 0)")
    p.add_argument("--relative", action="store_true",
                   help="divide LAT(α) by the predictor's latency of DARTS_V2's normal cell, so one λ means the "
                        "same on every device")
    p.add_argument("--method", choices=tuple(METHODS), default="darts",
                   help="darts (first order), darts-2nd (unrolled, second order) or pc-darts (default darts)")
    p.add_argument("--estimator", choices=("auto", "pathwise", "score"), default="auto",
                   help="gradient of LAT(α): pathwise (straight-through, needs a differentiable predictor), score "
                        "(REINFORCE with a leave-one-out baseline, any predictor) or auto (default)")
    p.add_argument("--samples", type=int, default=20, metavar="M", help="sub-networks sampled per step (paper: 20)")
    p.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                   help="add N(0, SIGMA) ms to every predicted latency (the paper's Table 3 robustness test)")
    p.add_argument("--epochs", type=int, help="search epochs (paper: 50)")
    p.add_argument("--batch-size", type=int, help="batch size (paper: 64 DARTS, 256 PC-DARTS)")
    p.add_argument("--lr", type=float, help="initial weight learning rate (paper: 0.025 DARTS, 0.1 PC-DARTS)")
    p.add_argument("--lr-min", type=float, help="final learning rate of the cosine schedule (paper: 0)")
    p.add_argument("--arch-lr", type=float, help="Adam learning rate of α (paper: 3e-4 DARTS, 6e-4 PC-DARTS)")
    p.add_argument("--warmup-epochs", type=int,
                   help="epochs with α frozen (PC-DARTS: 15 of 50, scaled with --epochs; DARTS: 0)")
    p.add_argument("--channels", type=int, default=16, help="initial channels C of the search network (default 16)")
    p.add_argument("--layers", type=int, default=8, help="cells in the search network (default 8)")
    p.add_argument("--partial-k", type=int, help="PC-DARTS partial-channel K (default 4; 1 for DARTS)")
    g = p.add_argument_group("collapse guards")
    g.add_argument("--max-skip", type=int, metavar="K",
                   help="P-DARTS: derive the normal cell with at most K skip_connect edges (0-8; default: no cap)")
    g.add_argument("--stop-skip", type=int, metavar="K",
                   help="DARTS+: stop the search once the derived normal cell has K skip_connect edges (1-8)")
    s = p.add_argument_group("selection (after the last epoch; not part of the checkpoint's settings)")
    s.add_argument("--select", choices=SELECTIONS, default="argmax",
                   help="how the genotype is read from the trained supernet: argmax α (DARTS, default) or "
                        "perturbation (DARTS-PT: keep the operation, then the edges, whose removal hurts the "
                        "supernet's validation accuracy most); rerunning with the other value on a finished "
                        "--out selects again from the same supernet")
    s.add_argument("--select-images", type=int, default=SELECT_IMAGES, metavar="N",
                   help=f"validation images per perturbation measurement (default {SELECT_IMAGES}; "
                        "about 250 measurements in all)")
    p.add_argument("--fused", action="store_true",
                   help="train with the per-input-state forward: the same loss and gradients as the original "
                        "per-edge loop (fp32: within 1e-5 relative); on a 2-core AMD EPYC a weight step took "
                        "0.64-0.86x and an α step 0.34-0.47x the original code's time (BENCHMARKS.md); not part of "
                        "the checkpoint's settings (a run may resume with or without it)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="arithmetic of the forward and loss: fp32 (default; the original code's), bf16 (autocast; "
                        "CUDA with bf16, or a CPU with avx512_bf16/amx_bf16) or fp16 (CUDA mixed precision with "
                        "loss scaling); first-order methods only; not part of the checkpoint's settings")
    p.add_argument("--channels-last", action="store_true",
                   help="CUDA only: network and batches in channels-last (NHWC) memory format")
    p.add_argument("--out", default="search-out", metavar="DIR",
                   help="output folder: checkpoint (resumed when present), genotype.txt/.json, result.json, "
                        "cells.png/.svg (default ./search-out)")
    p.add_argument("--genotype-after", type=int, metavar="N",
                   help="run nothing: print the genotype the finished search in --out held after epoch N (argmax α "
                        "then), the anytime curve's cell; with --json as a genotype JSON object")
    _add_data_args(p)


def _log_to(args: argparse.Namespace):
    stream = sys.stderr if args.json else sys.stdout
    return lambda msg: print(msg, file=stream, flush=True)


def _set_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        import torch


        check_threads(args.threads)
        torch.set_num_threads(args.threads)


def _search_config(args: argparse.Namespace):
    from lpm_zoo.search.config import SearchConfig

    return SearchConfig(method=args.method, predictor=args.predictor, lam=args.lam, relative=args.relative,
                       estimator=args.estimator, samples=args.samples, noise_ms=args.noise, dataset=args.dataset,
                       data_dir=args.data_dir, resolution=args.resolution, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, lr_min=args.lr_min, arch_lr=args.arch_lr,
                       warmup_epochs=args.warmup_epochs, channels=args.channels, layers=args.layers,
                       partial_k=args.partial_k, max_steps=args.max_steps, max_skip=args.max_skip,
                       stop_skip=args.stop_skip, seed=args.seed, device=args.device, select=args.select,
                       select_images=args.select_images, fused=args.fused, precision=args.precision,
                       channels_last=args.channels_last)


def _check_search(args: argparse.Namespace) -> None:
    """Every setting `lpm search` would use, checked as its run checks it; nothing loaded or created."""
    from lpm_zoo.search.config import check_config

    if args.genotype_after is not None:
        if not 1 <= args.genotype_after <= 10**6:
            raise LpmError(f"--genotype-after must be an epoch from 1, got {args.genotype_after}")
        return
    if args.threads is not None:
        check_threads(args.threads)
    check_config(_search_config(args).resolved())


def _print_genotype_after(args: argparse.Namespace) -> int:
    """`--genotype-after N`: the finished search's genotype after epoch N, read from its history; nothing run."""
    _check_search(args)
    geno, epoch = genotype_after(args.out, args.genotype_after)
    if epoch != args.genotype_after:
        print(f"lpm search: the search stopped early after epoch {epoch} (--stop-skip): its genotype then",
              file=sys.stderr)
    print(json.dumps(geno.to_dict()) if args.json else geno.to_darts())
    return 0


def _run_search(args: argparse.Namespace) -> int:
    from lpm_zoo.search.searcher import Search

    if args.genotype_after is not None:
        return _print_genotype_after(args)
    _set_threads(args)
    cfg = _search_config(args)
    log = _log_to(args)
    searcher = Search(cfg, args.out, log=log, progress=not args.no_progress)
    if args.restart:
        searcher.checkpoint_path.unlink(missing_ok=True)
    elif searcher.try_resume():
        log(f"resuming from {searcher.checkpoint_path} at epoch {searcher.state.epoch + 1}, step {searcher.state.step}")
    release_notes()  # the input, checkpoint included, is valid: notes may now be printed
    lt = searcher.latency
    if lt is not None:
        unit = (f"λ={cfg.lam:g} × LAT/{lt.reference_ms:.3f} ms (relative)" if cfg.relative
                else f"λ={cfg.lam:g} s⁻¹")
        log(f"latency term: {cfg.predictor} ({lt.estimator} estimator, M={lt.samples}), {unit}")
    result = searcher.run()
    if result.get("phase") == "selection":
        log(f"interrupted during the perturbation selection; the checkpoint in {args.out} holds the trained "
            "supernet: run the same command to redo the selection")
        return 130
    if result.get("interrupted"):
        log(f"interrupted at epoch {result['epoch'] + 1}, step {result['step']}; checkpoint saved in {args.out}: "
            "run the same command to resume")
        return 130
    if args.json:
        keep = ("genotype", "genotype_json", "predicted_latency_ms", "predicted_latency_of",
                "lat_alpha_ms", "val_acc", "method", "predictor",
                "lambda", "relative", "estimator", "reference_ms", "seed", "epochs", "stopped_early_after_epoch",
                "skip_normal", "select", "genotype_argmax", "mean_step_s",
                "mean_latency_term_s", "latency_term_fraction", "files")
        print(json.dumps({k: result[k] for k in keep}))
    else:
        print(f"genotype: {result['genotype']}")
        if result["select"] != "argmax":
            print(f"argmax α would give: {result['genotype_argmax']}")
        if result["predicted_latency_ms"] is not None:
            print(f"predicted latency of {result['predicted_latency_of']} ({cfg.predictor}): "
                  f"{result['predicted_latency_ms']:.3f} ms")
        print(f"validation accuracy of the search network: {100 * result['val_acc']:.2f}%")
        if result["stopped_early_after_epoch"] is not None:
            print(f"stopped after epoch {result['stopped_early_after_epoch']}: the normal cell reached "
                  f"{result['skip_normal']} skip_connect (--stop-skip {cfg.stop_skip})")
        files = result["files"]
        print(f"wrote {', '.join([files['genotype_txt'], files['genotype_json'], *files['pictures']])}")
    return 0


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genotype", required=True, metavar="G",
                   help="a published name, a DARTS string, JSON, or a .json file (e.g. search-out/genotype.json)")
    p.add_argument("--epochs", type=int, help="epochs (paper: 600 on CIFAR-10; digits default 10)")
    p.add_argument("--batch-size", type=int, help="batch size (paper: 128; digits 64)")
    p.add_argument("--channels", type=int, help="initial channels (paper: 36; digits 8)")
    p.add_argument("--layers", type=int, help="cells (paper: 20; digits 5)")
    p.add_argument("--lr", type=float, default=0.025, help="initial learning rate, cosine to 0 (paper: 0.025)")
    p.add_argument("--cutout", type=int, help="cutout length in pixels, 0 to disable (paper: 16; digits 4)")
    p.add_argument("--drop-path", type=float, default=0.2, help="drop-path rate, ramped up linearly (paper: 0.2)")
    p.add_argument("--auxiliary-weight", type=float,
                   help="weight of the auxiliary head's loss, 0 to disable (paper: 0.4; digits at 16x16: 0)")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the checkpoint (resumed when present) and train_result.json")
    _add_data_args(p)


def _train_config(args: argparse.Namespace):
    from lpm_zoo.search.train import TrainConfig

    return TrainConfig(dataset=args.dataset, data_dir=args.data_dir, resolution=args.resolution, epochs=args.epochs,
                       batch_size=args.batch_size, channels=args.channels, layers=args.layers, cutout=args.cutout,
                       lr=args.lr, drop_path=args.drop_path, auxiliary_weight=args.auxiliary_weight,
                       max_steps=args.max_steps, seed=args.seed, device=args.device)


def _check_train(args: argparse.Namespace) -> None:
    """Every setting `lpm train` would use, checked as its run checks it; nothing loaded or created."""
    if args.threads is not None:
        check_threads(args.threads)
    parse_genotype(args.genotype, DARTS_V2.reduce)
    _train_config(args).resolved()


def _run_train(args: argparse.Namespace) -> int:
    from lpm_zoo.search.train import train_genotype

    _set_threads(args)
    genotype = parse_genotype(args.genotype, DARTS_V2.reduce)
    cfg = _train_config(args)
    log = _log_to(args)
    result = train_genotype(genotype, cfg, out=args.out, log=log, progress=not args.no_progress,
                            restart=args.restart)
    if result["interrupted"]:
        where = f"; checkpoint in {args.out}: run the same command to resume" if args.out else ""
        log(f"interrupted after {result['epochs_done']} epochs{where}")
        return 130
    if args.json:
        print(json.dumps({k: result[k] for k in ("genotype", "dataset", "params_M", "test_acc", "epochs_done",
                                                  "seconds", "config", "trained_on", "torch", "data_sha256")}))
    else:
        print(f"params {result['params_M']:.3f} M (auxiliary head excluded)  test accuracy "
              f"{100 * result['test_acc']:.2f}% after {result['epochs_done']} epochs on {result['dataset']}")
    return 0


search_command = Command(
    help="latency-aware DARTS / PC-DARTS search with λ·LAT(α) from any fitted predictor",
    configure=_configure_search, run=_run_search, check=_check_search,
    description="Search a DARTS cell with L_val + λ·LAT(α) (LA-DARTS §3.3). Resumes from the checkpoint in --out.")
train_command = Command(
    help="evaluation training of a genotype (cutout, drop path, auxiliary head, cosine schedule)",
    configure=_configure_train, run=_run_train, check=_check_train)
