"""The search loop: DARTS (1st/2nd order) or PC-DARTS with λ·LAT(α), checkpointed and resumable.

Defaults are the paper's §4.1 hyperparameters per method (`lpm_zoo.search.options.METHODS`); every one is overridable.
A checkpoint (`checkpoint.pt` in the output directory, written with `torch.save` and read back
with `weights_only=True`) holds the network, α/β, both optimisers, the learning-rate schedule,
the random generators, the epoch and step and the log so far, so a resumed run continues
exactly where it stopped (the loop itself is `lpm_zoo.search.loop`'s, shared with `lpm_zoo.search.train`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpm_zoo.encoding import N_EDGES, encode
from lpm_zoo.errors import LpmError
from lpm_zoo.notes import note
from lpm_zoo.predictors import get_predictor
from lpm_zoo.search.architect import Architect
from lpm_zoo.search.checkpoint import check_checkpoint_path, load_checkpoint, restoring, save_checkpoint, sigint_flag
from lpm_zoo.search.config import RESUME_KEYS, SearchConfig, check_config
from lpm_zoo.search.data import ImageData, iterate, split_halves
from lpm_zoo.search.datasets import load_data
from lpm_zoo.search.latency import LatencyTerm, check_finite
from lpm_zoo.search.loop import (
    StopFlag,
    allocated,
    checkpoint_state,
    cosine_schedule,
    evaluate,
    restore_state,
    run_epochs,
    sync_device,
)
from lpm_zoo.search.model_search import SearchNetwork
from lpm_zoo.search.plot import plot_genotype
from lpm_zoo.search.precision import Precision, precision_note
from lpm_zoo.search.selection import Interrupted, Selection, select_perturbation
from lpm_zoo.space import PRIMITIVES, Genotype


@dataclass
class SearchState:
    """What the loop mutates and the checkpoint saves."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)


class Search:
    """A search run writing into `out` (checkpoint, logs, final artifacts)."""

    CHECKPOINT = "checkpoint.pt"

    def __init__(self, config: SearchConfig, out: str | Path, log: Callable[[str], None] = print,
                 progress: bool = True):
        self.cfg = check_config(config.resolved())
        self.out = Path(out)
        check_checkpoint_path(self.checkpoint_path)  # found unwritable now, not after the first epoch
        self.log = log
        self.progress = progress
        self.device = torch.device(self.cfg.device)
        self.data: ImageData = load_data(self.cfg.dataset, self.cfg.data_dir, self.cfg.resolution)
        self.predictor = None
        self.latency: LatencyTerm | None = None
        if self.cfg.predictor:
            self.predictor = get_predictor(self.cfg.predictor)  # its hardware note: held until the input is valid
            self.latency = LatencyTerm(self.predictor, self.cfg.lam, self.cfg.samples, self.cfg.estimator,
                                       self.cfg.relative, self.cfg.noise_ms)
        torch.manual_seed(self.cfg.seed)
        self.model = allocated(lambda: SearchNetwork(self.cfg.channels, self.data.num_classes, self.cfg.layers,
                                                     partial_k=self.cfg.partial_k,
                                                     edge_norm=self.cfg.edge_norm,
                                                     fused=self.cfg.fused).to(self.device),
                               f"a search network of C={self.cfg.channels} and {self.cfg.layers} cells")
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision = Precision(self.cfg.precision, self.device)
        told = precision_note(self.cfg.precision, self.cfg.device)
        if told:
            note(told)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum,
                                     weight_decay=self.cfg.weight_decay)
        self.scheduler = cosine_schedule(self.w_opt, self.cfg.epochs, self.cfg.lr_min)
        self.architect = Architect(self.model, self.cfg.arch_lr, tuple(self.cfg.arch_betas),
                                   self.cfg.arch_weight_decay, self.cfg.momentum, self.cfg.weight_decay,
                                   unrolled=self.cfg.unrolled, precision=self.precision)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.train_idx, self.val_idx = split_halves(len(self.data.y_train), self.cfg.train_portion)
        if min(len(self.train_idx), len(self.val_idx)) < 2:
            raise LpmError("the training set is too small to split into halves for w and α")
        self.state = SearchState()
        self.stop = StopFlag()

    # --- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / self.CHECKPOINT

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically (a crash while writing keeps the previous one)."""
        save_checkpoint(self.checkpoint_path, {
            **checkpoint_state(self.model, self._optimizers(), self.scheduler, self.gen),
            "config": self._resume_config(),
            "epoch": self.state.epoch,
            "step": self.state.step,
            "history_json": json.dumps(self.state.history),
            "sums_json": json.dumps(self.state.sums),
            "timing_json": json.dumps(self.state.timing),
            **({"scaler_json": json.dumps(self.precision.state_dict())} if self.precision.scaler.is_enabled() else {}),
        })

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"w_opt": self.w_opt, "a_opt": self.architect.optimizer}

    def _resume_config(self) -> dict[str, Any]:
        cfg = {k: getattr(self.cfg, k) for k in RESUME_KEYS}
        if self.predictor is not None:  # the same name refitted is another predictor: never resume across it
            meta = self.predictor.meta
            cfg["predictor_fit"] = f"{meta.get('type')}:{meta.get('train_hash')}:{meta.get('created')}"
        return cfg

    def try_resume(self) -> bool:
        """Load the checkpoint in `out` if there is one; refuse one made with other settings."""
        if not self.checkpoint_path.is_file():
            return False
        ck = load_checkpoint(self.checkpoint_path, self.device, self._resume_config())
        with restoring(self.checkpoint_path):
            restore_state(ck, self.model, self._optimizers(), self.scheduler, self.gen, int(ck["epoch"]))
            state = SearchState(int(ck["epoch"]), int(ck["step"]), json.loads(ck["history_json"]),
                                json.loads(ck["sums_json"]), json.loads(ck["timing_json"]))
            if not (0 <= state.epoch <= self.cfg.epochs and 0 <= state.step <= self.steps_per_epoch()
                    and isinstance(state.history, list) and isinstance(state.sums, dict)
                    and isinstance(state.timing, dict)):
                raise ValueError("the epoch, step or log is out of range")
            check_finite(*self.model.arch_parameters())  # a diverged run's checkpoint: one line, not a traceback later
            if "scaler_json" in ck:  # fp16's loss scale; another precision's run ignores it
                self.precision.load_state_dict(json.loads(ck["scaler_json"]))
            self.state = state
        return True

    # --- the loop -----------------------------------------------------------------------------
    @property
    def stopped_early(self) -> int | None:
        """The epoch after which the DARTS+ rule (`stop_skip`) stopped the search, or None."""
        return next((row["epoch"] for row in self.state.history if row.get("early_stop")), None)

    def steps_per_epoch(self) -> int:
        bs = self.cfg.batch_size
        n = min(math.ceil(len(self.train_idx) / bs), math.ceil(len(self.val_idx) / bs))
        return min(n, self.cfg.max_steps) if self.cfg.max_steps else n

    def _latency_fn(self):
        lt, m = self.latency, self.model
        if lt is None or self.cfg.lam == 0:
            return None
        if lt.both:  # a whole-network predictor: the reduction cell's α (and β) get the latency gradient too
            return lambda: lt(m.alphas_normal.cpu(), None if m.betas_normal is None else m.betas_normal.cpu(), self.gen,
                              m.alphas_reduce.cpu(), None if m.betas_reduce is None else m.betas_reduce.cpu())
        return lambda: lt(m.alphas_normal.cpu(), None if m.betas_normal is None else m.betas_normal.cpu(), self.gen)

    def run(self) -> dict[str, Any]:
        """Search until the last epoch (or a Ctrl-C, which saves a checkpoint); returns the result."""
        cfg, st = self.cfg, self.state
        n_steps = self.steps_per_epoch()
        run_epochs(lambda bar: self._run_epoch(n_steps, bar),
                   lambda: self.state.epoch >= cfg.epochs or self.stopped_early is not None, self.stop,
                   total=cfg.epochs * n_steps, initial=st.epoch * n_steps + st.step,
                   desc=f"search {cfg.method}", progress=self.progress)
        if self.stop:
            self.save_checkpoint()
            return {"interrupted": True, "epoch": self.state.epoch, "step": self.state.step}
        selection = None
        if cfg.select == "perturbation":
            try:
                selection = self.select()
            except Interrupted:  # the checkpoint (saved after the last epoch) holds the trained supernet
                return {"interrupted": True, "epoch": self.state.epoch, "step": self.state.step, "phase": "selection"}
        return self.finish(selection)

    def selection_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed validation batches DARTS-PT measures on: the α half's first `select_images` images (whole
        batches of the search's batch size, so batch statistics are as in the search)."""
        bs = self.cfg.batch_size
        n = min(self.cfg.select_images, len(self.val_idx))
        n = max(n // bs * bs, min(bs, len(self.val_idx)))
        idx = self.val_idx[:n]
        return [(self.data.x_train[idx[k:k + bs]].to(self.device), self.data.y_train[idx[k:k + bs]].to(self.device))
                for k in range(0, n, bs)]

    def select(self) -> Selection:
        """DARTS-PT on a copy of the trained supernet (`lpm_zoo.search.selection`); Ctrl-C raises `Interrupted`."""
        with sigint_flag(self.stop.on_sigint):
            return select_perturbation(self.model, self.selection_batches(), self.cfg.seed,
                                       stop=lambda: bool(self.stop), progress=self.progress)

    def _run_epoch(self, n_steps: int, bar) -> None:
        cfg, st, model = self.cfg, self.state, self.model
        epoch = st.epoch
        lr = self.w_opt.param_groups[0]["lr"]  # this epoch's, set by the cosine schedule
        arch_on = epoch >= cfg.warmup_epochs
        seed = cfg.seed * 100003 + epoch
        train = iterate(self.data, self.train_idx, cfg.batch_size, seed, self.gen, start=st.step)
        val = iterate(self.data, self.val_idx, cfg.batch_size, seed + 50021, self.gen, start=st.step)
        latency_fn = self._latency_fn() if arch_on else None
        timed_latency = None
        if latency_fn is not None:
            def timed_latency():
                sync_device(self.device)  # latency_s is the latency term's time, not the GPU's queued steps
                t0 = time.perf_counter()
                est = latency_fn()
                st.timing["latency_s"] = st.timing.get("latency_s", 0.0) + time.perf_counter() - t0
                st.timing["latency_n"] = st.timing.get("latency_n", 0) + 1
                st.sums["lat_ms"] = st.sums.get("lat_ms", 0.0) + est.lat_ms  # the M-sample LAT the loss saw
                return est.loss
        model.train()
        s = st.sums
        while st.step < n_steps and not self.stop:  # checked before a batch is drawn: resumes replay exactly
            (x, y), (xv, yv) = next(train), next(val)
            t0 = time.perf_counter()
            x, y, xv, yv = (t.to(self.device) for t in (x, y, xv, yv))
            if cfg.channels_last:
                x, xv = x.contiguous(memory_format=torch.channels_last), xv.contiguous(memory_format=torch.channels_last)
            if arch_on:
                vloss = self.architect.step(x, y, xv, yv, lr, self.w_opt, timed_latency)
                s["val_loss"] = s.get("val_loss", 0.0) + float(vloss)
                s["n_arch"] = s.get("n_arch", 0) + 1
                if self.architect.skipped_last:
                    s["alpha_skipped"] = s.get("alpha_skipped", 0) + 1
            self.w_opt.zero_grad(set_to_none=True)
            if self.precision.reduced:  # opt-in autocast (lpm_zoo.search.precision)
                with self.precision.autocast():
                    logits = model(x)
                    loss = torch.nn.functional.cross_entropy(logits, y)
                self.precision.weight_step(loss, self.w_opt, model.weight_parameters(), cfg.grad_clip)
            else:  # fp32: the original code's step
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.weight_parameters(), cfg.grad_clip)
                self.w_opt.step()
            s["loss"] = s.get("loss", 0.0) + loss.item() * len(y)
            s["correct"] = s.get("correct", 0) + int((logits.argmax(1) == y).sum())
            s["n"] = s.get("n", 0) + len(y)
            st.timing["step_s"] = st.timing.get("step_s", 0.0) + time.perf_counter() - t0
            st.timing["step_n"] = st.timing.get("step_n", 0) + 1
            st.step += 1
            bar.update(1)
        if self.stop and st.step < n_steps:
            return
        row = self._epoch_row(epoch, lr, arch_on)
        st.history.append(row)
        self._write_history_csv()
        self.log(self._format_row(row))
        st.epoch, st.step, st.sums = epoch + 1, 0, {}
        self.scheduler.step()
        self.save_checkpoint()

    def evaluate(self) -> float:
        """Accuracy of the search network on the α half (eval mode), DARTS' `infer`."""
        idx = self.val_idx
        if self.cfg.max_steps:  # quick runs validate on as many images as they train on per epoch
            idx = idx[: self.cfg.max_steps * self.cfg.batch_size]
        return evaluate(self.model, self.data.x_train, self.data.y_train, self.device, index=idx)

    def predicted(self) -> dict[str, float]:
        """LAT(α) (Monte Carlo, 200 samples) and the derived genotype's predicted latency, both in ms."""
        if self.predictor is None:
            return {}

        m = self.model
        def det(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().cpu()

        lat_alpha = self.latency.predict_mean_ms(det(m.alphas_normal), det(m.betas_normal),
                                                 alpha_reduce=det(m.alphas_reduce), beta_reduce=det(m.betas_reduce))
        return {"lat_alpha_ms": lat_alpha, "lat_genotype_ms": self.predicted_genotype(m.genotype(self.cfg.max_skip))}

    def predicted_genotype(self, g: Genotype) -> float | None:
        """The predictor's latency of genotype `g` in ms (of the normal cell, or the whole network for a -both one)."""
        if self.predictor is None:
            return None
        x = [g] if self.latency.both else encode(g.normal)[None]
        return float(np.asarray(self.predictor.predict(x)).reshape(-1)[0])

    def _epoch_row(self, epoch: int, lr: float, arch_on: bool) -> dict[str, Any]:
        s = self.state.sums
        row = {"epoch": epoch + 1, "lr": lr, "arch_updates": arch_on,
               "train_ce": s.get("loss", 0.0) / max(s.get("n", 1), 1),
               "train_acc": s.get("correct", 0) / max(s.get("n", 1), 1),
               "val_ce": s["val_loss"] / s["n_arch"] if s.get("n_arch") else None,
               "val_acc": self.evaluate()}
        if self.precision.scaler.is_enabled():
            row["alpha_steps_skipped"] = s.get("alpha_skipped", 0)  # fp16: α gradients that overflowed
        if s.get("lat_ms") is not None and s.get("n_arch"):
            row["lat_loss_ms"] = s["lat_ms"] / s["n_arch"]  # mean M-sample LAT the α loss saw this epoch
        row.update(self.predicted())
        g = self.model.genotype(self.cfg.max_skip)
        row["genotype"] = g.to_darts()
        row["skip_normal"] = sum(op == "skip_connect" for op, _ in g.normal)
        if arch_on and self.cfg.stop_skip is not None and row["skip_normal"] >= self.cfg.stop_skip:
            row["early_stop"] = True  # DARTS+: the cell is collapsing into skips; keep this one
        normal, reduce = self.model.edge_op_weights()  # what the cell is derived from, per edge and operation
        row["alpha_normal"] = np.round(normal, 5).tolist()
        row["alpha_reduce"] = np.round(reduce, 5).tolist()
        return row

    def _write_history_csv(self) -> Path:
        """history.csv: one row per epoch, the scalars then every (cell, edge, op) weight: a spreadsheet,
        pandas or TensorBoard's CSV import reads it while the search runs."""


        scalars = ["epoch", "lr", "arch_updates", "train_ce", "train_acc", "val_ce", "val_acc", "lat_loss_ms",
                   "lat_alpha_ms", "lat_genotype_ms", "skip_normal", "genotype"]
        weights = [(cell, e, k) for cell in ("normal", "reduce") for e in range(N_EDGES) for k in range(len(PRIMITIVES))]
        path = self.out / "history.csv"
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(scalars + [f"alpha_{cell}.e{e}.{PRIMITIVES[k]}" for cell, e, k in weights])
            for row in self.state.history:
                al = {c: row.get(f"alpha_{c}") for c in ("normal", "reduce")}
                w.writerow([row.get(c) for c in scalars]
                           + [al[c][e][k] if al[c] else None for c, e, k in weights])
        tmp.replace(path)
        return path

    @staticmethod
    def _format_row(row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']:3d}", f"lr {row['lr']:.4f}", f"train CE {row['train_ce']:.3f}",
                 f"train acc {100 * row['train_acc']:.1f}%"]
        if row.get("val_ce") is not None:
            parts.append(f"val CE {row['val_ce']:.3f}")
        parts.append(f"val acc {100 * row['val_acc']:.1f}%")
        if "lat_alpha_ms" in row:
            parts.append(f"LAT(α) {row['lat_alpha_ms']:.3f} ms")
            parts.append(f"LAT(cell) {row['lat_genotype_ms']:.3f} ms")
        if not row["arch_updates"]:
            parts.append("(α frozen: warm-up)")
        return "  ".join(parts)

    def finish(self, selection: Selection | None = None) -> dict[str, Any]:
        """Write genotype.txt/.json, result.json, history.json/.csv and the cell pictures; return the result.
        The genotype is `selection`'s (DARTS-PT) when given, else argmax α's."""

        self.out.mkdir(parents=True, exist_ok=True)
        g_argmax = self.model.genotype(self.cfg.max_skip)
        g = g_argmax if selection is None else selection.genotype
        (self.out / "genotype.txt").write_text(g.to_darts() + "\n", encoding="utf-8")
        (self.out / "genotype.json").write_text(json.dumps(g.to_dict(), indent=1) + "\n", encoding="utf-8")
        (self.out / "history.json").write_text(json.dumps(self.state.history, indent=1) + "\n", encoding="utf-8")
        last = self.state.history[-1] if self.state.history else {}
        t = self.state.timing
        step_s = t.get("step_s", 0.0) / max(t.get("step_n", 1), 1)
        lat_s = t.get("latency_s", 0.0) / max(t.get("latency_n", 1), 1) if t.get("latency_n") else None
        pictures = plot_genotype(g, self.out / "cells", title=self._title())
        result = {
            "genotype": g.to_darts(),
            "genotype_json": g.to_dict(),
            "method": self.cfg.method,
            "predictor": self.cfg.predictor,
            "lambda": self.cfg.lam,
            "relative": self.cfg.relative,
            "estimator": None if self.latency is None else self.latency.estimator,
            "reference_ms": None if self.latency is None else self.latency.reference_ms,
            "val_acc": last.get("val_acc"),
            "predicted_latency_ms": (last.get("lat_genotype_ms") if selection is None
                                     else self.predicted_genotype(g)),
            "predicted_latency_of": None if self.latency is None else (
                "the whole network (both cells)" if self.latency.both
                else "the normal cell, with the profile's fixed reduction cell"),
            "lat_alpha_ms": last.get("lat_alpha_ms"),
            "epochs": self.cfg.epochs,
            "stopped_early_after_epoch": self.stopped_early,
            "skip_normal": sum(op == "skip_connect" for op, _ in g.normal),
            "select": self.cfg.select,
            "genotype_argmax": g_argmax.to_darts(),
            "selection": None if selection is None else selection.to_dict(),
            "seed": self.cfg.seed,
            "dataset": self.cfg.dataset,
            "config": self.cfg.as_dict(),
            "mean_step_s": step_s,
            "mean_latency_term_s": lat_s,
            "latency_term_fraction": (lat_s / step_s) if lat_s is not None and step_s > 0 else None,
            **({"alpha_steps_skipped": sum(r.get("alpha_steps_skipped", 0) for r in self.state.history)}
               if self.precision.scaler.is_enabled() else {}),
            "files": {"genotype_txt": str(self.out / "genotype.txt"), "genotype_json": str(self.out / "genotype.json"),
                      "pictures": [str(p) for p in pictures], "history": str(self.out / "history.json"),
                      "history_csv": str(self._write_history_csv())},
        }
        (self.out / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return result

    def _title(self) -> str:
        c = self.cfg
        lam = f"λ={c.lam:g}{' (relative)' if c.relative else ' s⁻¹'}" if c.predictor else "no latency term"
        name = Path(c.predictor).name if c.predictor else ""
        return f"{c.method} on {c.dataset}, {lam}" + (f", {name}" if name else "")
